"""The layers-to-tensor map: every operator (TFLite) or layer (Keras) with its Keras layer,
input, output and weight tensors (shapes, dtypes, quantization), MACs and parameter counts.

Counting: MACs are the multiply-accumulates of convolutions, depthwise convolutions and the
classifier for one image (the paper's "MAdds"). `weights` counts kernel elements, as the
paper's parameter column does (1.0/224: 3.47 M); `params` adds biases (TFLite, BN folded:
3.49 M) or every Keras variable, BN statistics included (3.54 M).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from hashlib import sha1
from typing import Any

import numpy as np

from mobilenet_v2.lite.layer_map import map_tflite
from mobilenet_v2.lite.tflite_file import TFLiteModel

# How a layout is written: (layout, data format) -> (written layout, np.transpose axes).
# "channel_last" writes TFLite's own layouts, so float and INT8 files have equal shapes.
_LAYOUTS = {
    ("NHWC", "channel_first"): ("NCHW", (0, 3, 1, 2)),
    ("NCHW", "channel_last"): ("NHWC", (0, 2, 3, 1)),  # a channels_first Keras model's outputs
    ("OHWI", "channel_first"): ("OIHW", (0, 3, 1, 2)),
    ("1HWC", "channel_first"): ("C1HW", (3, 0, 1, 2)),
    ("HWIO", "channel_first"): ("OIHW", (3, 2, 0, 1)),
    ("HWIO", "channel_last"): ("OHWI", (3, 0, 1, 2)),
    ("HWC1", "channel_first"): ("C1HW", (2, 3, 0, 1)),
    ("HWC1", "channel_last"): ("1HWC", (3, 0, 1, 2)),
    ("IO", "channel_first"): ("OI", (1, 0)),
    ("IO", "channel_last"): ("OI", (1, 0)),
}
DATA_FORMATS = ("channel_first", "channel_last")
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def written_layout(layout: str, data_format: str) -> tuple[str, tuple[int, ...] | None]:
    """The layout a tensor is written in, and the axes that `np.transpose` takes to get it."""
    return _LAYOUTS.get((layout, data_format), (layout, None))


@dataclass
class TensorInfo:
    index: int
    name: str  # the engine's own name
    kind: str  # input, activation, output, weight, bias, constant, scratch
    shape: tuple[int, ...]
    dtype: str
    layout: str = ""  # NHWC, OHWI (conv), 1HWC (depthwise), HWIO/HWC1 (Keras), OI, C, NC
    keras_layer: str = ""
    file_name: str = ""  # safe, unique in the model; float and INT8 dumps share it
    producer: int | None = None
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0

    def quantization(self) -> dict[str, Any]:
        return {
            "scales": [float(s) for s in self.scales],
            "zero_points": [int(z) for z in self.zero_points],
            "quantized_dimension": int(self.quantized_dimension),
        }

    def describe(self) -> str:
        """`name [shape] dtype`, with per-tensor scale/zero point or per-channel count."""
        text = f"{self.file_name or self.name} {list(self.shape)} {self.dtype}"
        if self.scales.size == 1:
            text += f" s={float(self.scales[0]):.6g} zp={int(self.zero_points[0])}"
        elif self.scales.size > 1:
            text += f" per-channel({self.scales.size}, dim {self.quantized_dimension})"
        return text


@dataclass
class OpInfo:
    index: int
    type: str
    keras_layer: str
    inputs: list[int]
    outputs: list[int]
    weights: list[int]  # constant inputs
    macs: int = 0
    kernel_weights: int = 0
    params: int = 0


@dataclass
class ModelTable:
    source: str
    engine: str  # "tflite" or "keras"
    tensors: dict[int, TensorInfo]
    ops: list[OpInfo]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "macs": sum(op.macs for op in self.ops),
            "weights": sum(op.kernel_weights for op in self.ops),
            "params": sum(op.params for op in self.ops),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "engine": self.engine,
            "totals": self.totals,
            "ops": [
                {
                    "index": op.index,
                    "type": op.type,
                    "keras_layer": op.keras_layer,
                    "inputs": op.inputs,
                    "outputs": op.outputs,
                    "weights": op.weights,
                    "macs": op.macs,
                    "kernel_weights": op.kernel_weights,
                    "params": op.params,
                }
                for op in self.ops
            ],
            "tensors": [_tensor_json(t) for t in self.tensors.values()],
        }


def _tensor_json(t: TensorInfo) -> dict[str, Any]:
    return {
        "index": t.index,
        "name": t.name,
        "kind": t.kind,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "layout": t.layout,
        "keras_layer": t.keras_layer,
        "file_name": t.file_name,
        "producer": t.producer,
        **t.quantization(),
    }


# --- Safe, unique file names -----------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 120


def safe_file_name(name: str, index: int) -> str:
    """A file name from a tensor name that cannot leave its directory: only [A-Za-z0-9._-],
    no leading dot (so never `.` or `..`), at most 120 characters (a hash keeps long names
    apart)."""
    stem = _UNSAFE.sub("_", name).strip("._-")
    if not stem:
        return f"tensor_{index}"
    if len(stem) > _MAX_STEM:
        stem = f"{stem[: _MAX_STEM - 13]}_{sha1(name.encode()).hexdigest()[:12]}"
    return stem


def assign_file_names(tensors: list[TensorInfo], preferred: dict[int, str]) -> None:
    """Give each tensor a distinct safe name: its Keras name where known, else its own name.
    Case-insensitive file systems count too: a clash adds `__t<index>`."""
    taken: set[str] = set()
    for t in tensors:
        stem = safe_file_name(preferred.get(t.index) or t.name, t.index)
        if stem.lower() in taken:
            stem = f"{stem[:_MAX_STEM]}__t{t.index}"
        taken.add(stem.lower())
        t.file_name = stem


# --- TFLite ------------------------------------------------------------------------------


def tflite_table(tfl: TFLiteModel) -> ModelTable:
    """Every operator of the main subgraph with its tensors, Keras layer, MACs and params."""
    names = map_tflite(tfl)
    producers = {out: op.index for op in tfl.operators for out in op.outputs}
    roles: dict[int, tuple[str, str]] = {}  # constant tensor -> (kind, layout)
    for op in tfl.operators:
        for position, t in enumerate(op.inputs):
            if t < 0 or tfl.constant(t).data is None:
                continue
            if op.opcode in _WEIGHT_OPS and position == 1:
                layout = {"CONV_2D": "OHWI", "DEPTHWISE_CONV_2D": "1HWC"}.get(op.opcode, "OI")
                if op.opcode == "CONV_2D" and len(tfl.tensors[t].shape) != 4:
                    layout = ""
                roles.setdefault(t, ("weight", layout))
            elif op.opcode in _WEIGHT_OPS and position == 2:
                roles.setdefault(t, ("bias", "C"))
            else:
                roles.setdefault(t, ("constant", ""))
    for op in tfl.operators:  # float16 weights: the DEQUANTIZE'd constant has the same layout
        if op.opcode == "DEQUANTIZE" and op.outputs[0] in roles and op.inputs[0] in roles:
            roles[op.inputs[0]] = roles[op.outputs[0]]
    tensors = []
    for t in tfl.tensors:
        if t.index in tfl.inputs:
            kind = "input"
        elif t.index in tfl.outputs:
            kind = "output"
        elif t.index in roles:  # constants, and float16 weights dequantized at run time
            kind = roles[t.index][0]
        elif t.index in producers:
            kind = "activation"
        else:
            kind = "constant"
        if kind in ("weight", "bias", "constant"):
            layout = roles.get(t.index, ("", ""))[1]
        else:
            layout = {4: "NHWC", 2: "NC"}.get(len(t.shape), "")
        tensors.append(
            TensorInfo(
                index=t.index,
                name=t.name,
                kind=kind,
                shape=tuple(t.shape),
                dtype=t.type_name.lower(),
                layout=layout,
                keras_layer=names.tensor_layer.get(t.index, ""),
                producer=producers.get(t.index),
                scales=t.scales,
                zero_points=t.zero_points,
                quantized_dimension=t.quantized_dimension,
            )
        )
    assign_file_names(tensors, names.tensor_names)
    ops = []
    for op in tfl.operators:
        inputs = [i for i in op.inputs if i >= 0]
        weights = [i for i in inputs if tensors[i].kind in ("weight", "bias", "constant")]
        info = OpInfo(
            index=op.index,
            type=op.opcode,
            keras_layer=names.op_layer.get(op.index, ""),
            inputs=[i for i in inputs if i not in weights],
            outputs=list(op.outputs),
            weights=weights,
        )
        _count_tflite(info, tensors)
        ops.append(info)
    return ModelTable(
        source=str(tfl.path), engine="tflite", tensors={t.index: t for t in tensors}, ops=ops
    )


def _count_tflite(op: OpInfo, tensors: list[TensorInfo]) -> None:
    if op.type not in _WEIGHT_OPS or not op.outputs:
        return
    kernels = [t for t in op.weights if tensors[t].kind == "weight"]
    if not kernels:
        return
    kernel = tensors[kernels[0]].shape
    outputs = int(np.prod(tensors[op.outputs[0]].shape))
    if op.type == "CONV_2D":
        op.macs = outputs * int(np.prod(kernel[1:]))
    elif op.type == "DEPTHWISE_CONV_2D":
        op.macs = outputs * int(np.prod(kernel[1:-1]))
    else:
        op.macs = outputs * int(kernel[-1])
    op.kernel_weights = int(np.prod(kernel))
    op.params = sum(int(np.prod(tensors[t].shape)) for t in op.weights)


# --- Keras -------------------------------------------------------------------------------


def keras_table(model: Any, source: str = "") -> ModelTable:
    """Every layer of a Keras MobileNetV2 with its output and weights, MACs and params.

    Weight shapes are Keras' own (HWIO kernels, HWC1 depthwise, IO dense); tensor indices
    number layer outputs and weights in layer order.
    """
    from mobilenet_v2.tf import layers

    tensors: list[TensorInfo] = []
    ops: list[OpInfo] = []
    output_index: dict[int, int] = {}
    preferred: dict[int, str] = {}
    # A channels_first model's 4-D outputs are NCHW (its weights keep Keras' one layout).
    channels_first = any(
        getattr(layer, "data_format", None) == "channels_first" for layer in model.layers
    )
    activation_layout = {4: "NCHW" if channels_first else "NHWC", 2: "NC"}
    for position, layer in enumerate(model.layers):
        out = TensorInfo(
            index=len(tensors),
            name=layer.name,
            kind="input" if position == 0 else "activation",
            shape=(1, *layer.output.shape[1:]),
            dtype=str(layer.output.dtype),
            layout=activation_layout.get(len(layer.output.shape), ""),
            keras_layer=layer.name,
            producer=None if position == 0 else position,
        )
        if layer.output is model.outputs[0]:
            out.kind = "output"
        tensors.append(out)
        preferred[out.index] = layer.name
        output_index[id(layer.output)] = out.index
        inbound = [] if position == 0 else layer.input
        inbound = inbound if isinstance(inbound, list) else [inbound]
        op = OpInfo(
            index=position,
            type=type(layer).__name__,
            keras_layer=layer.name,
            inputs=[output_index[id(x)] for x in inbound],
            outputs=[out.index],
            weights=[],
        )
        for var in layer.weights:
            kind = "bias" if var.name in ("bias", "beta") else "weight"
            layout = {
                "kernel": "HWIO" if len(var.shape) == 4 else "IO",
                "depthwise_kernel": "HWC1",
            }.get(var.name, "C")
            info = TensorInfo(
                index=len(tensors),
                name=f"{layer.name}/{var.name}",
                kind=kind,
                shape=tuple(var.shape),
                dtype=str(var.dtype),
                layout=layout,
                keras_layer=layer.name,
            )
            preferred[info.index] = f"{layer.name}.{var.name}"
            tensors.append(info)
            op.weights.append(info.index)
        op.params = sum(int(np.prod(tensors[t].shape)) for t in op.weights)
        shape = out.shape
        spatial = (
            int(np.prod(shape[2:] if channels_first else shape[1:-1])) if len(shape) == 4 else 1
        )
        if isinstance(layer, layers.Conv2D):
            kernel = tuple(layer.kernel.shape)
            op.macs = spatial * int(np.prod(kernel))
            op.kernel_weights = int(np.prod(kernel))
        elif isinstance(layer, layers.DepthwiseConv2D):
            kernel = tuple(layer.depthwise_kernel.shape)
            op.macs = spatial * int(np.prod(kernel))
            op.kernel_weights = int(np.prod(kernel))
        elif isinstance(layer, layers.Dense):
            op.macs = op.kernel_weights = int(np.prod(layer.kernel.shape))
        ops.append(op)
    assign_file_names(tensors, preferred)
    return ModelTable(
        source=source or model.name, engine="keras", tensors={t.index: t for t in tensors}, ops=ops
    )
