"""Golden reference tensors: every tensor of one TFLite interpreter run (inputs, activations,
weights, biases, outputs), or every layer output and weight of the float Keras model, written
as text and/or `.npy` files with `manifest.json` and `manifest.csv`.

Text files start with `# key: <JSON value>` header lines (name, type, index, shape, layout and
how it was transposed, producing op, Keras layer, quantization parameters as written), then
every value in C order of the written shape, one line per innermost row: integers as
integers, float32 with 9 significant digits (which round-trips exactly). `read_tensor` gives
back the exact array and its header.

File names are the Keras layer a tensor belongs to (`block_1_expand_relu`,
`block_1_expand.folded_kernel`, `predictions_logits`), so a float dump and an INT8 dump pair up
file by file; tensors without a Keras layer keep their own name, made safe. No name can leave
the output directory, and no two tensors share a file.

For test benches and C code (`FORMATS`): `bin` holds each tensor's raw little-endian values
(C order of the written shape: `fread`, `np.fromfile`); `hex` one value per line as
two's-complement hex, two digits per byte (int8 -1 is `ff`, int32 -1 `ffffffff`; floats their
IEEE 754 bit pattern), for Verilog's `$readmemh`; `c` one header per tensor
(`c_source.tensor_header`) and an umbrella header including them all. Their manifest entries
carry what reading them needs: dtype, written shape and layout, element size, byte order,
scales and zero points.

The manifest also says how to make the set again: the command (`mobilenet-v2 dump ...`, null
from Python), the preprocessing flags it was given (`input_flags`), the versions of
mobilenet-v2, LiteRT, TensorFlow and NumPy, the model's SHA-256 and kernels, its width
(`alpha`) and input `size`, and where its weights came from (`weights`, and `init_seed` for
seeded random ones; `calibration` for a model we converted).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mobilenet_v2.analysis.tensor_map import (
    CSV_COLUMNS,
    DATA_FORMATS,
    ModelTable,
    TensorInfo,
    assign_file_names,
    tensor_rows,
    to_csv,
    written_layout,
)
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.machine import package_versions
from mobilenet_v2.base.outputs import check_output_dir, staged_directory
from mobilenet_v2.base.quantization import dequantize as base_dequantize
from mobilenet_v2.golden.c_source import (
    tensor_header,
    umbrella_header,
    unique_identifiers,
)

# "both" stays txt + npy, as before the test-bench formats came; each other value is one kind.
FORMATS = ("txt", "npy", "both", "bin", "hex", "c")
# What each file kind holds, recorded in the manifest (`file_formats`) for whoever reads it.
FILE_FORMATS = {
    "txt": "text: '# key: <JSON>' header lines, then the values, one innermost row per line",
    "npy": "NumPy .npy (np.load)",
    "bin": "raw values, C order of written_shape, byte_order, element_size bytes each",
    "hex": "one value per line, C order: two's-complement hex (floats: IEEE 754 bit "
    "pattern), 2 * element_size digits, no prefix (Verilog $readmemh)",
    "h": "C header: static const array NAME[NAME_LEN], NAME_SHAPE, NAME_SCALE(S), "
    "NAME_ZERO_POINT(S); float16 as uint16_t bit patterns; c_name is NAME",
}
_KINDS = {"both": ("txt", "npy"), "c": ("h",)}
KERNELS = ("reference", "optimized", "numpy")
MANIFEST = "manifest.json"
MODEL_FILE = "model.tflite"  # the model itself, in a golden set that includes it
# The packages whose versions decide a dump's values (importlib.metadata: none is imported).
VERSIONED = ("mobilenet-v2", "ai-edge-litert", "tensorflow", "numpy")
# Preprocessing overrides and the flags that give them (`input_flags` in the manifest).
_INPUT_FLAGS = {"resize": "--resize", "mean": "--input-mean", "std": "--input-std"}
# What our conversion records in the model and a dump of it repeats (null where absent).
_RECORD_FIELDS = ("weights", "init_seed", "alpha", "calibration")
_FLOAT_FORMATS = {"float16": "%.5g", "float32": "%.9g", "float64": "%.17g"}


class DumpedTensor(NamedTuple):
    array: np.ndarray
    meta: dict[str, Any]


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
    """
    from mobilenet_v2.analysis.tensor_map import tflite_table
    from mobilenet_v2.inference.classifier import load_for, preprocessing_record
    from mobilenet_v2.lite.interpreter import TFLiteClassifier
    from mobilenet_v2.lite.tflite_file import parse_tflite

    _check_options(fmt, data_format, kernels)
    check_output_dir(output)
    if kernels == "numpy":
        return _dump_reference(
            model, image, output, fmt, data_format, command, include_model, **preprocessing
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
    return write_dump(output, table, arrays, info, fmt, data_format, files)


def _dump_reference(
    model: str | os.PathLike,
    image: str | os.PathLike,
    output: str | os.PathLike,
    fmt: str,
    data_format: str,
    command: Sequence[str] | None,
    include_model: bool,
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
    return write_dump(output, table, dict(values), info, fmt, data_format, files)


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
    check_output_dir(output)
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
        "calibration": None,
    }
    return write_dump(output, table, arrays, info, fmt, data_format)


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


def write_dump(
    output: str | os.PathLike,
    table: ModelTable,
    arrays: dict[int, np.ndarray | None],
    info: dict[str, Any],
    fmt: str = "txt",
    data_format: str = "channel_first",
    files: dict[str, bytes] | None = None,
) -> Path:
    """Write every tensor and the manifests into a staging directory beside `output`, then
    move them in: an error leaves `output` as it was. `files`: more files of the set (name:
    content), listed in the manifest's `files`."""
    out = Path(output)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
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
            entry = _write_tensor(staging, t, array, kinds, data_format, op_types, c_name)
            entries.append(entry)
        by_index = {e["index"]: e for e in entries}
        manifest = {**info, "data_format": data_format, "format": fmt}
        manifest["file_formats"] = {k: FILE_FORMATS[k] for k in kinds}
        whole = []  # files of the whole dump, beside each tensor's
        if fmt == "c":
            headers = [f for e in entries for f in e["files"]]
            _inside(staging, umbrella).write_text(umbrella_header(umbrella, headers))
            whole.append(umbrella)
        for name, content in (files or {}).items():
            _inside(staging, name).write_bytes(content)
            whole.append(name)
        if whole:
            manifest["files"] = whole
        manifest["totals"] = table.totals
        manifest["ops"] = table.to_json()["ops"]
        manifest["tensors"] = entries
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        rows = []
        for r in tensor_rows(table):
            e = by_index[r["tensor_index"]]
            rows.append({**r, **{k: e[k] for k in _WRITTEN_COLUMNS}})
        columns = CSV_COLUMNS + list(_WRITTEN_COLUMNS)
        (staging / "manifest.csv").write_text(to_csv(rows, columns))
    return out


def _umbrella_name(taken: set[str]) -> str:
    """`tensors.h`, unless a tensor's file already has that name."""
    name = "tensors"
    while name in taken:
        name = f"all_{name}"
    return f"{name}.h"


_WRITTEN_COLUMNS = ("written_shape", "written_layout", "written_quantized_dimension", "files")


def _write_tensor(
    staging: Path,
    t: TensorInfo,
    array: np.ndarray | None,
    kinds: tuple[str, ...],
    data_format: str,
    op_types: dict[int, str],
    c_name: str,
) -> dict[str, Any]:
    layout, axes = written_layout(t.layout, data_format)
    qdim = int(t.quantized_dimension)
    entry: dict[str, Any] = {
        "index": t.index,
        "name": t.name,
        "kind": t.kind,
        "keras_layer": t.keras_layer,
        "op": None if t.producer is None else {"index": t.producer, "type": op_types[t.producer]},
        "dtype": t.dtype,
        "shape": list(t.shape),
        "layout": t.layout,
        "written_shape": list(t.shape),
        "written_layout": layout,
        "transpose": list(axes) if axes else None,
        "scales": [float(s) for s in t.scales],
        "zero_points": [int(z) for z in t.zero_points],
        "quantized_dimension": qdim,
        "written_quantized_dimension": axes.index(qdim) if axes and qdim < len(axes) else qdim,
        "files": [],
    }
    if array is None:
        entry["note"] = "no data in the interpreter"
        return entry
    if t.kind == "scratch":
        entry["note"] = "a kernel's working memory (e.g. im2col), not a result: not written"
        return entry
    if axes and array.ndim != len(axes):
        axes, entry["transpose"], entry["written_layout"] = None, None, t.layout
        entry["written_quantized_dimension"] = qdim
    written = np.ascontiguousarray(np.transpose(array, axes) if axes else array)
    entry["written_shape"] = list(written.shape)
    entry["dtype"] = written.dtype.name
    # What a test bench needs to read .bin and .hex files (fread, $readmemh).
    entry["element_size"] = written.dtype.itemsize
    entry["byte_order"] = "little"
    for kind in kinds:
        path = _inside(staging, f"{t.file_name}.{kind}")
        if kind == "txt":
            path.write_text(_header(entry) + format_values(written))
        elif kind == "npy":
            np.save(path, written)
        elif kind == "bin":
            path.write_bytes(_little_endian(written).tobytes())
        elif kind == "hex":
            path.write_text(format_hex(written))
        elif kind == "h":
            entry["c_name"] = c_name
            path.write_text(tensor_header(c_name, written, entry))
        else:
            raise ValueError(f"unknown file kind {kind!r}")
        entry["files"].append(path.name)
    return entry


def _little_endian(array: np.ndarray) -> np.ndarray:
    """The same values stored little-endian (a no-op on the usual hosts)."""
    return array.astype(array.dtype.newbyteorder("<"), copy=False)


def format_hex(array: np.ndarray) -> str:
    """All values, C order, one per line: the little-endian bytes read as one unsigned number,
    i.e. two's complement for integers and the IEEE 754 bit pattern for floats, zero-padded
    to two hex digits per byte (what Verilog's `$readmemh` reads into a register that wide)."""
    size = array.dtype.itemsize
    flat = _little_endian(np.ascontiguousarray(array)).reshape(-1).view(f"<u{size}")
    if size == 1:  # the common case (int8, uint8): a table instead of a format per value
        table = [f"{v:02x}" for v in range(256)]
        lines = [table[v] for v in flat.tolist()]
    else:
        pattern = f"{{:0{2 * size}x}}"
        lines = [pattern.format(v) for v in flat.tolist()]
    return "".join(line + "\n" for line in lines)


def _inside(directory: Path, name: str) -> Path:
    """Defence in depth: `name` was made safe, and still must land directly in `directory`."""
    path = directory / name
    if path.resolve().parent != directory.resolve() or path.exists():
        raise MobileNetV2Error(f"{directory}: refusing file name {name!r}")
    return path


def _header(entry: dict[str, Any]) -> str:
    note = f"{entry['written_layout'] or 'as stored'}"
    if entry["transpose"]:
        note = (
            f"{entry['written_layout']}: np.transpose(x, {tuple(entry['transpose'])}) of the "
            f"engine's {entry['layout']} tensor {entry['shape']}"
        )
    fields = {
        "name": entry["name"],
        "type": entry["dtype"],
        "index": entry["index"],
        "shape": entry["written_shape"],
        "layout": entry["written_layout"],
        "layout_note": note,
        "original_shape": entry["shape"],
        "original_layout": entry["layout"],
        "transpose": entry["transpose"],
        "kind": entry["kind"],
        "op": entry["op"],
        "keras_layer": entry["keras_layer"],
        "scales": entry["scales"],
        "zero_points": entry["zero_points"],
        "quantized_dimension": entry["written_quantized_dimension"],
        "original_quantized_dimension": entry["quantized_dimension"],
    }
    return "".join(f"# {k}: {json.dumps(v)}\n" for k, v in fields.items())


def format_values(array: np.ndarray) -> str:
    """All values, C order, one line per innermost row; exact for every dtype."""
    if array.size == 0:
        return ""
    rows = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
    fmt = _FLOAT_FORMATS.get(array.dtype.name, "%d")
    if array.dtype.kind == "f" and array.dtype.name not in _FLOAT_FORMATS:
        raise ValueError(f"cannot write {array.dtype} exactly as text")
    buffer = io.StringIO()
    np.savetxt(buffer, rows.astype(np.int64) if array.dtype.kind == "b" else rows, fmt=fmt)
    return buffer.getvalue()


# --- Reading ---------------------------------------------------------------------------------


def read_tensor(path: str | os.PathLike) -> DumpedTensor:
    """The exact array of a dump file and its metadata (the text header, or for `.npy` the
    manifest entry beside it)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            return DumpedTensor(array, _manifest_entry(path))
        text = path.read_text()
    except (OSError, ValueError) as exc:
        raise MobileNetV2Error(f"{path}: cannot read tensor file ({exc})") from None
    return parse_tensor_text(text, path)


def parse_tensor_text(text: str, path: str | os.PathLike) -> DumpedTensor:
    """A text dump file's contents (`# key: <JSON>` header, then the values) as its exact
    array and header; `path` names the file in errors."""
    meta: dict[str, Any] = {}
    lines = text.split("\n")
    body = 0
    for body, line in enumerate(lines):
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            raise MobileNetV2Error(
                f"{path}: not a tensor dump file (line {body + 1} is no '# key: <JSON>')"
            ) from None
    else:
        body = len(lines)
    try:
        dtype = np.dtype(meta["type"])
        shape = tuple(meta["shape"])
        values = _parse_values("\n".join(lines[body:]), dtype)
        return DumpedTensor(values.reshape(shape), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise MobileNetV2Error(f"{path}: not a tensor dump file ({exc})") from None


def parse_numbers(text: str, dtype: np.dtype, sep: str = " ") -> np.ndarray | None:
    """Numbers separated by `sep` (" ": any whitespace) as int64 or float64 (by `dtype`'s
    kind), with NumPy's C parser; None where it stops early (a `1.5` among integers, a C
    spelling such as `1.5f`), for the caller's slower path."""
    wide = np.float64 if np.dtype(dtype).kind == "f" else np.int64
    if not text.strip():
        return np.zeros(0, wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "could not be read to its end": not all numbers
        try:
            return np.fromstring(text, dtype=wide, sep=sep)
        except (ValueError, DeprecationWarning):
            return None


def _parse_values(text: str, dtype: np.dtype) -> np.ndarray:
    """Whitespace-separated numbers as `dtype`, exactly."""
    values = parse_numbers(text, dtype)
    if values is None:
        wide = np.float64 if dtype.kind == "f" else np.int64
        values = np.array(text.split(), dtype=wide)
    return values.astype(dtype)


def _manifest_entry(path: Path) -> dict[str, Any]:
    manifest = path.parent / MANIFEST
    try:
        for entry in json.loads(manifest.read_text())["tensors"]:
            if path.name in entry["files"]:
                return {
                    **entry,
                    "type": entry["dtype"],
                    "shape": entry["written_shape"],
                    "quantized_dimension": entry["written_quantized_dimension"],
                    "original_quantized_dimension": entry["quantized_dimension"],
                }
    except (OSError, ValueError, KeyError) as exc:
        raise MobileNetV2Error(f"{manifest}: cannot read the manifest ({exc})") from None
    raise MobileNetV2Error(f"{path}: not listed in {manifest}")


def dequantize(array: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """`(q - zero_point) * scale` with the file's own parameters (per channel along
    `quantized_dimension` as written); float tensors come back as float32."""
    axis = int(meta.get("quantized_dimension", 0))
    return base_dequantize(array, meta.get("scales", []), meta.get("zero_points"), axis)
