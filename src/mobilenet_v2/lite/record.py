"""Our own metadata record, `mobilenet_v2.preprocessing`: the JSON that our converter embeds
in a named metadata buffer (preprocessing, calibration, weights, labels), and what it can say
the model was made as (weight quantization, input/output tensor types).
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mobilenet_v2.lite.tflite_file import named_buffer

# What our converter makes: weight quantization, and input/output tensor types.
# int16x8: int16 activations, int8 weights (TFLite's 16x8 mode, "A16W8").
QUANTIZATIONS = ("int8", "int16x8", "float16", "dynamic", "none")
# The calibrated, full-integer ones, and the integer I/O types each allows beside float32.
INTEGER_QUANTIZATIONS = {"int8": ("int8", "uint8"), "int16x8": ("int16",)}
IO_TYPES = ("float32", "int8", "uint8", "int16")
# The rewrites of the float model before INT8 conversion (`mobilenet_v2.tf.equalization`), in
# the order they are applied; the record's "steps" lists those applied.
STEPS = ("relu", "equalize", "absorb_bias", "bias_correction")

METADATA_NAME = "mobilenet_v2.preprocessing"


def check_io_type(quantize: str, io_type: str) -> None:
    """Integer input and output go with the quantization whose activations they are: a
    ValueError that names the flags otherwise."""
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type must be one of {IO_TYPES}; received {io_type!r}")
    if io_type != "float32" and io_type not in INTEGER_QUANTIZATIONS.get(quantize, ()):
        needs = next(q for q, types in INTEGER_QUANTIZATIONS.items() if io_type in types)
        raise ValueError(f"--io-type {io_type} needs --quantize {needs} (integer I/O)")


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


def read_metadata(model_bytes: bytes) -> dict | None:
    """The embedded preprocessing record, or None for models from elsewhere."""
    data = named_buffer(model_bytes, METADATA_NAME)
    return None if data is None else json.loads(data.decode("utf8"))
