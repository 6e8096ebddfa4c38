"""A bit-exact NumPy reference of TFLite's integer kernels, for quantized MobileNetV2.

Runs a `.tflite` graph with its own kernels — CONV_2D, DEPTHWISE_CONV_2D, ADD,
AVERAGE_POOL_2D, MEAN, FULLY_CONNECTED, RESHAPE, SOFTMAX, QUANTIZE, DEQUANTIZE, PAD — with the
arithmetic of TFLite's reference kernels (`OpResolverType.BUILTIN_REF`): int32 accumulation
with zero points, bias, requantization by a 31-bit fixed-point multiplier and a shift with
gemmlowp's rounding (TFLite's default "double rounding" build), fused activation clamps and the
fixed-point softmax. int8 per-channel (our converter's models) and uint8 per-tensor (TF-slim's)
models, and 16x8 ones (int16 activations with zero point 0, int8 weights, int64 biases): int64
accumulators requantized by a 16-bit multiplier, ADD with 15 bits of headroom, the softmax by
lookup tables. Every intermediate equals LiteRT's reference kernels exactly
(tests/test_reference.py, tests/test_int16x8.py).

NumPy only: the model is read with the flatbuffer schema that LiteRT ships
(`ai_edge_litert.schema_py_generated`, plain Python over the `flatbuffers` package): it is the
schema of the runtime we check against, and importing it loads neither the interpreter nor any
native library, nor TensorFlow.

Values are held as int64 arrays while computing; each kernel states the int32 step it mirrors.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.lite.arithmetic import (
    SOFTMAX_DIFF_INTEGER_BITS,
    check_softmax_scales,
    round_half_away,
    softmax_input_multiplier,
)
from mobilenet_v2.lite.model_description import describe_model, pixel_grid
from mobilenet_v2.lite.tflite_file import (
    Operator,
    Tensor,
    TFLiteModel,
    parse_tflite,
    read_model_bytes,
)
from mobilenet_v2.reference.fixed_point import (
    count_leading_zeros32,
    exp_lut,
    exp_on_negative_values,
    fixed_mul,
    get_reciprocal,
    lut_lookup,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    one_over_one_plus_x_lut,
    quantize_multiplier,
    rounding_divide_by_pot,
    wrap32,
)

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class UnsupportedOpError(ModelFileError):
    """An operator or tensor type this reference has no kernel for."""


@dataclass
class QuantParams:
    scales: np.ndarray
    zero_points: np.ndarray
    axis: int

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points.size else 0


@dataclass
class Step:
    """What one op computed, for tracing: its name, inputs and requantization parameters."""

    op: Operator
    params: dict[str, Any] = field(default_factory=dict)


_INT_TYPES = {
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
}
# Activation types the kernels take: 8-bit, and int16 (16x8 models, zero point 0).
_ACTIVATION_TYPES = ("INT8", "UINT8", "INT16")


class ReferenceInterpreter:
    """Run a quantized `.tflite` MobileNet-style graph with NumPy kernels.

    `run(x)` takes the model's input (its own dtype, or float32 for float-input models) and
    returns every tensor by index: constants as stored, activations as computed.
    """

    def __init__(self, model: str | os.PathLike | bytes) -> None:
        if isinstance(model, bytes):
            raw, path = model, Path("<model>")
        else:
            path = Path(model)
            raw = read_model_bytes(path)
        self.raw = raw  # the file's bytes, as TFLiteClassifier keeps them (SHA-256, copies)
        self.model = parse_tflite(raw, path)
        self.path = path
        if len(self.model.inputs) != 1 or len(self.input_tensor.shape) != 4:
            raise ModelFileError(f"{path}: not an image model (one NHWC input expected)")
        t = self.input_tensor
        grid = pixel_grid(_dtype(t), t.scales, t.zero_points)
        described = describe_model(raw, path, grid, None)
        self.preprocessing, self.notes = described.preprocessing, described.notes
        _check_integer_model(self.model, path)
        _check_symmetric_int16(self.model, path)
        check_softmax_scales(self.model)  # bit-exact with LiteRT, which aborts on these
        self.steps: list[Step] = []
        for op in self.model.operators:
            kernel = _KERNELS.get(op.opcode)
            if kernel is None:
                raise UnsupportedOpError(
                    f"{self.model.path}: op {op.index} is {op.opcode}, which the NumPy "
                    f"reference does not implement (it has {', '.join(sorted(_KERNELS))})"
                )
            self.steps.append(Step(op))

    @property
    def input_tensor(self) -> Tensor:
        return self.model.tensors[self.model.inputs[0]]

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.input_tensor.shape[1]), int(self.input_tensor.shape[2])

    def quantize_input(self, images: np.ndarray) -> np.ndarray:
        """Preprocessed float32 images in the model's input type (as the LiteRT path does)."""
        t = self.input_tensor
        dtype = _dtype(t)
        if dtype.kind == "f":
            return np.asarray(images, dtype)
        info = np.iinfo(dtype)
        scaled = np.asarray(images, np.float32) / np.float32(t.scales[0])
        q = round_half_away(scaled) + self.quant(t.index).zero_point  # as TFLite's QUANTIZE
        return np.clip(q, info.min, info.max).astype(dtype)

    def tensor(self, index: int) -> Tensor:
        return self.model.tensors[index]

    def quant(self, index: int) -> QuantParams:
        t = self.model.tensors[index]
        zero_points = t.zero_points if t.zero_points.size else np.zeros(1, np.int64)
        return QuantParams(t.scales, zero_points, t.quantized_dimension)

    def run(self, model_input: np.ndarray) -> dict[int, np.ndarray]:
        values: dict[int, np.ndarray] = {}
        for t in self.model.tensors:
            if t.data is not None:
                values[t.index] = t.data
        (input_index,) = self.model.inputs
        expected = self.model.tensors[input_index]
        x = np.asarray(model_input)
        if tuple(x.shape) != tuple(expected.shape):
            raise ValueError(f"input shape {x.shape} != model input {expected.shape}")
        values[input_index] = x.astype(_dtype(expected))
        for step in self.steps:
            kernel = _KERNELS[step.op.opcode]
            outputs = kernel(
                self, step, [values.get(i) if i >= 0 else None for i in step.op.inputs]
            )
            out = self.model.tensors[step.op.outputs[0]]
            values[out.index] = np.asarray(outputs).astype(_dtype(out)).reshape(out.shape)
        return values


