"""Weights for MobileNetV2: official Keras files, Keras 3 files, and TFLite classifiers.

Every loader reads the whole file into `{layer name: {weight name: array}}` first, checks it
against the model layer by layer (names, shapes, nothing missing, nothing left over) and only
then assigns, so a mismatching file raises an error naming the file and the first mismatch and
never leaves the model half-loaded.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from mobilenet_v2.base.architecture import BN_EPSILON, batch_norm_name
from mobilenet_v2.base.download import download
from mobilenet_v2.base.errors import ModelFileError, WeightsError
from mobilenet_v2.lite.layer_map import CLASSIFIER_OPS, WeightOp, map_tflite
from mobilenet_v2.lite.tflite_file import Operator, TFLiteModel, check_identifier, read_tflite
from mobilenet_v2.tf import layers
from mobilenet_v2.tf._tf import keras

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"

LayerWeights = dict[str, dict[str, np.ndarray]]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
# Keras 2 (and the official files) call the depthwise weight `depthwise_kernel`, Keras 3
# calls it `kernel`.
_ALIASES = {"depthwise_kernel": ("kernel",)}
# What h5py raises for a file whose structure is not what Keras writes (attributes of the
# wrong type, listed groups that are missing): a bad file, not a bug.
_MALFORMED = (OSError, KeyError, ValueError, TypeError)


def imagenet_weights_filename(alpha: float, rows: int, include_top: bool) -> str:
    """The official file name, e.g. mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5."""
    top = "" if include_top else "_no_top"
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{top}.h5"


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded application weights: `$KERAS_HOME/models`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


# What to do instead when the ImageNet weights cannot be downloaded, in the caller's terms:
# Python's here; the command line names its flag (`cli.convert.WEIGHTS_HINT`).
WEIGHTS_HINT = "pass weights=PATH (an .h5, .weights.h5, .keras or MobileNetV2 .tflite)"


def imagenet_weights_path(
    alpha: float, rows: int, include_top: bool, hint: str = WEIGHTS_HINT
) -> Path:
    """The official ImageNet weights file: from the Keras cache, else downloaded into it;
    `hint` says what to do instead when the download fails, in the caller's terms."""
    name = imagenet_weights_filename(alpha, rows, include_top)
    cached = keras_cache_dir() / name
    if cached.is_file() and cached.stat().st_size > 0:
        return cached
    return download(
        BASE_WEIGHT_PATH + name, cached, hint=f"{hint}, or put {name} in {cached.parent}"
    )


