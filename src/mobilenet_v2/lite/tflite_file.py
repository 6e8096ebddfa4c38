"""Read a `.tflite` flatbuffer: tensors, constant buffers, quantization, operators.

Uses the flatbuffer schema that LiteRT ships (`ai_edge_litert.schema_py_generated`) and NumPy
only, so reading a model never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.base.quantization import dequantize

if TYPE_CHECKING:  # model_metadata imports this module
    from mobilenet_v2.lite.model_metadata import StandardMetadata

# What our converter makes: weight quantization, and input/output tensor types.
QUANTIZATIONS = ("int8", "float16", "dynamic", "none")
IO_TYPES = ("float32", "int8", "uint8")

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


@dataclass
class Tensor:
    """One tensor of the main subgraph; `data` is set for constants (weights, biases)."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    data: np.ndarray | None
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return self.scales.size > 0 and self.type_name not in ("FLOAT32", "FLOAT16", "FLOAT64")

    def dequantized(self) -> np.ndarray:
        """The constant as float32: `(q - zero_point) * scale`, per channel where it is."""
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} has no constant data")
        if not self.quantized:
            return self.data.astype(np.float32)
        return dequantize(self.data, self.scales, self.zero_points, self.quantized_dimension)


@dataclass
class Operator:
    index: int
    opcode: str
    inputs: tuple[int, ...]  # -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: Any = None  # the schema's builtin options object (strides, padding, activation...)


@dataclass
class TFLiteModel:
    path: Path
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producer(self, tensor_index: int) -> Operator | None:
        for op in self.operators:
            if tensor_index in op.outputs:
                return op
        return None

    def constant(self, tensor_index: int) -> Tensor:
        """The constant behind an operator input, looking through a DEQUANTIZE op (float16
        and some hybrid models store weights in a narrow type and dequantize them at run
        time)."""
        tensor = self.tensors[tensor_index]
        if tensor.data is None:
            op = self.producer(tensor_index)
            if op is not None and op.opcode == "DEQUANTIZE":
                return self.tensors[op.inputs[0]]
        return tensor


# TFLite's kScaledDiffIntegerBits: the int8/uint8 SOFTMAX kernels scale input differences to
# Q5.26, so their input multiplier is beta * input_scale * 2**26.
SOFTMAX_DIFF_INTEGER_BITS = 5


def softmax_input_multiplier(beta: float, input_scale: float) -> float:
    """The real multiplier of a quantized SOFTMAX's input, as TFLite's
    `PreprocessSoftmaxScaling` computes it (capped at 2**31 - 1)."""
    scaled = beta * float(np.float32(input_scale)) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS))
    return min(scaled, 2.0**31 - 1.0)


