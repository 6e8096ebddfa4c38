"""The Ray Data engine of `classify` and `evaluate`: an actor pool of inference workers,
each of which loads the models once, then reads, decodes and ranks batch after batch.

The pipeline, as in Ray Data's batch-inference examples, one callable per stage:

    sources (positions and names, a few bytes each)
        --> InferenceWorker (actors, one CPU each: read, decode and resize on a few threads,
            normalize, predict, the top-k classes and scores)
        --> the driver (`RankedBatch`es to the runner, `mobilenet_v2.inference.runner`)

Decoding runs inside the workers, not in tasks of its own: a decoded batch never enters
Ray's object store (128 images are 19 MB of pixels, 4 KB of results), and a cluster whose
CPUs all hold workers cannot starve the decoding, which on a node of one CPU used to wait
forever for a CPU the worker held (docs/benchmarks.md, "The Ray engine"). The pool takes one
worker per CPU of the cluster, at most `workers`; a cluster without a CPU is refused before
anything starts, and a job in which no batch finishes for `stall_timeout` seconds (a
cluster busy with other jobs, a node that went away) ends with one line saying so.

The model file's bytes travel through Ray's object store, so a worker on another machine
needs neither the file nor a download (a classifier object of another kind travels
pickled); images must be readable where the workers run (a URL, or a filesystem every node
mounts).

Every input carries its position; the driver keeps the first result for each and asserts
that none is missing, so a worker that dies and is retried cannot add or lose a row. Batches
finish in any order: a job asked for them as they finish (`ordered=False`, what `--output`
runs use: the journal takes rows in any order, the output is sorted at the end) passes each
on at once, so an interruption loses no finished row; an ordered job (rows printed or
returned) holds the rows that finish ahead of a slower batch in a reorder buffer.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
from mobilenet_v2.inference.result_parts import PartSpec
from mobilenet_v2.inference.results import path_key, ranked_row, write_results


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
        # A job abandoned under its iterator (a stall, an interruption) has Ray Data log
        # the iterator's failure, with a traceback, while Ray shuts down: it would bury the
        # one line that says why. Quiet for the shutdown only.
        data_log = logging.getLogger("ray.data")
        level = data_log.level
        data_log.setLevel(logging.CRITICAL + 1)
        try:
            ray.shutdown()
        finally:
            data_log.setLevel(level)


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


# Threads that read and decode inside each inference worker: reading a URL waits on the
# network, so a few overlap it with decoding; Pillow releases the GIL while it decodes.
DECODE_THREADS = 4
# How long a job may go without a finished batch before it ends with one line (a worker's
# first batch includes loading TensorFlow on a slow node: minutes are generous).
STALL_TIMEOUT = 300.0


class InferenceWorker:
    """An inference worker (a Ray actor holding one CPU): loads every model once, then for
    each batch of sources reads and decodes every image once per geometry and ranks the
    classes: `classes_<m>` (int32, -1 for failed images) and `scores_<m>` per model, best
    first, and `error` ("" when the image decoded)."""

    def __init__(
        self,
        models: list[WorkerModel],
        geometries: list[Geometry],
        draft: bool,
        top: int,
        parts: PartSpec | None = None,
    ) -> None:
        import ray

        from mobilenet_v2.inference.classifier import load_keras, load_tflite

        self.models = models
        self.geometries = geometries
        self.draft = draft
        self.top = top
        self.parts = parts
        if parts is not None and not Path(parts.staging).is_dir():
            raise MobileNetV2Error(
                f"{parts.staging}: not found where this worker runs; the output directory "
                "must be on a filesystem every Ray node mounts"
            )
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        self.worker = context.get_actor_id()
        self.decoder = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
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
                    # One thread unless told: the worker holds one CPU.
                    loaded = load_tflite(path, model.num_threads or 1, model.xnnpack)
                else:
                    loaded = load_keras(str(path), model.alpha, model.size)
                self.classifiers.append(loaded)

    def _decoded(self, source: str) -> dict[Geometry, np.ndarray] | str:
        try:
            return decode_at(source, self.geometries, self.draft)
        except MobileNetV2Error as exc:  # the image's, or its URL's: a row, as by default
            return str(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded = list(self.decoder.map(self._decoded, [str(s) for s in batch["source"]]))
        good = np.array([not isinstance(d, str) for d in decoded], dtype=bool)
        errors = [d if isinstance(d, str) else "" for d in decoded]
        result = {"index": batch["index"], "error": np.array(errors, dtype=object)}
        result["node"] = np.array([self.node] * len(decoded), dtype=object)
        result["worker"] = np.array([self.worker] * len(decoded), dtype=object)
        images = [d for d in decoded if not isinstance(d, str)]
        for m, (model, classifier) in enumerate(zip(self.models, self.classifiers, strict=True)):
            geometry = self.geometries[model.geometry]
            pixels = np.stack([d[geometry] for d in images]) if images else None
            classes, scores = rank(classifier, pixels, good, self.top, model.mean, model.std)
            result[f"classes_{m}"] = classes
            result[f"scores_{m}"] = scores
        if self.parts is not None:
            return self._write_part(batch, result)
        return result

    def _write_part(
        self, batch: dict[str, np.ndarray], result: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The first model's rows as this batch's part; to the driver, only what it counts:
        positions, errors, the node. A part is named by the batch's first input, and a
        batch is the same inputs when Ray runs it again, so a second run replaces its part."""
        spec = self.parts
        rows = [
            ranked_row(
                str(path), spec.model, spec.model_sha256, str(error), classes, scores, spec.names
            )
            for path, error, classes, scores in zip(
                batch["path"],
                result["error"],
                result["classes_0"],
                result["scores_0"],
                strict=True,
            )
        ]
        first = int(batch["index"].min())
        write_results(spec.part(first), rows, spec.top)
        slim = {k: result[k] for k in ("index", "error", "node", "worker")}
        slim["part"] = np.full(len(rows), first, np.int64)  # which part each row is in
        return slim