def check_readable(path: str | os.PathLike) -> None:
    """Fail early, naming the file, when a weights path is missing, a directory or empty."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: weights file not found")
    if not p.is_file():
        raise ModelFileError(f"{p}: weights path is not a file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p}: weights file is empty")


def load_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load any supported weights file into `model`, all or nothing."""
    path = Path(path)
    check_readable(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        found = _read_h5(path, model)
    elif head[:4] == _ZIP_SIGNATURE:
        found = _read_keras_archive(path, model)
    elif head[4:8] == b"TFL3":
        found = _read_tflite(read_tflite(path), model)
    else:
        if path.name.lower().endswith(".tflite"):
            check_identifier(head, path)  # raises, in the words every .tflite reader uses
        raise ModelFileError(f"{path}: {_unrecognised(path)}")
    _assign(model, found, path)


def _unrecognised(path: Path) -> str:
    """What is wrong with a file whose first bytes match no weights format, said in terms of
    the format its name promises."""
    name = path.name.lower()
    if name.endswith(".keras"):
        return "not a valid .keras archive (not a zip file)"
    if name.endswith((".h5", ".hdf5")):
        return "not a valid HDF5 weights file (no HDF5 signature)"
    return (
        "unsupported weights file (expected a Keras .h5, .weights.h5, .keras or a .tflite "
        "model, by content)"
    )


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _assign(model: keras.Model, found: LayerWeights, path: Path) -> None:
    updates = []
    for layer in weighted_layers(model):
        if layer.name not in found:
            raise WeightsError(f"{path}: no weights for layer '{layer.name}' in the file")
        in_file = found.pop(layer.name)
        for var in layer.weights:
            key = next((k for k in (var.name, *_ALIASES.get(var.name, ())) if k in in_file), None)
            if key is None:
                raise WeightsError(f"{path}: layer '{layer.name}' lacks weight '{var.name}'")
            value = in_file.pop(key)
            if tuple(value.shape) != tuple(var.shape):
                raise WeightsError(
                    f"{path}: layer '{layer.name}' weight '{var.name}' has shape "
                    f"{tuple(value.shape)} in the file but {tuple(var.shape)} in the model"
                )
            updates.append((var, value))
        if in_file:
            raise WeightsError(
                f"{path}: layer '{layer.name}' has weights the model lacks: {sorted(in_file)}"
            )
    if found:
        extra = next(iter(found))
        raise WeightsError(f"{path}: the file has weights for layer '{extra}' that the model lacks")
    for var, value in updates:
        var.assign(value.astype(var.dtype))


# --- HDF5: legacy Keras 2 files (the official ones) and Keras 3 .weights.h5 -----------------


def _read_h5(path: Path, model: keras.Model) -> LayerWeights:
    try:
        with h5py.File(path, "r") as f:
            return _read_h5_group(f, path, model)
    except ModelFileError:
        raise
    except _MALFORMED as exc:
        raise ModelFileError(f"{path}: corrupt or truncated HDF5 weights file ({exc})") from None


def _read_h5_group(f: h5py.Group, path: Path, model: keras.Model) -> LayerWeights:
    group = f.get("model_weights", f)
    if "layer_names" in group.attrs:
        return _read_legacy_h5(group)
    if "layers" in group:
        return _read_keras3_h5(group, path, model)
    raise ModelFileError(f"{path}: HDF5 file holds no Keras weights")


def _decode(name: bytes | str) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _read_legacy_h5(group: h5py.Group) -> LayerWeights:
    """Keras 2's layout: one group per layer, attribute `weight_names` like `Conv1/kernel:0`."""
    found: LayerWeights = {}
    for layer_name in map(_decode, group.attrs["layer_names"]):
        layer_group = group[layer_name]
        names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
        if names:
            found[layer_name] = {
                name.split("/")[-1].removesuffix(":0"): np.asarray(layer_group[name])
                for name in names
            }
    return found


def _snake_case(name: str) -> str:
    """Keras 3's object naming (as `keras.src.utils.naming.to_snake_case`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_keras3_h5(group: h5py.Group, path: Path, model: keras.Model) -> LayerWeights:
    """Keras 3's layout: `layers/<class_name>[_<n>]/vars/<i>`, keyed by class and position.

    The keys follow the model's layer order, so this reads the file against the model: the
    n-th BatchNormalization of the model takes `batch_normalization_<n>`. Files written by
    `keras.applications.MobileNetV2` use the same class names and load too.
    """
    stored = group["layers"]
    seen: dict[str, int] = {}
    found: LayerWeights = {}
    keys = set()
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        count = seen.get(base, 0)
        seen[base] = count + 1
        key = base if count == 0 else f"{base}_{count}"
        if not layer.weights:
            continue
        keys.add(key)
        if key not in stored or "vars" not in stored[key]:
            raise WeightsError(f"{path}: no weights for layer '{layer.name}' (entry '{key}')")
        values = stored[key]["vars"]
        if len(values) != len(layer.weights):
            raise WeightsError(
                f"{path}: layer '{layer.name}' (entry '{key}') has {len(values)} weights in the "
                f"file but {len(layer.weights)} in the model"
            )
        found[layer.name] = {
            var.name: np.asarray(values[str(i)]) for i, var in enumerate(layer.weights)
        }
    for key in stored:
        if key not in keys and "vars" in stored[key] and len(stored[key]["vars"]):
            raise WeightsError(
                f"{path}: the file has weights for layer entry '{key}' that the model lacks"
            )
    return found


def _read_keras_archive(path: Path, model: keras.Model) -> LayerWeights:
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .keras archive ({exc})") from None
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            return _read_h5_group(f, path, model)
    except ModelFileError:
        raise  # weights that do not fit this model: already said, and not corruption
    except _MALFORMED as exc:
        raise ModelFileError(f"{path}: corrupt weights inside .keras archive ({exc})") from None


# --- TFLite classifiers ---------------------------------------------------------------------


def _read_tflite(tfl: TFLiteModel, model: keras.Model) -> LayerWeights:
    """Take each convolution's weights from the operator `lite.layer_map` pairs it with.

    Batch norm is folded into TFLite convolutions (their bias is the folded BN shift), so each
    BN layer becomes the identity plus that bias: gamma 1, beta = bias, mean 0 and variance
    1 - epsilon, which makes `(x - mean) / sqrt(variance + epsilon)` exactly `x`.
    """
    path = tfl.path
    walk = map_tflite(tfl)
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D))
    ]
    found: LayerWeights = {}
    for layer in convs:
        weights = walk.convolutions.get(layer.name)
        if weights is None:
            raise WeightsError(f"{path}: {walk.problem or f'no op for layer {layer.name!r}'}")
        op = weights.op
        kernel = _op_constant(tfl, op, weights.kernel, 1)
        # TFLite: conv OHWI and depthwise 1HWC; Keras: HWIO and HWC1.
        kernel = kernel.transpose(1, 2, 3, 0)
        name = "depthwise_kernel" if isinstance(layer, layers.DepthwiseConv2D) else "kernel"
        var = getattr(layer, name)
        if kernel.shape != tuple(var.shape):
            raise WeightsError(
                f"{path}: op {op.index} ({op.opcode}) kernel has shape {kernel.shape} (as HWIO) "
                f"but layer '{layer.name}' needs {tuple(var.shape)}: not this MobileNetV2"
            )
        found[layer.name] = {name: kernel}
        channels = kernel.shape[-1] * (kernel.shape[-2] if name == "depthwise_kernel" else 1)
        bias = _op_bias(tfl, weights, channels)
        found[batch_norm_name(layer.name)] = _identity_batch_norm(bias)

    if "predictions" in (layer.name for layer in model.layers):
        found["predictions"] = _classifier(tfl, walk.head, model.get_layer("predictions"))
    elif len(walk.head) > 1:
        extra = walk.head[1].op
        raise WeightsError(
            f"{path}: op {extra.index} ({extra.opcode}) has weights beyond MobileNetV2's"
        )
    return found


def _identity_batch_norm(bias: np.ndarray) -> dict[str, np.ndarray]:
    ones = np.ones_like(bias, np.float32)
    return {
        "gamma": ones,
        "beta": bias.astype(np.float32),
        "moving_mean": np.zeros_like(ones),
        "moving_variance": ones * np.float32(1.0 - BN_EPSILON),
    }


def _op_constant(tfl: TFLiteModel, op: Operator, tensor: int, position: int) -> np.ndarray:
    if tensor < 0:
        raise WeightsError(f"{tfl.path}: op {op.index} ({op.opcode}) has no input {position}")
    constant = tfl.constant(tensor)
    if constant.data is None:
        raise WeightsError(
            f"{tfl.path}: op {op.index} ({op.opcode}) input '{constant.name}' is not a constant"
        )
    return constant.dequantized()


def _op_bias(tfl: TFLiteModel, weights: WeightOp, channels: int) -> np.ndarray:
    if weights.bias < 0:
        return np.zeros(channels, np.float32)
    return _op_constant(tfl, weights.op, weights.bias, 2).reshape(-1)


def _classifier(
    tfl: TFLiteModel, head: list[WeightOp], dense: keras.layers.Layer
) -> dict[str, np.ndarray]:
    path = tfl.path
    if len(head) != 1 or head[0].op.opcode not in CLASSIFIER_OPS:
        found = ", ".join(f"{w.op.index}:{w.op.opcode}" for w in head) or "none"
        raise WeightsError(
            f"{path}: expected one classifier op (CONV_2D 1x1 or FULLY_CONNECTED) after the last "
            f"convolution, found {found}"
        )
    op = head[0].op
    weights = _op_constant(tfl, op, head[0].kernel, 1)
    classes_in_file = weights.shape[0]
    kernel = weights.reshape(classes_in_file, -1).T  # (out, ..., in) -> (in, out)
    bias = _op_bias(tfl, head[0], classes_in_file)
    classes = int(dense.units)
    if classes_in_file == classes + 1:
        # TF-slim classifiers have 1001 outputs, index 0 being "background".
        kernel, bias = kernel[:, 1:], bias[1:]
    if kernel.shape != tuple(dense.kernel.shape):
        raise WeightsError(
            f"{path}: op {op.index} ({op.opcode}) classifier is {kernel.shape[0]} -> "
            f"{classes_in_file} but layer 'predictions' is {dense.kernel.shape[0]} -> {classes}"
        )
    return {"kernel": np.ascontiguousarray(kernel), "bias": bias}


# --- Fine-tuning from folded weights --------------------------------------------------------


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> None:
    """Give every BatchNormalization layer real moving statistics, keeping inference exact.

    Weights from a `.tflite` have batch norm folded away (mean 0, variance 1 - epsilon), which
    is exact at inference but breaks training-mode BN: batch statistics then normalize
    activations the folded biases were never meant for, and most ReLU6 outputs die. This
    measures each BN input's per-channel mean `m` and variance `v` on `images` (inference
    mode) and rewrites the layer as the same affine map `a * x + b` expressed with those
    statistics: gamma = a * sqrt(v + eps), beta = b + a * m. Inference outputs do not change;
    training-mode BN then starts from statistics that match the data.
    """
    bns = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    if not bns:
        return
    probe = keras.Model(model.input, [bn.input for bn in bns])
    counts = [0] * len(bns)
    sums = [np.zeros(bn.moving_mean.shape, np.float64) for bn in bns]
    squares = [np.zeros_like(s) for s in sums]
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start : start + batch_size], training=False)
        for i, (bn, x) in enumerate(zip(bns, outputs, strict=True)):
            x = np.asarray(x, np.float64)
            x = np.moveaxis(x, bn.channel_axis, -1).reshape(-1, x.shape[bn.channel_axis])
            sums[i] += x.sum(axis=0)
            squares[i] += np.square(x).sum(axis=0)
            counts[i] += x.shape[0]
    for bn, count, total, total_sq in zip(bns, counts, sums, squares, strict=True):
        gamma, beta, mean0, var0 = (
            np.asarray(v, np.float64)
            for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
        )
        scale = gamma / np.sqrt(var0 + bn.epsilon)
        shift = beta - scale * mean0
        mean = total / count
        var = np.maximum(total_sq / count - np.square(mean), 0.0)
        bn.gamma.assign((scale * np.sqrt(var + bn.epsilon)).astype(np.float32))
        bn.beta.assign((shift + scale * mean).astype(np.float32))
        bn.moving_mean.assign(mean.astype(np.float32))
        bn.moving_variance.assign(var.astype(np.float32))
