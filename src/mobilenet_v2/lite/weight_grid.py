"""Weights that already sit on a quantization grid keep it through conversion.

A quantization-aware trained model stores `w = s * (q - z)`: every weight on a grid of step
`s`. TFLite's converter requantizes the float weights with its own scale, `max |w_c| / 127`
per output channel (or per tensor), which puts them on another grid and rounds them a second
time. Where a channel's integer offsets fit int8 (`|q - z| <= 127`) the source's step is an
exact int8 scale: this module rewrites the converted weights onto it (the smallest multiple
`k * s` that fits where a channel does not) and requantizes the biases to match, so that
every weight of a fitting channel dequantizes to exactly the source's value.

Plain NumPy over the flatbuffer schema: no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mobilenet_v2.base.architecture import CLASSIFIER_LAYER
from mobilenet_v2.lite.arithmetic import round_half_away
from mobilenet_v2.lite.layer_map import WeightOp, map_tflite
from mobilenet_v2.lite.tflite_file import TFLiteModel, parse_tflite

INT8_LIMIT = 127  # TFLite's int8 weights are symmetric: [-127, 127], zero point 0
_INTEGER_TYPES = ("INT8", "UINT8")
_BIAS_TYPES = {"INT32": np.int32, "INT64": np.int64}


@dataclass(frozen=True)
class Grid:
    """One layer's weights as the source stores them: integer offsets `q - z` in TFLite's
    layout (conv OHWI, depthwise 1HWC, fully connected OI) and the step of each output
    channel (`axis`)."""

    offsets: np.ndarray  # int64
    steps: np.ndarray  # float32, one per output channel
    axis: int

    def channel_max(self) -> np.ndarray:
        """The largest |offset| of each output channel."""
        other = tuple(a for a in range(self.offsets.ndim) if a != self.axis)
        return np.abs(self.offsets).max(axis=other)


@dataclass(frozen=True)
class GridKept:
    """What `keep_weight_grid` did: of `channels` output channels (every weight layer's),
    `exact` carry the source's values exactly; the others sit at a multiple of its step,
    at most `largest_multiple`, except in the layers of `converter_scales`, left on the
    converter's own scales because a bias would not fit its type on the source's grid."""

    layers: int
    channels: int
    exact: int
    largest_multiple: int
    converter_scales: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """What the model's metadata record keeps (`GridKept(**record)` reads it back)."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        rest = self.channels - self.exact
        left = self.converter_scales
        return (
            f"weights kept on the source's quantization grid: {self.exact} of {self.channels} "
            "output channels exactly"
            + (f", {rest} at up to {self.largest_multiple}x its step" if rest and not left else "")
            + (
                f", {rest} not (layers {', '.join(left)} keep the converter's scales: their "
                "biases overflow on the source's grid)"
                if left
                else ""
            )
        )


def _output_axis(op_code: str) -> int:
    return 3 if op_code == "DEPTHWISE_CONV_2D" else 0


def source_grids(tfl: TFLiteModel) -> dict[str, Grid] | None:
    """Each weight layer's grid by Keras layer name (the classifier as `predictions`, as the
    source has it: with a TF-slim background class, which `keep_weight_grid` drops), or None
    where the model's weights are not integers (a float or float16 model) or not
    MobileNetV2's."""
    walk = map_tflite(tfl)
    if walk.problem or len(walk.head) != 1:
        return None
    grids = {}
    for name, weights in {**walk.convolutions, CLASSIFIER_LAYER: walk.head[0]}.items():
        kernel = tfl.tensors[weights.kernel] if weights.kernel >= 0 else None
        if kernel is None or kernel.data is None or kernel.type_name not in _INTEGER_TYPES:
            return None
        axis = _output_axis(weights.op.opcode)
        channels = kernel.shape[axis]
        per_channel = kernel.scales.size > 1
        if per_channel and (kernel.scales.size != channels or kernel.quantized_dimension != axis):
            return None
        zero_points = kernel.zero_points if kernel.zero_points.size else np.zeros(1, np.int64)
        if zero_points.size not in (1, kernel.scales.size):
            return None
        shape = [1] * kernel.data.ndim
        if zero_points.size > 1:
            shape[axis] = -1
        offsets = kernel.data.astype(np.int64) - zero_points.reshape(shape)
        steps = np.broadcast_to(kernel.scales.astype(np.float32), (channels,)).copy()
        grids[name] = Grid(offsets, steps, axis)
    return grids


def _fit_classifier(grid: Grid, shape: tuple[int, ...]) -> Grid:
    """The source classifier (FULLY_CONNECTED or a 1x1 CONV_2D, maybe with a background
    class first) in the converted model's (classes, features) layout."""
    offsets = grid.offsets.reshape(grid.offsets.shape[0], -1)
    steps = grid.steps
    if offsets.shape[0] == shape[0] + 1:
        offsets, steps = offsets[1:], steps[1:]
    return Grid(offsets.reshape(shape), steps, 0)


def keep_weight_grid(
    model_bytes: bytes, grids: dict[str, Grid], biases: dict[str, np.ndarray]
) -> tuple[bytes, GridKept]:
    """`model_bytes` (a converted MobileNetV2 with int8 weights per output channel) with every
    weight layer put back on its source grid: per output channel the step `k * s` with the
    smallest k whose offsets fit int8, the weights `round(offset / k)`, and the biases
    `biases[layer]` (float, batch norm folded) requantized to the new `input scale * weight
    scale`. A layer whose bias would not fit its type (int32 in INT8 models) on that grid
    keeps the converter's scales, and `GridKept` names it.

    The converted weights must be the source's up to the converter's rounding; anything else
    (a model rescaled after loading, a source of another network, per-tensor weights) is a
    bug of the caller's and raises ValueError rather than writing other weights than the
    model was built with."""
    tfl = parse_tflite(model_bytes, "<converted model>")
    walk = map_tflite(tfl)
    if walk.problem or len(walk.head) != 1:
        raise ValueError(f"the converted model is not MobileNetV2: {walk.problem or 'head'}")
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    layers = {**walk.convolutions, CLASSIFIER_LAYER: walk.head[0]}
    channels = exact = 0
    largest = 1
    left: list[str] = []
    for name, weights in layers.items():
        kernel = tfl.tensors[weights.kernel]
        grid = grids[name]
        if name == CLASSIFIER_LAYER:
            grid = _fit_classifier(grid, kernel.shape)
        if grid.offsets.shape != kernel.shape:
            raise ValueError(
                f"{name}: source weights {grid.offsets.shape}, converted {kernel.shape}"
            )
        if kernel.scales.size != grid.steps.size:
            raise ValueError(f"{name}: the converted weights are not per output channel")
        _check_close(name, kernel.dequantized(), kernel.scales, grid)
        multiples, scales, values = _on_grid(grid)
        channels += multiples.size
        bias = _bias_on(tfl, weights, biases[name], scales)
        if bias is None:
            left.append(name)
            continue
        _write(model, graph.tensors[weights.kernel], values.astype(np.int8), scales)
        if weights.bias >= 0:
            _write(model, graph.tensors[weights.bias], *bias)
        exact += int((multiples == 1).sum())
        largest = max(largest, int(multiples.max()))
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), GridKept(len(layers), channels, exact, largest, tuple(left))


