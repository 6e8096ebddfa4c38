"""Convert MobileNetV2 to TensorFlow Lite: full-integer INT8 with real calibration, float16,
dynamic-range or float32. The file records its own preprocessing and labels."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.calibration import CALIBRATION_SIZE, calibration_images, images_digest
from mobilenet_v2.base.download import all_downloads, download
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.labels import imagenet_classes
from mobilenet_v2.base.outputs import check_writable, write_atomic
from mobilenet_v2.base.preprocess import DEFAULT_PREPROCESSING
from mobilenet_v2.base.provenance import weights_label
from mobilenet_v2.base.quiet import silenced_stderr, silenced_stdout
from mobilenet_v2.lite.model_metadata import with_standard_metadata
from mobilenet_v2.lite.record import (
    INTEGER_QUANTIZATIONS,
    QUANTIZATIONS,
    STEPS,
    check_io_type,
    embed_metadata,
)
from mobilenet_v2.lite.tflite_file import read_tflite
from mobilenet_v2.lite.weight_grid import Grid, keep_weight_grid, source_grids
from mobilenet_v2.tf._tf import keras, tf
from mobilenet_v2.tf.equalization import folded_biases, rewrite
from mobilenet_v2.tf.model import IMAGENET_ALPHAS, IMAGENET_SIZES
from mobilenet_v2.tf.weights import WEIGHTS_HINT, imagenet_weights_path

# (x - 128) / 128 maps every 8-bit pixel exactly onto the int8 input grid (scale 1/128, zero
# point 0; uint8: zero point 128), as TF-slim's quantized MobileNets do. With 127.5 the
# calibrated scale is 2/255 and x / scale lands on .5: rounding then merges pixel levels.
# Its top-1 cost is inside the kernels' own spread; tests check the grid itself
# (docs/benchmarks.md, "Accuracy across kernels").
INT8_INPUT = {"mean": 128.0, "std": 128.0}
# How the model's description names each rewrite (`record.STEPS`).
STEP_NAMES = {
    "relu": "ReLU for ReLU6",
    "equalize": "cross-layer equalized",
    "absorb_bias": "high biases absorbed",
    "bias_correction": "bias corrected",
}
IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
# What to do instead when imagenette cannot be downloaded, in `mobilenet-v2 convert`'s flags.
CALIBRATION_HINT = "pass --calibration-dir DIR with your own images"


def imagenette_validation_dir(cache: Path | None = None, hint: str = CALIBRATION_HINT) -> Path:
    """The imagenette2-160 validation images (the seed's calibration source), downloaded and
    unpacked once into the Keras cache (`$KERAS_HOME/datasets`); `hint` ends the error of a
    failed download, in the caller's flags."""
    from mobilenet_v2.tf.weights import keras_cache_dir

    cache = cache or keras_cache_dir().parent / "datasets"
    target = cache / "imagenette2-160" / "val"
    if target.is_dir():
        return target
    archive = cache / "imagenette2-160.tgz"
    if not archive.is_file():
        download(IMAGENETTE_URL, archive, hint=hint)
    staging = Path(tempfile.mkdtemp(prefix=".imagenette-", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        os.replace(staging / "imagenette2-160", cache / "imagenette2-160")
    except (tarfile.TarError, OSError) as exc:
        raise MobileNetV2Error(f"{archive}: cannot unpack ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def convert(
    model: keras.Model,
    quantize: str = "int8",
    io_type: str = "int8",
    calibration: np.ndarray | None = None,
    per_tensor: bool = False,
) -> bytes:
    """The TFLite flatbuffer of `model`.

    `int8`: full-integer post-training quantization (per-channel weights, or one scale per
    weight tensor with `per_tensor`; int8 activations, TFLITE_BUILTINS_INT8 only), calibrated
    on `calibration`; input and output `io_type`. `int16x8`: the same with int16 activations
    (zero point 0) and int64 biases, TFLite's 16x8 mode; `io_type` float32 or int16.
    `float16`: float16 weights; `dynamic`: int8 weights, float activations; `none`: float32.
    """
    converter = make_converter(model, quantize, io_type, calibration, per_tensor)
    # No catch-all here: our model always converts, so a converter failure is a bug to show
    # with its traceback (`--debug`), not bad input to dress up as one line.
    with silenced_stderr(), silenced_stdout():  # the converter prints its MLIR chatter
        return converter.convert()


def make_converter(
    model: keras.Model,
    quantize: str = "int8",
    io_type: str = "int8",
    calibration: np.ndarray | None = None,
    per_tensor: bool = False,
) -> tf.lite.TFLiteConverter:
    """The converter that `convert` runs (also what QuantizationDebugger takes)."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}; received {quantize!r}")
    check_io_type(quantize, io_type)
    if per_tensor and quantize != "int8":
        raise ValueError("per-tensor weights need --quantize int8")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize in INTEGER_QUANTIZATIONS:
        if calibration is None or not len(calibration):
            raise ValueError(f"{quantize} quantization needs calibration images")
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            if quantize == "int8"
            else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        dtype = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}
        converter.inference_input_type = converter.inference_output_type = dtype[io_type]
        # The converter's own switch (no public name in TF 2.21): every weight tensor gets
        # one scale, as accelerators without per-channel support need. Checked, since
        # setting an attribute a later TensorFlow lacks would silently do nothing.
        if per_tensor and not hasattr(converter, "_experimental_disable_per_channel"):
            raise MobileNetV2Error(
                f"--per-tensor: TensorFlow {tf.__version__}'s converter has no per-tensor switch"
            )
        converter._experimental_disable_per_channel = per_tensor
    return converter


def metadata_record(
    preprocessing: dict[str, Any], labels: list[str] | None = None, **facts: Any
) -> dict[str, Any]:
    """What inference needs to feed the model right, plus provenance facts; `labels`: a
    trained model's classes (default: ImageNet's, as "synset name")."""
    if labels is None:
        labels = [f"{c.synset} {c.name}" for c in imagenet_classes()]
    return {"preprocessing": preprocessing, "labels": list(labels), **facts}


def convert_file(
    output: str | os.PathLike,
    weights: str | None,
    alpha: float | None = None,
    size: int | None = None,
    quantize: str = "int8",
    io_type: str = "int8",
    calibration_dir: str | os.PathLike | None = None,
    calibration_size: int = CALIBRATION_SIZE,
    seed: int = 0,
    preprocessing: dict[str, Any] | None = None,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    per_tensor: bool = False,
    init_seed: int | None = None,
    calibration_hint: str = CALIBRATION_HINT,
    size_flag: str = "--calibration-size",
    weights_hint: str = WEIGHTS_HINT,
    steps: Sequence[str] = (),
    keep_grid: bool = True,
) -> Path:
    """Build, calibrate, convert and write; the file embeds its preprocessing and labels.
    The weights are loaded before the calibration folder is scanned, and the downloads it
    needs (ImageNet weights, imagenette) are all tried first: offline, one error lists them.
    `force`, `warn` and `size_flag`: as for `calibration_images`; `calibration_hint`: as for
    `imagenette_validation_dir`, `weights_hint`: as for `imagenet_weights_path` (callers
    name their own flags in all); `init_seed`: seeded
    random weights (`weights=None`), recorded in the file. A model trained on a user's classes
    (`mobilenet-v2 train`) brings its labels, width and size (`size` overrides it); `alpha`
    and `size` otherwise default to 1.0 and 224. `steps` (int8): rewrites of the float model
    before conversion, on the calibration images (`equalization.rewrite`), recorded.
    `keep_grid` (int8, int16x8): weights from a quantized `.tflite` keep its grid
    (`weight_grids`); False leaves the converter's own scales, as a float source gets."""
    with interrupts_win() as check_interrupt:
        return _convert_file(
            output, weights, alpha, size, quantize, io_type, calibration_dir,
            calibration_size, seed, preprocessing, force, warn, per_tensor, init_seed,
            calibration_hint, size_flag, weights_hint, steps, keep_grid, check_interrupt,
        )  # fmt: skip


@contextlib.contextmanager
def interrupts_win() -> Iterator[Callable[[], None]]:
    """A check that raises KeyboardInterrupt when SIGINT came during the block, even where
    the KeyboardInterrupt it raised was swallowed on its way up: by a `__del__`, a weakref or
    garbage-collector callback, or a callback from TensorFlow's C++, where Python only prints
    "Exception ignored" (on a stderr the converter's chatter is silenced on). Python's own
    handler otherwise; elsewhere than the main thread, or under a handler of the caller's, the
    check only checks nothing."""
    interrupted = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def check() -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt

    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if not ours:
        yield check
        return
    signal.signal(signal.SIGINT, handler)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _convert_file(
    output: str | os.PathLike,
    weights: str | None,
    alpha: float | None,
    size: int | None,
    quantize: str,
    io_type: str,
    calibration_dir: str | os.PathLike | None,
    calibration_size: int,
    seed: int,
    preprocessing: dict[str, Any] | None,
    force: bool,
    warn: Callable[[str], None] | None,
    per_tensor: bool,
    init_seed: int | None,
    calibration_hint: str,
    size_flag: str,
    weights_hint: str,
    steps: Sequence[str],
    keep_grid: bool,
    check_interrupt: Callable[[], None],
) -> Path:
    from mobilenet_v2.base.trained import model_spec
    from mobilenet_v2.tf.model import MobileNetV2

    check_writable(output)
    spec = model_spec(weights, alpha, size)
    alpha, size = spec.alpha, spec.size
    labels = None if spec.labels is None else list(spec.labels)
    integer = quantize in INTEGER_QUANTIZATIONS
    prep = {**DEFAULT_PREPROCESSING, **(INT8_INPUT if integer else {})}
    prep = {**prep, **(preprocessing or {}), "size": size}
    check_io_type(quantize, io_type)
    if steps and quantize != "int8":
        raise ValueError(f"{', '.join(steps)}: rewrites for --quantize int8")

    def build() -> keras.Model:
        return MobileNetV2(
            input_shape=(size, size, 3),
            alpha=alpha,
            weights=weights,
            classes=spec.classes,
            init_seed=init_seed,
        )

    # A weights file loads first: a bad one fails before any download or the (long) scan of
    # the calibration folder. What must be downloaded is all tried before failing: offline,
    # one error lists every file, each with what to do instead.
    model = None if weights == "imagenet" else build()
    _, imagenette = all_downloads(
        lambda: (
            weights == "imagenet"
            and alpha in IMAGENET_ALPHAS  # else MobileNetV2 says which widths have weights
            and imagenet_weights_path(
                alpha, size if size in IMAGENET_SIZES else 224, True, hint=weights_hint
            )
        ),
        lambda: (
            integer and not calibration_dir and imagenette_validation_dir(hint=calibration_hint)
        ),
    )
    if model is None:
        model = build()  # the ImageNet weights come from the cache now
    check_interrupt()
    calibration = None
    if integer:
        source = calibration_dir or imagenette  # fetched above
        extra = {"warn": warn} if warn else {}
        calibration = calibration_images(
            source, calibration_size, seed, prep, force=force, size_flag=size_flag, **extra
        )
        check_interrupt()
    if steps:
        model = rewrite(model, steps, calibration, per_channel=not per_tensor)
        check_interrupt()
    data = convert(model, quantize, io_type, calibration, per_tensor)
    check_interrupt()  # a Ctrl-C that the converter swallowed still wins: nothing written
    grids, not_kept = weight_grids(weights, quantize, per_tensor, steps)
    kept = None
    if grids is not None and keep_grid:
        data, kept = keep_weight_grid(data, grids, folded_biases(model))
    elif not_kept and warn:
        warn(f"the weights leave their source's quantization grid: {not_kept}")
    record = metadata_record(
        {k: prep[k] for k in ("mean", "std", "resize", "crop_fraction")},
        labels,
        alpha=alpha,
        weights=weights_label(weights, init_seed),
        init_seed=init_seed,
        quantize=quantize,
        io_type=io_type,
        per_tensor=per_tensor,
        steps=[step for step in STEPS if step in steps],
        weight_grid=None if kept is None else kept.record(),
        calibration=None if calibration is None else calibration_record(calibration, source, seed),
    )
    data = standard_metadata(embed_metadata(data, record), record, alpha, size)
    check_interrupt()
    return write_atomic(output, data)


# Rewrites after which the weights are no longer the source's, and why.
REGRIDDING_STEPS = {
    "equalize": "--equalize rescales them",
    "bias_correction": "--bias-correction corrects the converter's own rounding of them",
}


def weight_grids(
    weights: str | None, quantize: str, per_tensor: bool, steps: Sequence[str] = ()
) -> tuple[dict[str, Grid] | None, str]:
    """The grids of `weights` that an integer conversion keeps (`lite.weight_grid`), those
    of a quantized `.tflite` source, and why not ("" when kept or when the source has none:
    a float source is unaffected). Per-tensor weights do not keep them: one step per tensor
    is k times the source's wherever one channel does not fit (51 of the hosted model's 53
    layers), coarser than the converter's own."""
    if quantize not in INTEGER_QUANTIZATIONS or weights in (None, "imagenet"):
        return None, ""
    with open(weights, "rb") as f:
        if f.read(8)[4:8] != b"TFL3":
            return None, ""
    grids = source_grids(read_tflite(weights))
    if grids is None:
        return None, ""
    if per_tensor:
        return None, (
            "--per-tensor weights take one scale per tensor, which would be twice the "
            "source's step in most layers: coarser than the converter's own"
        )
    for step, why in REGRIDDING_STEPS.items():
        if step in steps:
            return None, why
    return grids, ""


def calibration_record(images: np.ndarray, source: str | os.PathLike, seed: int) -> dict[str, Any]:
    """What a model records of its calibration: how many images, drawn from which folder
    (absolute) with which seed, and the SHA-256 of the preprocessed images, by which
    `compare` knows it redoes the rewrites on the same ones."""
    return {
        "images": len(images),
        "source": str(Path(source).resolve()),
        "seed": seed,
        "sha256": images_digest(images),
    }


def standard_metadata(data: bytes, record: dict[str, Any], alpha: float, size: int) -> bytes:
    """`data` with the standard TFLite metadata apps read (MediaPipe Tasks, LiteRT apps):
    name, description, the input's normalization and the labels. Written last, since its
    label file is a zip that follows the flatbuffer."""
    from mobilenet_v2.base import __version__

    prep = record["preprocessing"]
    calibration = record["calibration"]
    calibrated = (
        (", weights on their source's quantization grid" if record.get("weight_grid") else "")
        + f", calibrated on {calibration and calibration['images']} images, "
        f"{record['io_type']} input and output"
    )
    how = {
        "int8": "full-integer INT8"
        + (" (per-tensor weights)" if record["per_tensor"] else "")
        + "".join(f", {STEP_NAMES[step]}" for step in record.get("steps", ()))
        + calibrated,
        "int16x8": "int16 activations and int8 weights (A16W8, TFLite's 16x8 mode)" + calibrated,
        "float16": "float16 weights",
        "dynamic": "dynamic-range INT8 weights, float activations",
        "none": "float32",
    }[record["quantize"]]
    return with_standard_metadata(
        data,
        name=f"MobileNetV2 {alpha:g} {size}",
        description=(
            f"MobileNetV2 (alpha {alpha:g}, {size}x{size} RGB input), {how}. "
            f"Weights: {Path(record['weights']).name}. Calibrated and evaluated on "
            + {
                "crop": f"the central {prep['crop_fraction']:g} square, resized (bicubic)",
                "stretch": "the whole image, resized (bicubic)",
                "mediapipe": "the whole image as MediaPipe Tasks resize it (bilinear)",
            }[prep["resize"]]
            + f" to {size}x{size}."
        ),
        version=__version__,
        author=f"mobilenet-v2 {__version__}",
        license="Apache-2.0",
        mean=prep["mean"],
        std=prep["std"],
        # ImageNet's short names, or a trained model's own labels (not 1000 of them).
        labels=[c.name for c in imagenet_classes()]
        if len(record["labels"]) == 1000
        else record["labels"],
    )
