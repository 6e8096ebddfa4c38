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
from collections.abc import Iterable, Iterator, Sequence
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
    each model's recorded preprocessing. After a Ray run, `nodes` says where it ran."""

    classifiers: list[Classifier]
    top: int
    engine: str = "default"
    batch_size: int | None = None  # None: the engine's default
    workers: int | None = None  # Ray: at most this many inference workers
    ray_address: str | None = None  # Ray: the cluster (None: $RAY_ADDRESS, else a local Ray)
    draft: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)

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

    def batches(self, sources: Sequence[Source], ordered: bool = True) -> Iterator[RankedBatch]:
        """Every source's ranked classes, batch by batch; not `ordered`: as batches finish
        (the default engine's finish in order anyway)."""
        if not sources:  # e.g. --resume with nothing left: no Ray to start
            return
        if self.engine == "ray":
            yield from self._ray(sources, ordered)
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

    def _ray(self, sources: Sequence[Source], ordered: bool) -> Iterator[RankedBatch]:
        from mobilenet_v2.inference.ray_engine import RayRankingJob, connected

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
            )
            for batch in job:
                self.nodes = job.decode_nodes | job.rank_nodes
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
    seconds = time.perf_counter() - start
    return ClassifySummary(
        str(writer.output), len(todo), failures, len(writer.kept), seconds, runner.nodes
    )


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
    a local Ray, or the cluster at `ray_address`; the `ray` extra).

    Without `output`, returns one `Row` per image in the inputs' order (`error` says why an
    image could not be classified). With `output` (.parquet, .csv or .jsonl), writes the rows
    there atomically and returns a `ClassifySummary`; `resume=True` keeps the rows that file,
    or an interrupted run's journal, already has and classifies only the rest. `resize`,
    `mean` and `std` override the model's recorded preprocessing; `draft` decodes large JPEGs
    at a reduced scale (faster, slightly different)."""
    if output is None and resume:
        raise MobileNetV2Error("resume continues an output file: give output")
    if output is not None:
        if result_format(output) is None:
            raise MobileNetV2Error(
                f"{output}: unknown result format; use a name ending in " + ", ".join(SUFFIXES)
            )
        check_output(output)  # before any work: writable, and pyarrow for Parquet
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
        draft=draft,
        overrides={"resize": resize, "mean": mean, "std": std},
    )
    runner.preflight()  # before any output or journal exists
    name, sha256 = model_identity(classifier)
    if output is None:
        return [row for _, rows in classified_rows(runner, images, name, sha256) for row in rows]
    writer = ResultWriter(output, name, sha256, runner.top, resume)
    return write_classified(runner, images, writer, progress)
