"""The one batch runner of `classify` and `evaluate`: sources --> decode --> predict -->
rank --> sink, in this process (`engine="default"`) or on Ray Data (`engine="ray"`).

- `BatchRunner.batches(sources)` ranks the classes of every source with every model and
  yields `RankedBatch`es in the inputs' order (or, `ordered=False`, as they finish: Ray's
  batches finish in any order), an image that cannot be read being an error in its row
  rather than the run's.
- `classified_rows` names the classes of one model's batches as result rows;
  `write_classified` sends them to a `ResultWriter` (the journal, `--resume`, the output).
- `classify_images` is all of it as one call, for notebooks and scripts.

Both engines compute the same numbers: each image is decoded once and resized once per
geometry to uint8, and every model normalizes those pixels itself (`predict_pixels`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.preprocess import (
    Geometry,
    decoded_batches,
    geometry_of,
    list_images,
)
from mobilenet_v2.base.sources import Source
from mobilenet_v2.inference.batches import (
    ENGINES,
    RankedBatch,
    decode_at,
    default_batch_size,
    rank,
)
from mobilenet_v2.inference.classifier import (
    Classifier,
    load_keras,
    model_identity,
    preprocessing_for,
)
from mobilenet_v2.inference.models import load_models, ranked_classes
from mobilenet_v2.inference.result_parts import (
    PartSpec,
    PartsWriter,
    check_parts_output,
    is_parts_output,
)
from mobilenet_v2.inference.results import (
    SUFFIXES,
    ResultWriter,
    Row,
    check_output,
    path_text,
    ranked_row,
    result_format,
)


@dataclass
class BatchRunner:
    """Ranks the top `top` classes of images with every one of `classifiers`, batch by
    batch, on `engine`. `overrides` (resize, mean, std; None: the model's own) go on top of
    each model's recorded preprocessing. After a Ray run, `nodes` says where it ran and
    `ray_workers` how many inference workers ran batches."""

    classifiers: list[Classifier]
    top: int
    engine: str = "default"
    batch_size: int | None = None  # None: the engine's default
    workers: int | None = None  # Ray: at most this many inference workers
    ray_address: str | None = None  # Ray: the cluster (None: $RAY_ADDRESS, else a local Ray)
    stall_timeout: float | None = None  # Ray: seconds without a finished batch (None: 300)
    draft: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)
    ray_workers: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; received {self.engine!r}")
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.engine)
        self.preps = [preprocessing_for(c, **self.overrides) for c in self.classifiers]
        if self.draft and len({geometry_of(p) for p in self.preps}) > 1:
            raise MobileNetV2Error(
                "--draft needs the models to share one input size and resize: DCT scaling "
                "decodes for one size at a time"
            )

    def preflight(self) -> None:
        """What can fail before any work (Ray's extra, models it cannot ship, an address
        nobody answers at): call it before creating any output."""
        if self.engine == "ray":
            from mobilenet_v2.inference.ray_engine import preflight

            preflight(self.classifiers, self.ray_address)

    def batches(
        self, sources: Sequence[Source], ordered: bool = True, parts: PartSpec | None = None
    ) -> Iterator[RankedBatch]:
        """Every source's ranked classes, batch by batch; not `ordered`: as batches finish
        (the default engine's finish in order anyway). With `parts` (Ray only), the workers
        write the first model's rows as part files, and batches carry no classes."""
        if not sources:  # e.g. --resume with nothing left: no Ray to start
            return
        if self.engine == "ray":
            yield from self._ray(sources, ordered, parts)
        elif parts is not None:
            raise ValueError("part files are written by the Ray engine's workers")
        else:
            yield from self._here(sources)

    def _here(self, sources: Sequence[Source]) -> Iterator[RankedBatch]:
        """In this process: the next batch decodes on a thread pool while this one is
        classified; each image is resized once per geometry, whichever models share it."""
        geometries = list(dict.fromkeys(geometry_of(p) for p in self.preps))

        def load(source: Source) -> dict[Geometry, np.ndarray] | MobileNetV2Error:
            try:
                return decode_at(source, geometries, self.draft)
            except MobileNetV2Error as exc:  # the image's, or its URL's: a row with an error
                return exc

        start = 0
        for batch, loaded in decoded_batches(list(sources), self.batch_size, load):
            count = len(batch)
            good = np.array([not isinstance(x, MobileNetV2Error) for x in loaded], dtype=bool)
            decoded = [x for x in loaded if not isinstance(x, MobileNetV2Error)]
            classes, scores = [], []
            for classifier, prep in zip(self.classifiers, self.preps, strict=True):
                geometry = geometry_of(prep)
                pixels = np.stack([x[geometry] for x in decoded]) if decoded else None
                ranked = rank(classifier, pixels, good, self.top, prep["mean"], prep["std"])
                classes.append(ranked[0])
                scores.append(ranked[1])
            errors = [str(x) if isinstance(x, MobileNetV2Error) else "" for x in loaded]
            yield RankedBatch(list(range(start, start + count)), batch, errors, classes, scores)
            start += count

    def _ray(
        self, sources: Sequence[Source], ordered: bool, parts: PartSpec | None
    ) -> Iterator[RankedBatch]:
        from mobilenet_v2.inference.ray_engine import STALL_TIMEOUT, RayRankingJob, connected

        with connected(self.ray_address):
            job = RayRankingJob(
                list(sources),
                self.classifiers,
                self.preps,
                self.top,
                self.batch_size,
                self.workers,
                self.draft,
                ordered,
                self.stall_timeout or STALL_TIMEOUT,
                self.ray_address or os.environ.get("RAY_ADDRESS"),
                parts,
            )
            for batch in job:
                self.nodes = set(job.nodes)
                self.ray_workers = len(job.busy)
                yield batch


def classified_rows(
    runner: BatchRunner,
    sources: Sequence[Source],
    model: str,
    model_sha256: str,
    ordered: bool = True,
) -> Iterator[tuple[list[Source], list[Row]]]:
    """The first model's result rows, batch by batch: `(sources, rows)`, a row naming the
    classes that score above 0, best first, or saying why its image was not classified.
    In the inputs' order, or as batches finish when not `ordered`."""
    names = getattr(runner.classifiers[0], "labels", None)  # the model's own, from metadata
    for batch in runner.batches(sources, ordered):
        rows = [
            ranked_row(path_text(source), model, model_sha256, error, classes, scores, names)
            for source, error, classes, scores in zip(
                batch.sources, batch.errors, batch.classes[0], batch.scores[0], strict=True
            )
        ]
        yield batch.sources, rows


@dataclass
class ClassifySummary:
    """What `write_classified` did: `images` classified now (`failures` of them with an
    error), `kept` rows from an earlier run, and where a Ray run ran."""

    output: str
    images: int
    failures: int
    kept: int
    seconds: float
    nodes: set[str]
    ray_workers: int | None = None

    @classmethod
    def of(
        cls,
        runner: BatchRunner,
        output: str,
        todo: Sequence[Source],
        failures: int,
        kept: list[Row],
        start: float,
    ) -> ClassifySummary:
        """A finished run's summary (`start`: when it began, by `time.perf_counter`)."""
        seconds = time.perf_counter() - start
        return cls(
            output, len(todo), failures, len(kept), seconds, runner.nodes, runner.ray_workers
        )

    @property
    def rate(self) -> float | None:
        """Images per second, None when nothing was classified."""
        return self.images / self.seconds if self.images and self.seconds > 0 else None


def write_classified(
    runner: BatchRunner,
    sources: Sequence[Source],
    writer: ResultWriter,
    progress: bool = False,
) -> ClassifySummary:
    """Classify what `writer` does not hold yet, rows to its journal batch by batch as they
    finish (in any order: nothing finished waits for a slower batch, so an interruption loses
    none), then the output at once, in the inputs' order. An interruption (an exception,
    Ctrl-C) leaves the journal to resume from (`writer.rows_so_far` rows) and goes on up."""
    todo = writer.start(sources)
    failures = 0
    start = time.perf_counter()
    quiet = not progress or len(todo) <= runner.batch_size or runner.engine == "ray"
    bar = tqdm(total=len(todo), unit="img", file=sys.stderr, disable=quiet)  # Ray shows its own
    batches = classified_rows(runner, todo, writer.model, writer.model_sha256, ordered=False)
    try:
        for batch, rows in batches:
            failures += sum(row.error is not None for row in rows)
            writer.append(rows)
            bar.update(len(batch))
    except BaseException:
        try:
            batches.close()  # the Ray job stops now, not when the traceback is collected
        finally:  # whatever closing the job raises, the journal is kept and the bar ends
            writer.close()
            bar.close()
        raise
    bar.close()
    writer.finish(sources)
    return ClassifySummary.of(runner, str(writer.output), todo, failures, writer.kept, start)


def output_misnamed(output: str | os.PathLike, engine: str) -> str | None:
    """Why `output` names nothing `engine` writes (a result file; with Ray, also a directory
    of part files), or None."""
    if is_parts_output(output):
        if engine != "ray":
            return (
                f"{output}: a directory of part files is written by the Ray engine's workers "
                "(--engine ray); name a file (" + ", ".join(SUFFIXES) + ") otherwise"
            )
        return None
    if result_format(output) is None:
        return (
            f"{output}: unknown result format; use a name ending in "
            + ", ".join(SUFFIXES)
            + (", or a directory of part files (a name ending in /)" if engine == "ray" else "")
        )
    return None


def check_result_output(output: str | os.PathLike, engine: str) -> None:
    """Before any work: `output` names something `engine` writes (see `output_misnamed`),
    writable, with the format's library installed."""
    problem = output_misnamed(output, engine)
    if problem:
        raise MobileNetV2Error(problem)
    if is_parts_output(output):
        check_parts_output(output)
    else:
        check_output(output)  # writable, and pyarrow for Parquet


def write_output(
    runner: BatchRunner,
    sources: Sequence[Source],
    output: str | os.PathLike,
    resume: bool = False,
    progress: bool = False,
    writer_made: Callable[[ResultWriter | PartsWriter], None] | None = None,
) -> ClassifySummary:
    """The first model's rows to `output`: a result file through the journal, or (Ray) a
    directory of part files written by the workers. `writer_made` sees the writer before
    any work, to say after an interruption what it kept."""
    identity = model_identity(runner.classifiers[0])
    if is_parts_output(output):
        parts = PartsWriter(output, *identity, runner.top, resume)
        if writer_made is not None:
            writer_made(parts)
        return write_parts(runner, sources, parts)
    writer = ResultWriter(output, *identity, runner.top, resume)
    if writer_made is not None:
        writer_made(writer)
    return write_classified(runner, sources, writer, progress)


def write_parts(
    runner: BatchRunner, sources: Sequence[Source], writer: PartsWriter
) -> ClassifySummary:
    """Classify on Ray what `writer` does not hold yet, each worker writing its batches'
    rows as part files; then the parts become the output, checked and renamed at once. An
    interruption leaves the staging directory to `--resume` from, and goes on up."""
    todo = writer.start(sources)
    names = getattr(runner.classifiers[0], "labels", None)  # the model's own, from metadata
    failures = 0
    firsts: set[int] = set()  # the parts the rows went to, by their first inputs
    start = time.perf_counter()
    batches = runner.batches(todo, ordered=False, parts=writer.spec(names))
    try:
        for batch in batches:
            failures += sum(bool(error) for error in batch.errors)
            firsts.update(batch.parts)
    except BaseException:
        try:
            batches.close()  # the Ray job stops now, not when the traceback is collected
        finally:
            writer.abandon()
        raise
    writer.finish(firsts)
    output = f"{writer.output}{os.sep}"
    return ClassifySummary.of(runner, output, todo, failures, writer.kept, start)


def classify_images(
    sources: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | Classifier | None = None,
    *,
    output: str | os.PathLike | None = None,
    resume: bool = False,
    engine: str = "default",
    top: int = 5,
    batch_size: int | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    stall_timeout: float | None = None,
    draft: bool = False,
    resize: str | None = None,
    mean: float | None = None,
    std: float | None = None,
    progress: bool = False,
) -> list[Row] | ClassifySummary:
    """The top-`top` classes of every image that `sources` names, as `classify` finds them.

    `sources`: files, directories (recursive), globs or URLs, one or a list. `model`: a
    `.tflite` file (LiteRT), a loaded classifier (anything with `predict`, `name`,
    `input_size`, `preprocessing`, see `Classifier`), or None for the TF float model with
    ImageNet weights (the `tf` extra). `engine`: "default" (this process) or "ray" (Ray Data:
    a local Ray, or the cluster at `ray_address`; the `ray` extra; `workers` at most, one per
    CPU of the cluster; `stall_timeout` seconds without a finished batch end the job).

    Without `output`, returns one `Row` per image in the inputs' order (`error` says why an
    image could not be classified). With `output` (.parquet, .csv or .jsonl), writes the rows
    there atomically and returns a `ClassifySummary`; `resume=True` keeps the rows that file,
    or an interrupted run's journal, already has and classifies only the rest. On Ray,
    `output` may be a directory (a name ending in "/"): each worker writes its batches' rows
    there as part files (`mobilenet_v2.inference.result_parts`). `resize`,
    `mean` and `std` override the model's recorded preprocessing; `draft` decodes large JPEGs
    at a reduced scale (faster, slightly different)."""
    if output is None and resume:
        raise MobileNetV2Error("resume continues an output file: give output")
    if output is not None:
        check_result_output(output, engine)  # before any work
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    images = list_images(sources)
    if model is None:
        classifier = load_keras("imagenet")
    elif isinstance(model, (str, os.PathLike)):
        classifier = load_models([model], engine=engine)[0]
    else:
        classifier = model
    runner = BatchRunner(
        [classifier],
        min(top, ranked_classes(classifier)),
        engine=engine,
        batch_size=batch_size,
        workers=workers,
        ray_address=ray_address,
        stall_timeout=stall_timeout,
        draft=draft,
        overrides={"resize": resize, "mean": mean, "std": std},
    )
    runner.preflight()  # before any output or journal exists
    if output is None:
        identity = model_identity(classifier)
        return [row for _, rows in classified_rows(runner, images, *identity) for row in rows]
    return write_output(runner, images, output, resume, progress)