def _check_integer_model(model: TFLiteModel, path: Path) -> None:
    """The reference is integer arithmetic: refuse float32, float16 and dynamic-range models
    up front, naming the file and what kind of model it is."""
    for op in model.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            data = model.tensors[op.inputs[0]].type_name
            weights = model.constant(op.inputs[1]).type_name
            if data in ("INT8", "UINT8") and weights in ("INT8", "UINT8"):
                continue
            if data == "INT16" and weights == "INT8":
                _check_16x8_bias(model, op, path)
                continue
            kind = {"FLOAT16": "float16", "FLOAT32": "float32"}.get(weights, "dynamic-range")
            if data == "INT16":
                kind = f"16-bit activations with {weights} weights"
            raise UnsupportedOpError(
                f"{path}: the NumPy reference runs int8/uint8 and int16x8 quantized models "
                f"only; this is a {kind} model (op {op.index} {op.opcode}: {data} input, "
                f"{weights} weights)"
            )


def _check_16x8_bias(model: TFLiteModel, op: Operator, path: Path) -> None:
    """16x8 models from TFLite's converter have int64 biases, which the reference computes
    with; an int32 bias (a converter option) makes TFLite accumulate in 32 bits instead,
    which the reference does not implement."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = model.tensors[op.inputs[2]].type_name
        if bias != "INT64":
            raise UnsupportedOpError(
                f"{path}: op {op.index} {op.opcode}: 16x8 with a {bias} bias is not supported "
                "(the NumPy reference computes 16x8 with int64 biases, as TFLite's converter "
                "writes them)"
            )


def _check_symmetric_int16(model: TFLiteModel, path: Path) -> None:
    """TFLite's 16x8 kernels take symmetric int16 activations only (zero point 0)."""
    for t in model.tensors:
        if t.type_name == "INT16" and t.zero_points.size and t.zero_points.any():
            raise UnsupportedOpError(
                f"{path}: int16 tensor {t.index} {t.name!r} has zero point "
                f"{int(t.zero_points[t.zero_points != 0][0])}; int16 activations need zero "
                "point 0"
            )