def _along(values: np.ndarray, grid: Grid) -> np.ndarray:
    shape = [1] * grid.offsets.ndim
    shape[grid.axis] = -1
    return values.reshape(shape)


def _on_grid(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output channel: the multiple k, the int8 scale k * s (float32) and the int8
    values round(offset / k), halves away from zero."""
    multiples = np.maximum(1, -(-grid.channel_max() // INT8_LIMIT))
    scales = (multiples * grid.steps.astype(np.float64)).astype(np.float32)
    values = round_half_away(grid.offsets / _along(multiples, grid))
    return multiples, scales, np.clip(values, -INT8_LIMIT, INT8_LIMIT)


def _check_close(
    name: str, converted: np.ndarray, converted_scales: np.ndarray, grid: Grid
) -> None:
    """The converter's weights must be the source's up to its own rounding: within half its
    step (plus float32 slack) everywhere."""
    source = grid.offsets * _along(grid.steps.astype(np.float64), grid)
    # Halves are common (an offset of 27 in a channel whose largest is 54 lands on 63.5),
    # and float32 puts them a few parts in a million either side.
    tolerance = _along(0.5 * converted_scales.astype(np.float64) * (1 + 1e-4), grid) + 1e-12
    if not np.all(np.abs(converted - source) <= tolerance):
        raise ValueError(f"{name}: the converted weights are not the source's")


def _bias_on(
    tfl: TFLiteModel, weights: WeightOp, bias: np.ndarray, weight_scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The bias requantized to `input scale * weight scale` (its values and scales), or None
    where a value would not fit the bias tensor's type."""
    if weights.bias < 0:
        return np.zeros(0), np.zeros(0)
    tensor = tfl.tensors[weights.bias]
    dtype = _BIAS_TYPES[tensor.type_name]
    input_scale = np.float64(tfl.tensors[weights.op.inputs[0]].scales[0])
    scales = (input_scale * weight_scales.astype(np.float64)).astype(np.float32)
    exact = np.asarray(bias, np.float64).reshape(-1) / scales
    info = np.iinfo(dtype)
    if exact.min() < info.min - 0.5 or exact.max() >= info.max + 0.5:  # before any int cast
        return None
    return round_half_away(exact).astype(dtype), scales


def _write(model: schema.ModelT, tensor: schema.TensorT, values: np.ndarray, scales) -> None:
    """New values and scales; the converter's calibration min/max, which described the old
    scales, are dropped."""
    model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    tensor.quantization.scale = [float(v) for v in np.asarray(scales, np.float32)]
    tensor.quantization.zeroPoint = [0] * len(tensor.quantization.scale)
    tensor.quantization.min = tensor.quantization.max = None