def worker_memory(models: list[WorkerModel]) -> float:
    """Bytes an inference worker holds (the runtime, TensorFlow if asked for, the models):
    Ray places workers by it, so that a node of many CPUs and little memory is not given
    more workers than it can hold."""
    return (2 if any(m.kind == "keras" for m in models) else 0.5) * 2**30


def worker_count(
    requested: int | None, cpus: float, address: str | None, memory: float = 0, need: float = 0
) -> int:
    """One inference worker per CPU of the cluster (and per `need` bytes of its `memory`,
    where Ray reports it), at most `requested`: a worker holds its CPU for the whole job, so
    a pool larger than the cluster would wait for CPUs that never free. A cluster without
    room for one is refused."""
    where = f"the Ray cluster at {address}" if address else "this Ray"
    if cpus < 1:
        raise MobileNetV2Error(
            f"{where} has no CPU for an inference worker (each holds one); add a node with "
            "CPUs (`ray start --num-cpus N`)"
        )
    room = int(cpus)
    if need and memory:
        room = min(room, int(memory // need))
        if room < 1:
            raise MobileNetV2Error(
                f"{where} has {memory / 2**30:.1f} GiB of memory for workers; an inference "
                f"worker of these models needs {need / 2**30:.1f} GiB"
            )
    return min(requested or room, room)


@dataclass
class RayRankingJob:
    """Rank `sources` with `classifiers` on Ray Data; iterate for `RankedBatch`es as they
    finish, in the inputs' order unless not `ordered`. After the job starts, `workers` says
    how many inference workers the cluster could hold (at most the one asked for); `nodes`
    and `busy` say on which nodes and by which workers batches ran (in a short job, a
    worker that starts late may find no batch left).

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
    stall_timeout: float = STALL_TIMEOUT
    address: str | None = None  # for messages only: where the cluster is
    parts: PartSpec | None = None  # the workers write the rows: batches carry no classes
    nodes: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)  # the workers that ran batches

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
        if self.parts is not None:  # what each row names its input by
            for item, source in zip(items, self.sources, strict=True):
                item["path"] = path_key(source)
        need = worker_memory(models)
        resources = ray.cluster_resources()
        self.workers = worker_count(
            self.workers, resources.get("CPU", 0), self.address, resources.get("memory", 0), need
        )
        # The job starts once the workers free now are up (each loads the models first),
        # within the stall deadline: a short job would otherwise leave a slower worker none.
        context.wait_for_min_actors_s = max(1, int(self.stall_timeout))
        # Start as many workers as are free now; the pool grows to the rest as they free.
        # Never more than there are batches.
        free = int(ray.available_resources().get("CPU", 0))
        blocks = max(1, -(-len(items) // self.batch_size))
        most = min(self.workers, blocks)
        pool = ray.data.ActorPoolStrategy(min_size=max(1, min(free, most)), max_size=most)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            InferenceWorker,
            fn_constructor_kwargs={
                "models": models,
                "geometries": geometries,
                "draft": self.draft,
                "top": self.top,
                "parts": self.parts,
            },
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=pool,
            num_cpus=1,
            memory=need,
        )
        batches = dataset.iter_batches(batch_size=None, batch_format="numpy")
        ranked = 0 if self.parts is not None else len(models)  # models whose classes return
        # Results come as batches finish, each input once: a retried batch cannot add a row.
        # Ordered, they go out in the inputs' order through a reorder buffer of small rows.
        arrived = bytearray(len(self.sources))  # 1 where an input's result came
        count = 0
        pending: dict[int, Ranked] = {}
        done = 0  # ordered: the inputs before this one have gone out
        try:
            for batch in _with_deadline(batches, self.stall_timeout, self._stalled):
                self.nodes.update(batch["node"])
                self.busy.update(batch["worker"])
                fresh: dict[int, Ranked] = {}
                parts = set()
                for row, position in enumerate(int(p) for p in batch["index"]):
                    if arrived[position]:
                        continue
                    arrived[position] = 1
                    count += 1
                    error = str(batch["error"][row] or "")
                    where = located[position]  # messages name each input as it was given
                    if error.startswith(where + ":"):
                        error = spelled[where] + error[len(where) :]
                    classes = [batch[f"classes_{m}"][row] for m in range(ranked)]
                    scores = [batch[f"scores_{m}"][row] for m in range(ranked)]
                    fresh[position] = (error, classes, scores)
                    if self.parts is not None:
                        parts.add(int(batch["part"][row]))
                if not self.ordered:
                    if fresh:
                        yield self._ranked(fresh, ranked, parts)
                    continue
                pending.update(fresh)
                ready = {}
                while done in pending:
                    ready[done] = pending.pop(done)
                    done += 1
                if ready:
                    yield self._ranked(ready, ranked)
        except ray.exceptions.GetTimeoutError:  # the workers did not start in time
            raise MobileNetV2Error(self._stalled()) from None
        except ray.exceptions.RayError as exc:
            raise _ray_failure(exc) from exc
        if count != len(self.sources):
            raise RuntimeError(
                f"Ray returned {count} results for {len(self.sources)} inputs"
            )  # a bug, not a user error: the CLI reports it as internal

    def _stalled(self) -> str:
        """Why a job may have stopped making progress, from what the cluster holds now."""
        import ray

        total = ray.cluster_resources().get("CPU", 0)
        free = ray.available_resources().get("CPU", 0)
        return (
            f"no batch finished in {self.stall_timeout:g} s; the cluster has {total:g} "
            f"CPU{'s' if total != 1 else ''}, {free:g} free, and this job's "
            + (
                "1 inference worker holds one"
                if self.workers == 1
                else f"{self.workers} inference workers hold one each"
            )
            + " (a cluster busy with other jobs, or a node that went away?)"
        )

    def _ranked(
        self, rows: dict[int, Ranked], models: int, parts: set[int] | None = None
    ) -> RankedBatch:
        return RankedBatch(
            positions=list(rows),
            sources=[self.sources[p] for p in rows],
            errors=[error for error, _, _ in rows.values()],
            classes=[np.stack([r[1][m] for r in rows.values()]) for m in range(models)],
            scores=[np.stack([r[2][m] for r in rows.values()]) for m in range(models)],
            parts=parts or set(),
        )


def _with_deadline(
    batches: Iterator[dict[str, np.ndarray]], timeout: float, why: Callable[[], str]
) -> Iterator[dict[str, np.ndarray]]:
    """`batches`, drawn on a thread of their own, each within `timeout` seconds of being
    asked for; past it, a MobileNetV2Error whose message `why()` gives. (Ray Data's iterator
    has no timeout of its own; the thread ends with Ray, which the caller shuts down.)"""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        """Hand `item` over unless the caller has gone; False when it has."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in batches:
                if not offer(("batch", batch)):
                    return
            offer(("end", None))
        except BaseException as exc:  # handed to the caller, who raises it
            offer(("error", exc))

    threading.Thread(target=pump, name="ray-batches", daemon=True).start()
    try:
        while True:
            try:
                kind, item = handoff.get(timeout=timeout)
            except queue.Empty:
                raise MobileNetV2Error(why()) from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


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
    ours = next((e for e in seen if isinstance(e, MobileNetV2Error)), None)
    if ours is not None:  # a worker's own one-line error (a part it cannot write, say)
        return MobileNetV2Error(f"a Ray worker: {first_line(ours)}")
    return RuntimeError(f"the Ray job failed: {type(root).__name__}: {first_line(root)}")