def _dtype(t: Tensor) -> np.dtype:
    names = {"FLOAT32": np.float32, **_INT_TYPES}
    if t.type_name not in names:
        raise UnsupportedOpError(
            f"tensor {t.index} ({t.name!r}) has unsupported type {t.type_name}"
        )
    return np.dtype(names[t.type_name])


def _type_range(t: Tensor) -> tuple[int, int]:
    info = np.iinfo(_dtype(t))
    return int(info.min), int(info.max)


def activation_range(
    interp: ReferenceInterpreter, out_index: int, activation: int
) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation as an integer clamp."""
    out = interp.tensor(out_index)
    qmin, qmax = _type_range(out)
    q = interp.quant(out_index)

    def quantize(f: float) -> int:
        return q.zero_point + round_half_away(np.float32(f) / np.float32(q.scale))

    name = _ACTIVATIONS.get(activation)
    if name == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if name == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    if name == "NONE":
        return qmin, qmax
    raise UnsupportedOpError(f"fused activation {activation} is not supported")


# --- Kernels ---------------------------------------------------------------------------------


def window_padding(size: int, kernel: int, stride: int, same: bool) -> tuple[int, int, int]:
    """Output size, padding before and after (TFLite's ComputePaddingHeightWidth)."""
    out = (size + stride - 1) // stride if same else (size - kernel + stride) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kh: int, kw: int, options: Any) -> tuple[np.ndarray, int, int]:
    """Zero-padded input (in offset space) and output size; padding is a skipped tap."""
    same = options.padding == 0
    _, h, w, _ = x.shape
    oh, top, bottom = window_padding(h, kh, options.strideH, same)
    ow, left, right = window_padding(w, kw, options.strideW, same)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    return padded, oh, ow


def _tap(padded: np.ndarray, i: int, j: int, oh: int, ow: int, options: Any) -> np.ndarray:
    sh, sw = options.strideH, options.strideW
    return padded[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]


def _conv_multipliers(interp: ReferenceInterpreter, op: Operator, channels: int):
    """Per-channel (int8) or per-tensor (uint8) requantization: multiplier and shift arrays,
    computed as TFLite's PopulateConvolutionQuantizationParams does."""
    x, f, out = (interp.quant(i) for i in op.inputs[:2] + op.outputs[:1])
    in_type = interp.tensor(op.inputs[0]).type_name
    if in_type == "UINT8":
        # GetQuantizedConvolutionMultipler: the float32 product of the scales, then double.
        product = float(np.float32(x.scale) * np.float32(f.scale))
        multiplier, shift = quantize_multiplier(product / float(np.float32(out.scale)))
        return np.full(channels, multiplier, np.int64), np.full(channels, shift, np.int64)
    scales = f.scales if f.scales.size > 1 else np.full(channels, f.scale, np.float32)
    pairs = [
        quantize_multiplier(float(np.float32(x.scale)) * float(s) / float(np.float32(out.scale)))
        for s in scales
    ]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def _requantize(
    interp: ReferenceInterpreter, step: Step, acc: np.ndarray, multipliers, shifts, activation
) -> np.ndarray:
    op = step.op
    out_zp = interp.quant(op.outputs[0]).zero_point
    low, high = activation_range(interp, op.outputs[0], activation)
    wide = interp.tensor(op.inputs[0]).type_name == "INT16"  # int64 accumulator
    step.params.update(
        multiplier=multipliers,
        shift=shifts,
        output_zero_point=out_zp,
        clamp=(low, high),
        int64_accumulator=wide,
    )
    multiply = multiply_by_quantized_multiplier_int64 if wide else multiply_by_quantized_multiplier
    return np.clip(multiply(acc, multipliers, shifts) + out_zp, low, high)


def _offsets(interp: ReferenceInterpreter, op: Operator) -> tuple[int, np.ndarray]:
    in_zp = interp.quant(op.inputs[0]).zero_point
    f = interp.tensor(op.inputs[1])
    f_zp = interp.quant(op.inputs[1]).zero_point if f.type_name == "UINT8" else 0
    return in_zp, f_zp


def _conv_inputs(interp: ReferenceInterpreter, step: Step, inputs: list):
    """Input, weights, bias (or None) and the two zero points of a convolution."""
    op = step.op
    _check_quantized(interp, op)
    if (op.options.dilationHFactor, op.options.dilationWFactor) != (1, 1):
        raise UnsupportedOpError(f"op {op.index} {op.opcode}: dilation is not supported")
    bias = inputs[2] if len(inputs) > 2 else None
    return (inputs[0], inputs[1], bias, *_offsets(interp, op))


def conv_2d(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    options = step.op.options
    x, w, b, in_zp, f_zp = _conv_inputs(interp, step, inputs)
    xo = x.astype(np.int64) - in_zp
    wo = w.astype(np.int64) - f_zp  # OHWI
    out_channels, kh, kw, _ = w.shape
    padded, oh, ow = _windows(xo, kh, kw, options)
    acc = np.zeros((x.shape[0], oh, ow, out_channels), np.int64)
    for i in range(kh):
        for j in range(kw):
            tap = _tap(padded, i, j, oh, ow, options).astype(np.float64)
            # Integer products summed in float64: exact while |acc| < 2**53.
            acc += np.rint(tap @ wo[:, i, j, :].T.astype(np.float64)).astype(np.int64)
    return _finish_conv(interp, step, acc, b, in_zp, f_zp)


def _finish_conv(
    interp: ReferenceInterpreter, step: Step, acc: np.ndarray, bias, in_zp: int, f_zp: int
) -> np.ndarray:
    """Bias, then per-channel requantization and the fused activation clamp."""
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    step.params.update(input_offset=-in_zp, filter_offset=-f_zp, accumulator=acc)
    multipliers, shifts = _conv_multipliers(interp, step.op, acc.shape[-1])
    activation = step.op.options.fusedActivationFunction
    return _requantize(interp, step, acc, multipliers, shifts, activation)


def depthwise_conv_2d(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    options = step.op.options
    x, w, b, in_zp, f_zp = _conv_inputs(interp, step, inputs)
    multiplier = options.depthMultiplier or 1
    _, kh, kw, out_channels = w.shape  # 1HWC, C = in_channels * depth multiplier
    xo = np.repeat(x.astype(np.int64) - in_zp, multiplier, axis=3)  # channel c*M + m reads c
    wo = w.astype(np.int64)[0] - f_zp
    padded, oh, ow = _windows(xo, kh, kw, options)
    acc = np.zeros((x.shape[0], oh, ow, out_channels), np.int64)
    for i in range(kh):
        for j in range(kw):
            acc += _tap(padded, i, j, oh, ow, options) * wo[i, j]
    return _finish_conv(interp, step, acc, b, in_zp, f_zp)


def fully_connected(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    """int8: TFLite's reference FullyConnectedPerChannel scales the int32 accumulator in double
    precision, `round(acc * in_scale * w_scale / out_scale)`, not with a fixed-point multiplier."""
    op, options = step.op, step.op.options
    _check_quantized(interp, op)
    x, w, b = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    if interp.tensor(op.inputs[0]).type_name not in ("INT8", "INT16"):
        raise UnsupportedOpError(
            f"op {op.index} FULLY_CONNECTED: only int8 and int16 inputs are supported"
        )
    in_zp = interp.quant(op.inputs[0]).zero_point
    xo = x.reshape(-1, w.shape[1]).astype(np.float64) - in_zp
    acc = np.rint(xo @ w.astype(np.float64).T).astype(np.int64)
    if b is not None:
        acc += b.astype(np.int64)
    xq, fq, oq = (interp.quant(i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    scales = fq.scales if fq.scales.size > 1 else np.full(w.shape[0], fq.scale, np.float32)
    effective = (
        float(np.float32(xq.scale)) * scales.astype(np.float64) / float(np.float32(oq.scale))
    )
    low, high = activation_range(interp, op.outputs[0], options.fusedActivationFunction)
    step.params.update(
        input_offset=-in_zp,
        accumulator=acc,
        effective_scale=effective,
        output_zero_point=oq.zero_point,
        clamp=(low, high),
    )
    return np.clip(round_half_away(acc.astype(np.float64) * effective) + oq.zero_point, low, high)


def add(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    """Both inputs rescaled to a common scale with 20 bits of headroom (15 for int16), summed,
    rescaled."""
    op = step.op
    _check_quantized(interp, op)
    q1, q2, qo = (interp.quant(i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    left_shift = 20
    if interp.tensor(op.inputs[0]).type_name == "INT16":
        # The converter writes pot_scale_int16 false: TFLite's general int16 path. With it
        # true and every scale a power of two, TFLite runs another kernel, not this one.
        if (
            op.options is not None
            and op.options.potScaleInt16
            and _all_powers_of_two(q1.scale, q2.scale, qo.scale)
        ):
            raise UnsupportedOpError(
                f"op {op.index} ADD: int16 with power-of-two scales (pot_scale_int16) is not "
                "supported"
            )
        left_shift = 15
    twice_max = float(2 * max(np.float32(q1.scale), np.float32(q2.scale)))
    m1, s1 = quantize_multiplier(float(np.float32(q1.scale)) / twice_max)
    m2, s2 = quantize_multiplier(float(np.float32(q2.scale)) / twice_max)
    mo, so = quantize_multiplier(
        twice_max / float(np.float32((1 << left_shift) * np.float32(qo.scale)))
    )
    a = (inputs[0].astype(np.int64) - q1.zero_point) << left_shift
    c = (inputs[1].astype(np.int64) - q2.zero_point) << left_shift
    scaled1 = multiply_by_quantized_multiplier(a, m1, s1)
    scaled2 = multiply_by_quantized_multiplier(c, m2, s2)
    raw = multiply_by_quantized_multiplier(wrap32(scaled1 + scaled2), mo, so) + qo.zero_point
    low, high = activation_range(interp, op.outputs[0], op.options.fusedActivationFunction)
    step.params.update(
        left_shift=left_shift,
        input_multipliers=((m1, s1), (m2, s2)),
        multiplier=mo,
        shift=so,
        output_zero_point=qo.zero_point,
        clamp=(low, high),
    )
    return np.clip(raw, low, high)


def average_pool_2d(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    op, options = step.op, step.op.options
    _check_quantized(interp, op)
    if interp.tensor(op.inputs[0]).type_name == "INT16":  # not in 16x8 MobileNetV2: unchecked
        raise UnsupportedOpError(f"op {op.index} AVERAGE_POOL_2D: int16 is not supported")
    x = inputs[0].astype(np.int64)
    kh, kw = options.filterHeight, options.filterWidth
    padded, oh, ow = _windows(x, kh, kw, options)
    ones, _, _ = _windows(np.ones_like(x[..., :1]), kh, kw, options)
    acc = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.int64)
    count = np.zeros((x.shape[0], oh, ow, 1), np.int64)
    for i in range(kh):
        for j in range(kw):
            acc += _tap(padded, i, j, oh, ow, options)
            count += _tap(ones, i, j, oh, ow, options)
    # (acc +- count/2) / count, C++ division truncating toward zero: halves away from zero.
    half = count // 2
    rounded = np.where(acc >= 0, (acc + half) // count, -((-acc + half) // count))
    low, high = activation_range(interp, op.outputs[0], options.fusedActivationFunction)
    step.params.update(accumulator=acc, count=count, clamp=(low, high))
    return np.clip(rounded, low, high)


def mean(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    """QuantizedMeanOrSum: integer sum, minus zero point times count, then one multiplier that
    folds the division by the count and the rescaling together."""
    op = step.op
    _check_quantized(interp, op)
    x, axes = inputs[0].astype(np.int64), inputs[1]
    axes = tuple(sorted({int(a) % x.ndim for a in np.asarray(axes).reshape(-1)}))
    qi, qo = interp.quant(op.inputs[0]), interp.quant(op.outputs[0])
    total = x.sum(axis=axes)
    count = int(np.prod([x.shape[a] for a in axes]))
    multiplier, shift = quantize_multiplier(
        float(np.float32(qi.scale)) / float(np.float32(qo.scale))
    )
    headroom = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << headroom) // count
    shift -= headroom
    shifted = wrap32(total - qi.zero_point * count)
    low, high = _type_range(interp.tensor(op.outputs[0]))
    step.params.update(
        accumulator=total,
        count=count,
        multiplier=multiplier,
        shift=shift,
        output_zero_point=qo.zero_point,
        clamp=(low, high),
    )
    return np.clip(
        multiply_by_quantized_multiplier(shifted, multiplier, shift) + qo.zero_point, low, high
    )


def softmax(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    """The fixed-point softmax of TFLite's reference kernel: differences from the row maximum
    scaled to Q5.26, gemmlowp's exp, a Q12.19 sum, its reciprocal, and a rounding shift."""
    op = step.op
    _check_quantized(interp, op)
    if interp.tensor(op.inputs[0]).type_name == "INT16":
        return softmax_int16(interp, step, inputs)
    x = inputs[0].astype(np.int64)
    scaled_diff_integer_bits, accumulation_integer_bits = SOFTMAX_DIFF_INTEGER_BITS, 12
    qi = interp.quant(op.inputs[0])
    beta = float(op.options.beta) if op.options is not None else 1.0
    real = softmax_input_multiplier(beta, qi.scale)
    input_multiplier, input_left_shift = quantize_multiplier(real)
    max_input_rescaled = (
        1.0
        * ((1 << scaled_diff_integer_bits) - 1)
        * (1 << (31 - scaled_diff_integer_bits))
        / (1 << input_left_shift)
    )
    diff_min = -math.floor(max_input_rescaled)
    out_type = interp.tensor(op.outputs[0])
    out_min, out_max = _type_range(out_type)
    bits = np.iinfo(_dtype(out_type)).bits

    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    rescaled = multiply_by_quantized_multiplier(diff, input_multiplier, input_left_shift)
    exps = exp_on_negative_values(rescaled, scaled_diff_integer_bits)
    exps_accum = rounding_divide_by_pot(exps, accumulation_integer_bits)  # Rescale<12>
    sum_of_exps = np.where(valid, exps_accum, 0).sum(axis=-1, keepdims=True)
    sum_of_exps = wrap32(sum_of_exps)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, accumulation_integer_bits)
    exponent = num_bits_over_unit + 31 - bits
    unsat = rounding_divide_by_pot(fixed_mul(shifted_scale, exps), exponent)
    out = np.clip(unsat + out_min, out_min, out_max)
    step.params.update(
        input_multiplier=input_multiplier, input_left_shift=input_left_shift, diff_min=diff_min
    )
    return np.where(valid, out, out_min)


def softmax_int16(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    """TFLite's SoftmaxInt16: differences from the row maximum scaled so that [-10, 0] spans
    the int16 range, exp by table, a Q16.15 sum normalized to [1, 2) and its reciprocal by
    table, and the product shifted back to Q0.15 (output scale 1/32768, zero point 0)."""
    op = step.op
    x = inputs[0].astype(np.int64)
    qi, qo = interp.quant(op.inputs[0]), interp.quant(op.outputs[0])
    if qo.zero_point != 0 or abs(qo.scale - 1 / 32768) > 0.001 / 32768:
        raise UnsupportedOpError(
            f"op {op.index} SOFTMAX: int16 output needs scale 1/32768 and zero point 0 "
            f"(has {qo.scale:.6g}, {qo.zero_point})"
        )
    beta = np.float32(op.options.beta if op.options is not None else 1.0)
    # The scale times beta is a float product; the division by 10/65535 is in double.
    real = float(np.float32(np.float32(qi.scale) * beta)) / (10.0 / 65535.0)
    input_multiplier, input_shift = quantize_multiplier(real)
    diff = x - x.max(axis=-1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, input_multiplier, input_shift)
    exps = lut_lookup(np.clip(scaled + 32767, -32768, 32767), exp_lut())
    sum_of_exps = wrap32(exps.sum(axis=-1, keepdims=True))  # Q16.15
    headroom_plus_one = count_leading_zeros32(sum_of_exps)
    shifted_sum = ((sum_of_exps << (headroom_plus_one - 1)) + (1 << 13)) >> 14
    reciprocal = lut_lookup(
        np.clip(shifted_sum - ((1 << 15) + (1 << 16)), -32768, 32767), one_over_one_plus_x_lut()
    )
    right_shift = 31 - headroom_plus_one
    result = (exps * reciprocal + (np.int64(1) << (right_shift - 1))) >> right_shift
    step.params.update(
        input_multiplier=input_multiplier,
        input_left_shift=input_shift,
        sum_of_exps=sum_of_exps,
        reciprocal=reciprocal,
        right_shift=right_shift,
    )
    return np.clip(result, 0, 32767)


def quantize(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    op = step.op
    source = interp.tensor(op.inputs[0])
    if source.type_name != "FLOAT32":
        raise UnsupportedOpError(f"op {op.index} QUANTIZE: only float32 inputs are supported")
    qo = interp.quant(op.outputs[0])
    q = inputs[0].astype(np.float32) / np.float32(qo.scale)
    low, high = _type_range(interp.tensor(op.outputs[0]))
    return np.clip(round_half_away(q) + qo.zero_point, low, high)


def dequantize(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    op = step.op
    q = interp.quant(op.inputs[0])
    source = interp.tensor(op.inputs[0])
    if source.type_name not in _ACTIVATION_TYPES:
        raise UnsupportedOpError(f"op {op.index} DEQUANTIZE: {source.type_name} is not supported")
    values = inputs[0].astype(np.float64) - q.zero_point
    return (values * float(np.float32(q.scale))).astype(np.float32)


def reshape(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    return inputs[0].reshape(interp.tensor(step.op.outputs[0]).shape)


def pad(interp: ReferenceInterpreter, step: Step, inputs: list) -> np.ndarray:
    op = step.op
    paddings = np.asarray(inputs[1]).reshape(-1, 2)
    value = (
        interp.quant(op.outputs[0]).zero_point
        if interp.tensor(op.outputs[0]).type_name != "FLOAT32"
        else 0
    )
    return np.pad(inputs[0], [tuple(int(v) for v in p) for p in paddings], constant_values=value)


def _check_quantized(interp: ReferenceInterpreter, op: Operator) -> None:
    for index in (*op.inputs[:1], *op.outputs[:1]):
        t = interp.tensor(index)
        if t.type_name not in _ACTIVATION_TYPES or not t.scales.size:
            raise UnsupportedOpError(
                f"op {op.index} {op.opcode}: tensor {t.name!r} is {t.type_name}; the NumPy "
                "reference runs quantized int8/uint8 and int16x8 graphs only"
            )


def _all_powers_of_two(*scales: float) -> bool:
    """As TFLite's CheckedLog2: log2 of each scale within 1e-3 of an integer."""
    return all(abs(math.log2(float(s)) - round(math.log2(float(s)))) < 1e-3 for s in scales)


_KERNELS = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "AVERAGE_POOL_2D": average_pool_2d,
    "MEAN": mean,
    "SOFTMAX": softmax,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
    "RESHAPE": reshape,
    "PAD": pad,
}