def check_softmax_scales(model: TFLiteModel) -> None:
    """Refuse a model whose quantized SOFTMAX input multiplier is at most 1: LiteRT's
    reference kernel does not return an error for it, it aborts the whole process
    (TFLITE_CHECK in `QuantizeMultiplierGreaterThanOne`). That happens when the logits'
    whole range is below about 1e-6 (scale < 2**-26), e.g. with random weights whose
    activations vanish layer by layer."""
    for op in model.operators:
        if op.opcode != "SOFTMAX":
            continue
        tensor = model.tensors[op.inputs[0]]
        if not tensor.quantized:
            continue
        beta = float(op.options.beta) if op.options is not None else 1.0
        scale = float(tensor.scales[0])
        if softmax_input_multiplier(beta, scale) <= 1.0:
            raise ModelFileError(
                f"{model.path}: op {op.index} SOFTMAX: its input scale {scale:.3g} is below "
                f"2^-26, which TFLite's reference softmax cannot scale (LiteRT would abort); "
                "the logits have almost no range: are the weights degenerate?"
            )


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """A model file's bytes, checked to be a TFLite flatbuffer; the one place every reader
    (LiteRT classifier, NumPy reference, inspect, weights) opens a `.tflite` with."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    check_identifier(raw, path)
    return raw


def read_tflite(path: str | os.PathLike) -> TFLiteModel:
    """Parse the file; any structural problem raises ModelFileError naming the file."""
    return parse_tflite(read_model_bytes(path), path)


def check_identifier(raw: bytes, path: str | os.PathLike) -> None:
    """The one test and message for bytes that are not a TFLite flatbuffer at all."""
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelFileError(f"{path}: not a valid TFLite model (no TFL3 flatbuffer identifier)")


def parse_tflite(raw: bytes, path: str | os.PathLike) -> TFLiteModel:
    """Parse a model already in memory; `path` names it in errors."""
    path = Path(path)
    check_identifier(raw, path)
    try:  # the object API unpacks the whole flatbuffer here: this is where a bad file fails
        model = schema.ModelT.InitFromPackedBuf(raw, 0)
    except Exception as exc:  # flatbuffers reports truncation as assorted low-level errors
        raise ModelFileError(
            f"{path}: corrupt or truncated TFLite model (flatbuffer unreadable: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    return _convert(path, raw, model)  # its own checks name the file; anything else is a bug


def _convert(path: Path, raw: bytes, model: schema.ModelT) -> TFLiteModel:
    if not model.subgraphs:
        raise ModelFileError(f"{path}: TFLite model has no subgraph")
    graph = model.subgraphs[0]
    _check_indices(path, model, graph)
    buffers = model.buffers or []
    tensors = []
    for index, t in enumerate(graph.tensors or []):
        type_name = _TYPE_NAMES.get(t.type, f"TYPE_{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        data = _buffer_data(path, raw, buffers, t.buffer, type_name, shape, index)
        tensor = Tensor(
            index=index,
            name=(t.name or b"").decode("utf-8", "replace"),
            shape=shape,
            type_name=type_name,
            data=data,
        )
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            tensor.scales = np.asarray(q.scale, np.float32)
            zp = q.zeroPoint if q.zeroPoint is not None else []
            tensor.zero_points = np.asarray(zp, np.int64)
            tensor.quantized_dimension = int(q.quantizedDimension)
        tensors.append(tensor)
    codes = model.operatorCodes or []
    operators = []
    for index, op in enumerate(graph.operators or []):
        code = codes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        opcode = _OPCODE_NAMES.get(builtin, f"OP_{builtin}")
        if opcode == "CUSTOM":
            opcode = f"CUSTOM:{(code.customCode or b'').decode('utf-8', 'replace')}"
        operators.append(
            Operator(
                index=index,
                opcode=opcode,
                inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else ())),
                outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else ())),
                options=op.builtinOptions,
            )
        )
    return TFLiteModel(
        path=path,
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(i) for i in graph.inputs),
        outputs=tuple(int(i) for i in graph.outputs),
    )


def _check_indices(path: Path, model: schema.ModelT, graph: schema.SubGraphT) -> None:
    """Every index the graph holds points at something: a decodable flatbuffer can still say
    operator code 999 or tensor 99999, and that is a damaged file, not a bug of ours."""
    count = len(graph.tensors or [])
    codes = len(model.operatorCodes or [])

    def check(indices, what: str, optional: bool = False) -> None:
        for i in indices if indices is not None else ():
            if not (-1 if optional else 0) <= int(i) < count:
                raise ModelFileError(
                    f"{path}: corrupt TFLite model ({what} refers to tensor {int(i)} of {count})"
                )

    if graph.inputs is None or not len(graph.inputs) or graph.outputs is None:
        raise ModelFileError(f"{path}: corrupt TFLite model (the graph names no inputs)")
    check(graph.inputs, "the graph's input")
    check(graph.outputs, "the graph's output")
    for index, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < codes:
            raise ModelFileError(
                f"{path}: corrupt TFLite model (op {index} has operator code {op.opcodeIndex} "
                f"of {codes})"
            )
        check(op.inputs, f"op {index}'s input", optional=True)  # -1: an omitted input
        check(op.outputs, f"op {index}'s output")


def _buffer_data(
    path: Path,
    raw: bytes,
    buffers: list,
    buffer_index: int,
    type_name: str,
    shape: tuple[int, ...],
    tensor_index: int,
) -> np.ndarray | None:
    if buffer_index <= 0 or buffer_index >= len(buffers):  # buffer 0 is the empty sentinel
        return None
    buf = buffers[buffer_index]
    if buf.data is not None and len(buf.data):
        data = np.asarray(buf.data, np.uint8).tobytes()
    elif buf.offset > 1:  # models over 2 GB keep buffers after the flatbuffer
        if buf.offset + buf.size > len(raw):
            raise ModelFileError(f"{path}: truncated: buffer of tensor {tensor_index} is cut off")
        data = raw[buf.offset : buf.offset + buf.size]
    else:
        return None
    dtype = _NUMPY_TYPES.get(type_name)
    if dtype is None:
        return None
    count = int(np.prod(shape)) if shape else 1
    if len(data) != count * np.dtype(dtype).itemsize:
        raise ModelFileError(
            f"{path}: tensor {tensor_index} has {len(data)} bytes of data for shape {shape} "
            f"of {type_name}"
        )
    return np.frombuffer(data, dtype).reshape(shape).copy()


# --- The preprocessing record that our converter embeds -------------------------------------

METADATA_NAME = "mobilenet_v2.preprocessing"


def embed_metadata(model_bytes: bytes, record: dict) -> bytes:
    """Return the model with `record` stored as JSON in a named metadata buffer.

    TFLite keeps named metadata buffers beside the graph; interpreters ignore names they do
    not know, so the model runs anywhere and still carries how to feed it.
    """
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(record, sort_keys=True).encode("utf8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def named_buffer(model_bytes: bytes, name: str) -> bytes | None:
    """The data of the model's metadata entry `name`, None when it has none. A buffer kept
    after the flatbuffer (models over 2 GB) is read from there; an entry that points to no
    buffer, or past the file's end, is a ValueError."""
    root = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() != name.encode():
            continue
        index = entry.Buffer()
        if not 0 <= index < root.BuffersLength():
            raise ValueError(f"{name} points to buffer {index} of {root.BuffersLength()}")
        buffer = root.Buffers(index)
        if buffer.DataLength():
            return buffer.DataAsNumpy().tobytes()
        if buffer.Offset() > 1:
            if buffer.Offset() + buffer.Size() > len(model_bytes):
                raise ValueError(f"{name}'s buffer is cut off")
            return model_bytes[buffer.Offset() : buffer.Offset() + buffer.Size()]
        return b""
    return None


