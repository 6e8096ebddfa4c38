"""The Ray Data engine of `classify` and `evaluate`: decoding tasks feed an actor pool of
inference workers, each of which loads the models once.

The pipeline, as in Ray Data's batch-inference examples, one callable per stage:

    sources --> decode_batch (tasks: read, decode, resize to uint8)
            --> InferenceWorker (actors: normalize, predict, the top-k classes and scores)
            --> the driver (`RankedBatch`es to the runner, `mobilenet_v2.inference.runner`)

Resized images travel between stages as uint8 (a quarter of float32); normalizing in the
worker is the same arithmetic as `load_image`, so both engines compute the same numbers. The
model file's bytes travel through Ray's object store, so a worker on another machine needs
neither the file nor a download (a classifier object of another kind travels pickled); images
must be readable where the decoding runs (a URL, or a filesystem every node mounts).

Every input carries its position; the driver keeps the first result for each and asserts
that none is missing, so a worker that dies and is retried cannot add or lose a row. Batches
finish in any order: a job asked for them as they finish (`ordered=False`, what `--output`
runs use: the journal takes rows in any order, the output is sorted at the end) passes each
on at once, so an interruption loses no finished row; an ordered job (rows printed or
returned) holds the rows that finish ahead of a slower batch in a reorder buffer.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error, first_line
from mobilenet_v2.base.extras import missing_extra
from mobilenet_v2.base.preprocess import Geometry, geometry_of
from mobilenet_v2.base.sources import Source, is_url
from mobilenet_v2.inference.batches import RAY_BATCH, RankedBatch, decode_at, rank


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise missing_extra(exc, "ray", "--engine ray", "ray") from exc
    return ray


@contextmanager
def connected(address: str | None = None) -> Iterator[Any]:
    """Ray, connected to the cluster at `address` (else $RAY_ADDRESS), or to a local one it
    starts here and stops at the end. A session already connected is used as it is."""
    ray = _ray()  # the extra's hint before anything else
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    try:
        ray.init(
            # "local": a new instance of our own, even where a `ray start` cluster runs
            # (which `address=None` would join)
            address=address or "local",
            include_dashboard=False,
            log_to_driver=False,  # workers' TensorFlow and LiteRT chatter stays in Ray's logs
            logging_level="error",
        )
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "version mismatch" not in str(exc).lower():
            raise  # not the cluster's set-up: a bug
        if not address:
            raise MobileNetV2Error(f"cannot start Ray here ({first_line(exc)})") from None
        raise MobileNetV2Error(
            f"cannot connect to the Ray cluster at {address} ({first_line(exc)}); a cluster "
            "started by Ray 2.59 or later also wants RAY_AUTH_MODE=token and its token "
            "(RAY_AUTH_TOKEN, see `ray get-auth-token` on the head) here"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nobody answers at: `ray.init` would retry for minutes.
    `host:port` (and `ray://host:port`) are probed; `auto` and the like are Ray's to read."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if match is None:
        return
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise MobileNetV2Error(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); is "
            "`ray start --head` running there, and is the port open?"
        ) from None


# One input's result on the driver: its error ("" when ranked), and per model its top-k
# classes and scores.
Ranked = tuple[str, list[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class WorkerModel:
    """What an inference worker needs to load one model: its file, shipped by value."""

    kind: str  # "tflite", "keras", or "object" (a classifier of neither kind, pickled)
    file_name: str
    content: bytes  # the file
    geometry: int  # which of the decoded sizes it reads
    mean: float
    std: float
    alpha: float = 1.0
    size: int = 224
    num_threads: int | None = None
    xnnpack: bool | None = None
    classifier: Any = None  # kind "object": the classifier itself


def preflight(classifiers: list[Any], address: str | None) -> None:
    """What can fail before any work, checked before any output or journal is created:
    the extra, the models, the cluster's address."""
    _ray()
    check_shippable(classifiers)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)


def check_shippable(classifiers: list[Any]) -> None:
    """Before Ray starts: every TF model must come from a file that workers can load the
    same way (LiteRT models always do; any other classifier travels pickled)."""
    for classifier in classifiers:
        tf_model = getattr(classifier, "raw", None) is None and hasattr(classifier, "weights_file")
        if tf_model and classifier.weights_file is None:
            raise MobileNetV2Error(
                "--engine ray needs a weights file: with random initialization (--weights "
                "none) every worker would build a different model"
            )


