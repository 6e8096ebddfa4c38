"""Golden reference tensors: every tensor of one TFLite interpreter run (inputs, activations,
weights, biases, outputs), or every layer output and weight of the float Keras model, written
as text and/or `.npy` files with `manifest.json` and `manifest.csv`.

Text files start with `# key: <JSON value>` header lines (name, type, index, shape, layout and
how it was transposed, producing op, Keras layer, quantization parameters as written), then
every value in C order of the written shape, one line per innermost row: integers as
integers, float32 with 9 significant digits (which round-trips exactly).
`manifest.read_tensor` gives back the exact array and its header.

File names are the Keras layer a tensor belongs to (`block_1_expand_relu`,
`block_1_expand.folded_kernel`, `predictions_logits`), so a float dump and an INT8 dump pair up
file by file; tensors without a Keras layer keep their own name, made safe. No name can leave
the output directory, and no two tensors share a file.

For test benches and C code (`FORMATS`): `bin` holds each tensor's raw little-endian values
(C order of the written shape: `fread`, `np.fromfile`); `hex` one value per line as
two's-complement hex, two digits per byte (int8 -1 is `ff`, int32 -1 `ffffffff`; floats their
IEEE 754 bit pattern), for Verilog's `$readmemh`; `c` one header per tensor
(`c_header.tensor_header`) and an umbrella header including them all. Their manifest entries
carry what reading them needs: dtype, written shape and layout, element size, byte order,
scales and zero points. Each format's writer and reader: `formats`; a tensor's entry and
the manifests: `manifest`.

The manifest also says how to make the set again: the command (`mobilenet-v2 dump ...`, null
from Python), the preprocessing flags it was given (`input_flags`), the versions of
mobilenet-v2, LiteRT, TensorFlow and NumPy, the model's SHA-256 and kernels, its width
(`alpha`) and input `size`, and where its weights came from (`weights`, and `init_seed` for
seeded random ones; for a model we converted, `calibration`, and `quantize`, `per_tensor`,
`steps` and `weight_grid`: how its weights and activations were quantized and rewritten).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.analysis.tensor_map import (
    DATA_FORMATS,
    ModelTable,
    TensorInfo,
    assign_file_names,
)
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.machine import package_versions
from mobilenet_v2.base.outputs import check_output_dir, staged_directory
from mobilenet_v2.golden.c_header import umbrella_header, unique_identifiers
from mobilenet_v2.golden.formats import FILE_FORMATS
from mobilenet_v2.golden.manifest import (
    MANIFEST,
    MODEL_FILE,
    inside,
    write_manifests,
    write_tensor,
)

# "both" stays txt + npy, as before the test-bench formats came; each other value is one kind.
FORMATS = ("txt", "npy", "both", "bin", "hex", "c")
_KINDS = {"both": ("txt", "npy"), "c": ("h",)}
KERNELS = ("reference", "optimized", "numpy")
# The packages whose versions decide a dump's values (importlib.metadata: none is imported).
VERSIONED = ("mobilenet-v2", "ai-edge-litert", "tensorflow", "numpy")
# Preprocessing overrides and the flags that give them (`input_flags` in the manifest).
_INPUT_FLAGS = {"resize": "--resize", "mean": "--input-mean", "std": "--input-std"}
# What our conversion records that a golden set names too: which weights, how they were
# calibrated, and how they were quantized and rewritten (`convert --quantize int16x8`,
# `--per-tensor --equalize`, the source's grid kept); null where the model records nothing.
_RECORD_FIELDS = (
    "weights",
    "init_seed",
    "alpha",
    "calibration",
    "quantize",
    "per_tensor",
    "steps",
    "weight_grid",
)


# --- Engines ---------------------------------------------------------------------------------


def dump_tflite(
    model: str | os.PathLike,
    image: str | os.PathLike,
    output: str | os.PathLike,
    fmt: str = "txt",
    data_format: str = "channel_first",
    kernels: str = "reference",
    command: Sequence[str] | None = None,
    include_model: bool = False,
    replace: bool = False,
    **preprocessing: Any,
) -> Path:
    """Run `image` through the model with every tensor preserved, then write them all.

    `kernels="reference"` uses TFLite's reference kernels (the plain arithmetic, the golden
    choice); "optimized" the default built-in kernels, whose scratch tensors (im2col) are then
    listed too; "numpy" this package's NumPy integer reference (`mobilenet_v2.reference`,
    bit-exact with TFLite's reference kernels, no LiteRT). Never XNNPACK: a delegate computes
    intermediates out of the interpreter's view.

    `command`: the command line that made the dump, recorded in the manifest.
    `include_model`: the model goes into the set too (`MODEL_FILE`), which the manifest then
    names as its model: the set is complete, and replacing it replaces the model too.
    `replace`: see `check_dump_output`.
    """
    from mobilenet_v2.analysis.tensor_map import tflite_table
    from mobilenet_v2.inference.classifier import load_for, preprocessing_record
    from mobilenet_v2.lite.interpreter import TFLiteClassifier
    from mobilenet_v2.lite.tflite_file import parse_tflite

    _check_options(fmt, data_format, kernels)
    check_dump_output(output, replace)
    if kernels == "numpy":
        return _dump_reference(
            model,
            image,
            output,
            fmt,
            data_format,
            command,
            include_model,
            replace,
            **preprocessing,
        )
    classifier = TFLiteClassifier(
        model, xnnpack=False, reference_kernels=kernels == "reference", preserve_all_tensors=True
    )
    x = load_for(classifier, image, **preprocessing)
    classifier.invoke(classifier.quantize_input(x[None]))
    interpreter = classifier.interpreter
    table = tflite_table(parse_tflite(classifier.raw, classifier.path))
    arrays: dict[int, np.ndarray | None] = {}
    for detail in interpreter.get_tensor_details():
        index = int(detail["index"])
        q = detail["quantization_parameters"]
        tensor = table.tensors.get(index)
        if tensor is None:  # a kernel's scratch tensor, added by the interpreter
            tensor = table.tensors[index] = TensorInfo(
                index=index,
                name=detail["name"] or f"scratch_{index}",
                kind="scratch",
                shape=(),
                dtype="",
            )
        # The interpreter's own view is the reference: its dtype, shape and quantization.
        tensor.dtype = np.dtype(detail["dtype"]).name
        tensor.shape = tuple(int(d) for d in detail["shape"])
        tensor.scales = np.asarray(q["scales"], np.float32)
        tensor.zero_points = np.asarray(q["zero_points"], np.int64)
        tensor.quantized_dimension = int(q["quantized_dimension"])
        try:
            arrays[index] = np.array(interpreter.get_tensor(index))
        except ValueError:  # an optional tensor with no data
            arrays[index] = None
    assign_file_names(
        list(table.tensors.values()), {i: t.file_name for i, t in table.tensors.items()}
    )
    info = {
        "engine": "litert",
        "kernels": kernels,
        "model": _model_path(output, classifier.path, include_model),
        "image": str(Path(image).resolve()),
        "preprocessing": preprocessing_record(classifier, preprocessing),
        "metadata_notes": list(classifier.notes),  # e.g. none found: defaults used
        **provenance(command, preprocessing),
        **_tflite_facts(classifier.raw, classifier.input_size),
    }
    files = {MODEL_FILE: classifier.raw} if include_model else {}
    return write_dump(output, table, arrays, info, fmt, data_format, files, replace)


def _dump_reference(
    model: str | os.PathLike,
    image: str | os.PathLike,
    output: str | os.PathLike,
    fmt: str,
    data_format: str,
    command: Sequence[str] | None,
    include_model: bool,
    replace: bool,
    **preprocessing: Any,
) -> Path:
    """The same files from `mobilenet_v2.reference`, the NumPy integer kernels."""
    from mobilenet_v2.analysis.tensor_map import tflite_table
    from mobilenet_v2.inference.classifier import load_for, preprocessing_record
    from mobilenet_v2.reference import ReferenceInterpreter

    reference = ReferenceInterpreter(model)
    raw = reference.raw
    x = load_for(reference, image, **preprocessing)
    values = reference.run(reference.quantize_input(x[None]))
    table = tflite_table(reference.model)
    size = tuple(int(d) for d in reference.input_tensor.shape[1:3])
    info = {
        "engine": "numpy-reference",
        "kernels": "mobilenet_v2.reference",
        "model": _model_path(output, reference.path, include_model),
        "image": str(Path(image).resolve()),
        "preprocessing": preprocessing_record(reference, preprocessing),
        "metadata_notes": list(reference.notes),
        **provenance(command, preprocessing),
        **_tflite_facts(raw, size),
    }
    files = {MODEL_FILE: raw} if include_model else {}
    return write_dump(output, table, dict(values), info, fmt, data_format, files, replace)


def _model_path(output: str | os.PathLike, model: Path, include_model: bool) -> str:
    """The manifest's model: the set's own copy when it carries one; absolute, so that
    commands built from the manifest (verify's trace) work from anywhere."""
    return str(Path(output).resolve() / MODEL_FILE if include_model else model.resolve())


def provenance(command: Sequence[str] | None, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """How a dump was made: the command (argv, and as one shell-quoted line), the
    preprocessing overrides as the flags that give them (what a command reproducing one of
    its tensors, such as `trace`, must be given too), and the versions that decide the
    values."""
    flags: list[str] = []
    for key, flag in _INPUT_FLAGS.items():
        value = preprocessing.get(key)
        if value is not None:
            flags += [flag, value if isinstance(value, str) else repr(float(value))]
    return {
        "command": None if command is None else shlex.join(command),
        "command_argv": None if command is None else list(command),
        "input_flags": flags,
        "versions": package_versions(VERSIONED),
    }


def _tflite_facts(raw: bytes, input_size: tuple[int, ...]) -> dict[str, Any]:
    """The model's SHA-256 and size, and what our conversion recorded in it (weights, init
    seed, width, calibration); null where a model from elsewhere records nothing."""
    from mobilenet_v2.lite.record import read_metadata

    record = read_metadata(raw)
    record = record if isinstance(record, dict) else {}
    rows, cols = input_size[0], input_size[-1]
    return {
        "model_sha256": hashlib.sha256(raw).hexdigest(),
        "size": rows if rows == cols else [rows, cols],
        **{key: record.get(key) for key in _RECORD_FIELDS},
    }


def dump_keras(
    weights: str | None,
    image: str | os.PathLike,
    output: str | os.PathLike,
    alpha: float | None = None,
    size: int | None = None,
    fmt: str = "txt",
    data_format: str = "channel_first",
    init_seed: int | None = None,
    command: Sequence[str] | None = None,
    replace: bool = False,
    **preprocessing: Any,
) -> Path:
    """Every layer's output and weights of the float model, plus what pairs with the TFLite
    files: `<conv>.folded_kernel` / `.folded_bias` (BN folded in, as the converter does) and
    `predictions_logits` (the classifier before its softmax). `init_seed`: seeded random
    weights (`weights=None`); `command`: as for `dump_tflite`."""
    from mobilenet_v2.base.provenance import file_sha256, weights_label
    from mobilenet_v2.inference.classifier import (
        load_for,
        load_keras,
        preprocessing_record,
    )

    _check_options(fmt, data_format, "reference")
    check_dump_output(output, replace)
    classifier = load_keras(weights, alpha, size, init_seed)
    x = load_for(classifier, image, **preprocessing)
    table, arrays = keras_tensors(classifier.model, x[None])
    weights_file = classifier.weights_file
    info = {
        "engine": "tensorflow",
        "kernels": "float32",
        "image": str(Path(image).resolve()),
        "preprocessing": preprocessing_record(classifier, preprocessing),
        **provenance(command, preprocessing),
        # Random weights have no file: their seed (null: unseeded) is what identifies them.
        "model_sha256": None if weights_file is None else file_sha256(weights_file),
        "size": classifier.input_size[0],
        "weights": weights_label(weights, init_seed),
        "init_seed": init_seed,
        "alpha": classifier.alpha,
        # No conversion: nothing calibrated, quantized or rewritten.
        **dict.fromkeys(("calibration", "quantize", "per_tensor", "steps", "weight_grid")),
    }
    return write_dump(output, table, arrays, info, fmt, data_format, replace=replace)


def keras_tensors(model: Any, batch: np.ndarray) -> tuple[ModelTable, dict[int, np.ndarray]]:
    """The float model's table and its tensors' values: activations for the whole batch
    (first axis), weights as stored, BN-folded weights, and the logits before the softmax.
    `batch` is NHWC images (as `load_image` gives them), fed to a channels_first model as
    NCHW; the table records each activation's layout, so the files come out the same."""
    from mobilenet_v2.analysis.tensor_map import keras_table
    from mobilenet_v2.base.architecture import LOGITS, batch_norm_name
    from mobilenet_v2.tf import layers
    from mobilenet_v2.tf._tf import keras

    table = keras_table(model)
    if table.tensors[0].layout == "NCHW":
        batch = np.transpose(batch, (0, 3, 1, 2))
    probe = keras.Model(model.input, [layer.output for layer in model.layers[1:]])
    outputs = [batch.astype(np.float32), *(np.asarray(y) for y in probe(batch, training=False))]
    arrays: dict[int, np.ndarray] = {}
    for op, value in zip(table.ops, outputs, strict=True):
        arrays[op.outputs[0]] = value
        layer = model.layers[op.index]
        for index, var in zip(op.weights, layer.weights, strict=True):
            arrays[index] = np.asarray(var.numpy())
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            bn_name = batch_norm_name(layer.name)
            if bn_name in {lay.name for lay in model.layers}:
                kernel, bias = _fold(layer, model.get_layer(bn_name))
                for suffix, value_, kind in (("kernel", kernel, "weight"), ("bias", bias, "bias")):
                    t = _add(
                        table, arrays, value_, f"{layer.name}.folded_{suffix}", kind, layer.name
                    )
                    t.layout = table.tensors[op.weights[0]].layout if kind == "weight" else "C"
                    op.weights.append(t.index)
        if isinstance(layer, layers.Dense):
            logits = outputs[op.index - 1] @ layer.kernel.numpy() + layer.bias.numpy()
            t = _add(table, arrays, logits.astype(np.float32), LOGITS, "activation", layer.name)
            t.producer, t.layout = op.index, "NC"
            op.outputs.insert(0, t.index)
    assign_file_names(
        list(table.tensors.values()), {i: t.file_name for i, t in table.tensors.items()}
    )
    return table, arrays


def _fold(conv: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """BN folded into the convolution: w * gamma / sqrt(var + eps), beta - mean * that."""
    gamma, beta, mean, variance = (w.astype(np.float32) for w in bn.get_weights())
    scale = gamma / np.sqrt(variance + np.float32(bn.epsilon))
    kernel = conv.get_weights()[0]
    if kernel.ndim == 4 and kernel.shape[-1] == 1 and len(scale) == kernel.shape[2]:
        folded = kernel * scale.reshape(1, 1, -1, 1)  # depthwise HWC1
    else:
        folded = kernel * scale  # HWIO: scale the output channels
    return folded.astype(np.float32), (beta - mean * scale).astype(np.float32)


def _add(
    table: ModelTable, arrays: dict, value: np.ndarray, name: str, kind: str, layer: str
) -> TensorInfo:
    index = max(table.tensors) + 1
    t = TensorInfo(
        index=index,
        name=name,
        kind=kind,
        shape=tuple(value.shape),
        dtype=value.dtype.name,
        keras_layer=layer,
        file_name=name,
    )
    table.tensors[index] = t
    arrays[index] = value
    return t


def _check_options(fmt: str, data_format: str, kernels: str) -> None:
    for value, allowed, what in (
        (fmt, FORMATS, "format"),
        (data_format, DATA_FORMATS, "data format"),
        (kernels, KERNELS, "kernels"),
    ):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


# --- Writing ---------------------------------------------------------------------------------


def check_dump_output(output: str | os.PathLike, replace: bool = False) -> None:
    """Fail before any work when `output` cannot take a golden set: it must be a writable
    directory (or one that can be made), and empty unless `replace`. Golden data is never
    overwritten by surprise: an earlier set (a folder with `manifest.json`) is replaced only
    with `replace`, and so is a folder of other files written into (the set goes beside
    them; a later set removes only the files its manifest lists)."""
    check_output_dir(output)
    out = Path(output)
    if replace or not out.is_dir() or not any(out.iterdir()):
        return
    if (out / MANIFEST).exists():
        raise MobileNetV2Error(f"{out}: holds an earlier golden set (--replace replaces it)")
    raise MobileNetV2Error(
        f"{out}: directory is not empty and holds no golden set ({MANIFEST}); --replace "
        "writes the set into it, beside its files"
    )


def write_dump(
    output: str | os.PathLike,
    table: ModelTable,
    arrays: dict[int, np.ndarray | None],
    info: dict[str, Any],
    fmt: str = "txt",
    data_format: str = "channel_first",
    files: dict[str, bytes] | None = None,
    replace: bool = False,
) -> Path:
    """Write every tensor and the manifests into a staging directory beside `output`, then
    move them in: an error leaves `output` as it was. `files`: more files of the set (name:
    content), listed in the manifest's `files`. `replace`: see `check_dump_output`."""
    out = Path(output)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    check_dump_output(out, replace)
    kinds = _KINDS.get(fmt, (fmt,))
    tensors = sorted(table.tensors.values(), key=lambda t: t.index)
    umbrella = _umbrella_name({t.file_name.lower() for t in tensors})
    # C names for every tensor at once, so that clashes resolve the same way on every run;
    # the umbrella header's guard is reserved first.
    c_names = unique_identifiers([umbrella.replace(".", "_"), *(t.file_name for t in tensors)])
    with staged_directory(out, last=MANIFEST) as staging:
        op_types = {op.index: op.type for op in table.ops}
        entries = []
        for t, c_name in zip(tensors, c_names[1:], strict=True):
            array = arrays.get(t.index)
            entry = write_tensor(staging, t, array, kinds, data_format, op_types, c_name)
            entries.append(entry)
        manifest = {**info, "data_format": data_format, "format": fmt}
        manifest["file_formats"] = {k: FILE_FORMATS[k] for k in kinds}
        whole = []  # files of the whole dump, beside each tensor's
        if fmt == "c":
            headers = [f for e in entries for f in e["files"]]
            inside(staging, umbrella).write_text(umbrella_header(umbrella, headers))
            whole.append(umbrella)
        for name, content in (files or {}).items():
            inside(staging, name).write_bytes(content)
            whole.append(name)
        if whole:
            manifest["files"] = whole
        manifest["totals"] = table.totals
        manifest["ops"] = table.to_json()["ops"]
        manifest["tensors"] = entries
        write_manifests(staging, manifest, table, entries)
    return out


def _umbrella_name(taken: set[str]) -> str:
    """`tensors.h`, unless a tensor's file already has that name."""
    name = "tensors"
    while name in taken:
        name = f"all_{name}"
    return f"{name}.h"
