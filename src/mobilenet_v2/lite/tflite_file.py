"""Read a `.tflite` flatbuffer: tensors, constant buffers, quantization, operators.

Uses the flatbuffer schema that LiteRT ships (`ai_edge_litert.schema_py_generated`) and NumPy
only, so reading a model never imports TensorFlow.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.base.quantization import dequantize

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


# The one line every command gives for a .tflite whose flatbuffer cannot be read (cut short,
# damaged): the reader's own error (struct's, flatbuffers') stays behind --debug.
CORRUPT_MODEL = "corrupt or truncated TFLite model"


def corrupt_model(path: str | os.PathLike) -> ModelFileError:
    return ModelFileError(f"{path}: {CORRUPT_MODEL}")


def litert_load_error(raw: bytes, path: str | os.PathLike, exc: Exception) -> ModelFileError:
    """What to say when LiteRT cannot load `raw`: the one line for an unreadable flatbuffer
    (our reader's verdict first, so that every command says what `inspect` says), else
    LiteRT's reason."""
    parse_tflite(raw, path)  # raises `corrupt_model` (or a more precise error) when damaged
    message = " ".join(str(exc).split())
    if "not a valid flatbuffer" in message.lower():
        return corrupt_model(path)
    return ModelFileError(f"{path}: {CORRUPT_MODEL} ({message[:200]})")


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


# What flatbuffers raises on a cut or damaged buffer: offsets past the end (struct, index),
# strings that are not UTF-8 (ValueError), fields of the wrong kind (TypeError). Anything
# else (MemoryError, a bug of ours) is not the file's fault and is not reported as such.
_UNREADABLE = (struct.error, IndexError, ValueError, TypeError)


def parse_tflite(raw: bytes, path: str | os.PathLike) -> TFLiteModel:
    """Parse a model already in memory; `path` names it in errors."""
    path = Path(path)
    check_identifier(raw, path)
    try:  # the object API unpacks the whole flatbuffer here: this is where a bad file fails
        model = schema.ModelT.InitFromPackedBuf(raw, 0)
    except _UNREADABLE as exc:  # how flatbuffers reports bytes that are not what they claim
        raise corrupt_model(path) from exc  # its words are Python's internals: --debug shows
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


def activations_16bit(model_bytes: bytes) -> bool:
    """Whether the model is quantized in TFLite's 16x8 mode (int16 activations, int8
    weights): it has a quantized int16 tensor. Read lazily, without unpacking the model; a
    damaged flatbuffer is not 16x8 (whoever loads it says what is wrong with it)."""
    try:
        root = schema.Model.GetRootAs(model_bytes, 0)
        if not root.SubgraphsLength():
            return False
        graph = root.Subgraphs(0)
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            if tensor.Type() != schema.TensorType.INT16:
                continue
            quantization = tensor.Quantization()
            if quantization and quantization.ScaleLength():
                return True
    except _UNREADABLE:
        return False
    return False


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