def worker_models(
    classifiers: list[Any], preps: list[dict[str, Any]]
) -> tuple[list[WorkerModel], list[Geometry]]:
    """The models (loaded once here, on the driver, to check them) as workers rebuild them,
    and the distinct resize geometries the decoding must produce."""
    geometries: list[Geometry] = []
    models = []
    for classifier, prep in zip(classifiers, preps, strict=True):
        geometry = geometry_of(prep)
        if geometry not in geometries:
            geometries.append(geometry)
        common = {"geometry": geometries.index(geometry), "mean": prep["mean"], "std": prep["std"]}
        raw = getattr(classifier, "raw", None)
        if raw is not None:
            models.append(
                WorkerModel(
                    "tflite",
                    os.path.basename(str(classifier.path)),
                    raw,
                    num_threads=classifier.num_threads,
                    xnnpack=classifier.xnnpack,
                    **common,
                )
            )
            continue
        if not hasattr(classifier, "weights_file"):  # neither LiteRT nor the TF model
            models.append(
                WorkerModel("object", classifier.name, b"", classifier=classifier, **common)
            )
            continue
        weights = classifier.weights_file  # check_shippable: not None
        content = Path(weights).read_bytes()
        models.append(
            WorkerModel(
                "keras",
                os.path.basename(weights),
                content,
                alpha=classifier.alpha,
                size=classifier.input_size[0],
                **common,
            )
        )
    return models, geometries


def decode_batch(
    batch: dict[str, np.ndarray], geometries: list[Geometry], draft: bool
) -> dict[str, np.ndarray]:
    """Decode and resize a batch of sources: `pixels_<g>` (uint8 NHWC, one per geometry;
    zeros where the image failed) and `error` ("" when the image decoded)."""
    import ray

    count = len(batch["index"])
    pixels = [np.zeros((count, *size, 3), np.uint8) for size, _, _ in geometries]
    errors = []
    for i, source in enumerate(batch["source"]):
        try:
            decoded = decode_at(str(source), geometries, draft)
        except MobileNetV2Error as exc:  # the image's, or its URL's: a row, as by default
            errors.append(str(exc))
            continue
        for out, geometry in zip(pixels, geometries, strict=True):
            out[i] = decoded[geometry]
        errors.append("")
    node = ray.get_runtime_context().get_node_id()
    result = {"index": batch["index"], "error": np.array(errors, dtype=object)}
    result.update({f"pixels_{g}": p for g, p in enumerate(pixels)})
    result["decode_node"] = np.array([node] * count, dtype=object)
    return result


class InferenceWorker:
    """An inference worker (a Ray actor): loads every model once, then ranks the classes of
    each batch: `classes_<m>` (int32, -1 for failed images) and `scores_<m>` per model, best
    first."""

    def __init__(self, models: list[WorkerModel], top: int) -> None:
        import ray

        from mobilenet_v2.inference.classifier import load_keras, load_tflite

        self.models = models
        self.top = top
        self.node = ray.get_runtime_context().get_node_id()
        self.classifiers = []
        # The files only while loading: both classifiers keep what they read in memory, so
        # a worker that dies leaves nothing behind.
        with tempfile.TemporaryDirectory(prefix="mobilenet-v2-worker-") as folder:
            for number, model in enumerate(models):
                if model.kind == "object":
                    self.classifiers.append(model.classifier)
                    continue
                path = Path(folder, str(number), model.file_name)
                path.parent.mkdir()
                path.write_bytes(model.content)
                if model.kind == "tflite":
                    # One thread unless told: the worker holds one CPU; the others decode.
                    loaded = load_tflite(path, model.num_threads or 1, model.xnnpack)
                else:
                    loaded = load_keras(str(path), model.alpha, model.size)
                self.classifiers.append(loaded)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        good = np.array([not e for e in batch["error"]], dtype=bool)
        count = len(good)
        result = {"index": batch["index"], "error": batch["error"]}
        result["decode_node"] = batch["decode_node"]
        result["rank_node"] = np.array([self.node] * count, dtype=object)
        for m, (model, classifier) in enumerate(zip(self.models, self.classifiers, strict=True)):
            pixels = batch[f"pixels_{model.geometry}"][good]
            classes, scores = rank(classifier, pixels, good, self.top, model.mean, model.std)
            result[f"classes_{m}"] = classes
            result[f"scores_{m}"] = scores
        return result