def read_metadata(model_bytes: bytes) -> dict | None:
    """The embedded preprocessing record, or None for models from elsewhere."""
    data = named_buffer(model_bytes, METADATA_NAME)
    return None if data is None else json.loads(data.decode("utf8"))


def read_preprocessing(
    model_bytes: bytes,
    path: str | os.PathLike,
    grid: dict[str, float] | None = None,
    standard: StandardMetadata | None = None,
) -> dict[str, Any]:
    """The preprocessing a model records, over the defaults, checked: a record that is not
    JSON, not an object, or cannot normalize pixels is a ModelFileError naming the file.

    The standard metadata's NormalizationOptions (`standard`, a `StandardMetadata`) come
    first for float inputs. An 8-bit input gets `grid`, the exact pixel grid of its
    quantization (`pixel_grid`), as MediaPipe and the Task Library feed such models raw
    pixels whatever their metadata says: the fixture's mean and std of 127.5 would shift half
    the levels by one step and merge 254 with 255. Our own record (crop, resize; the mean and
    std it was calibrated with) fills in what the standard does not say.
    """
    from mobilenet_v2.base.preprocess import (
        DEFAULT_PREPROCESSING,
        check_normalization,
        check_resize,
    )

    float_input = not grid
    try:
        record = read_metadata(model_bytes) or {}
        recorded = record.get("preprocessing", {}) if isinstance(record, dict) else None
        if not isinstance(recorded, dict):
            raise TypeError("not a JSON object")
        if "mean" in recorded or "std" in recorded:
            grid = {}
        prep = {**DEFAULT_PREPROCESSING, **(grid or {}), **recorded}
        if float_input and standard is not None and standard.mean and standard.std:
            prep["mean"] = _one_value(standard.mean, "mean")
            prep["std"] = _one_value(standard.std, "std")
        check_normalization(prep["mean"], prep["std"])
        check_resize(prep["resize"], prep["crop_fraction"])
    except (ValueError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ModelFileError(f"{path}: invalid recorded preprocessing ({exc})") from None
    return prep


def _one_value(values: tuple[float, ...], what: str) -> float:
    """The one normalization value of all channels; a different one per channel is refused
    (our pipelines normalize every channel alike)."""
    if len(set(values)) != 1:
        shown = ", ".join(f"{v:g}" for v in values)
        raise ValueError(f"a different {what} per channel [{shown}] is not supported")
    return float(values[0])


def pixel_grid(dtype: Any, scales: Any, zero_points: Any) -> dict[str, float]:
    """{mean, std} that map pixel p exactly to the quantized input p (uint8) or p - 128
    (int8): the input is (q - zero_point) * scale, so mean = zero_point (+ 128 for int8) and
    std = 1 / scale. Empty for float inputs and for inputs without one scale."""
    offset = {np.dtype(np.uint8): 0, np.dtype(np.int8): 128}.get(np.dtype(dtype))
    scales, zero_points = np.atleast_1d(scales), np.atleast_1d(zero_points)
    if offset is None or scales.size != 1 or not float(scales[0]) > 0:
        return {}
    zero_point = int(zero_points[0]) if zero_points.size else 0
    return {"mean": float(zero_point + offset), "std": 1.0 / float(scales[0])}


def round_half_away(q: Any) -> Any:
    """std::round: to nearest, halves away from zero, exact for float32 and float64 alike."""
    q = np.asarray(q)
    whole = np.trunc(q)
    frac = q - whole
    result = whole + np.where(np.abs(frac) >= 0.5, np.sign(q), 0)
    return int(result) if result.ndim == 0 else result.astype(np.int64)