@dataclass
class RayRankingJob:
    """Rank `sources` with `classifiers` on Ray Data; iterate for `RankedBatch`es as they
    finish, in the inputs' order unless not `ordered`. `decode_nodes` and `rank_nodes` say
    where the work ran.

    An ordered job holds what finishes ahead of the first unfinished input: a few hundred bytes
    a row (positions, top-k classes and scores, no pixels), at most every input behind one
    slow batch. Unordered, nothing is held but one byte per input (whether it arrived)."""

    sources: list[Source]
    classifiers: list[Any]
    preps: list[dict[str, Any]]
    top: int
    batch_size: int = RAY_BATCH
    workers: int | None = None
    draft: bool = False
    ordered: bool = True
    decode_nodes: set[str] = field(default_factory=set)
    rank_nodes: set[str] = field(default_factory=set)

    def __iter__(self) -> Iterator[RankedBatch]:
        import ray
        import ray.data
        import ray.exceptions

        models, geometries = worker_models(self.classifiers, self.preps)
        # Workers run elsewhere: local paths become absolute, without resolving `..`
        located = [s if is_url(s) else os.path.join(os.getcwd(), s) for s in self.sources]
        spelled = {loc: str(src) for loc, src in zip(located, self.sources, strict=True)}
        context = ray.data.DataContext.get_current()
        context.print_on_execution_start = False
        items = [{"index": i, "source": str(s)} for i, s in enumerate(located)]
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Decoding and inference each get CPUs: by default up to half the cluster's CPUs
        # for inference workers (each loads the models once), the rest decodes.
        workers = self.workers or max(1, cpus // 2)
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=workers)
        dataset = (
            ray.data.from_items(items, override_num_blocks=max(1, len(items) // self.batch_size))
            .map_batches(
                decode_batch,
                fn_kwargs={"geometries": geometries, "draft": self.draft},
                batch_size=self.batch_size,
                batch_format="numpy",
            )
            .map_batches(
                InferenceWorker,
                fn_constructor_kwargs={"models": models, "top": self.top},
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=pool,
                num_cpus=1,
                # What a worker holds (the runtime, TensorFlow if asked for, the models):
                # Ray places workers by it, and it keeps Ray from fusing the decoding
                # into the inference workers, which would serialize the two.
                memory=(2 if any(m.kind == "keras" for m in models) else 0.5) * 2**30,
            )
        )
        # Results come as batches finish, each input once: a retried batch cannot add a row.
        # Ordered, they go out in the inputs' order through a reorder buffer of small rows.
        arrived = bytearray(len(self.sources))  # 1 where an input's result came
        count = 0
        pending: dict[int, Ranked] = {}
        done = 0  # ordered: the inputs before this one have gone out
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                self.decode_nodes.update(batch["decode_node"])
                self.rank_nodes.update(batch["rank_node"])
                fresh: dict[int, Ranked] = {}
                for row, position in enumerate(int(p) for p in batch["index"]):
                    if arrived[position]:
                        continue
                    arrived[position] = 1
                    count += 1
                    error = str(batch["error"][row] or "")
                    where = located[position]  # messages name each input as it was given
                    if error.startswith(where + ":"):
                        error = spelled[where] + error[len(where) :]
                    classes = [batch[f"classes_{m}"][row] for m in range(len(models))]
                    scores = [batch[f"scores_{m}"][row] for m in range(len(models))]
                    fresh[position] = (error, classes, scores)
                if not self.ordered:
                    if fresh:
                        yield self._ranked(fresh, len(models))
                    continue
                pending.update(fresh)
                ready = {}
                while done in pending:
                    ready[done] = pending.pop(done)
                    done += 1
                if ready:
                    yield self._ranked(ready, len(models))
        except ray.exceptions.RayError as exc:
            raise _ray_failure(exc) from exc
        if count != len(self.sources):
            raise RuntimeError(
                f"Ray returned {count} results for {len(self.sources)} inputs"
            )  # a bug, not a user error: the CLI reports it as internal

    def _ranked(self, rows: dict[int, Ranked], models: int) -> RankedBatch:
        return RankedBatch(
            positions=list(rows),
            sources=[self.sources[p] for p in rows],
            errors=[error for error, _, _ in rows.values()],
            classes=[np.stack([r[1][m] for r in rows.values()]) for m in range(models)],
            scores=[np.stack([r[2][m] for r in rows.values()]) for m in range(models)],
        )


def _ray_failure(exc: BaseException) -> Exception:
    """A failed Ray job in one line: a worker that cannot import what it needs is the
    cluster's set-up (every node needs the package and its extras), anything else a bug."""
    seen, cause = [], exc
    while cause is not None and len(seen) < 10:
        seen.append(cause)
        cause = getattr(cause, "cause", None) or cause.__cause__
    root = seen[-1]
    missing = next((e for e in seen if isinstance(e, ImportError)), None)
    if missing is not None:
        return MobileNetV2Error(
            f"a Ray worker cannot import {missing.name or 'a module'} ({first_line(missing)}): "
            "install the same mobilenet-v2 with its [ray] extra, and [tf] for --weights, on "
            "every node"
        )
    return RuntimeError(f"the Ray job failed: {type(root).__name__}: {first_line(root)}")
