"""Explain one output element of a quantized model, step by step, with the NumPy reference's
arithmetic: the input window and weights, the int32 accumulator (int64 in 16x8 models),
bias, multiplier, shift, rounding, zero point and clamp — and check the result against the
computed tensor."""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilenet_v2.analysis.tensor_map import tflite_table
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.lite.arithmetic import round_half_away
from mobilenet_v2.reference.fixed_point import (
    exp_lut,
    exp_on_negative_values,
    get_reciprocal,
    lut_lookup,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from mobilenet_v2.reference.interpreter import ReferenceInterpreter, window_padding


def find_tensor(reference: ReferenceInterpreter, name: str) -> int:
    """A tensor by index, by its own name, or by its dump file name (`block_1_expand_relu`)."""
    tensors = reference.model.tensors
    if name.isdigit() and int(name) < len(tensors):
        return int(name)
    for t in tensors:
        if t.name == name:
            return t.index
    for t in tflite_table(reference.model).tensors.values():
        if t.file_name == name:
            return t.index
    raise MobileNetV2Error(f"{reference.path}: no tensor named {name!r}")


def nhwc_position(shape: tuple[int, ...], index: tuple[int, ...]) -> tuple[int, ...]:
    """`n,c,h,w` (as the channel_first dumps write it) to the tensor's own NHWC position."""
    if len(shape) == 4:
        if len(index) != 4:
            raise MobileNetV2Error(f"tensor of shape {list(shape)} needs --index n,c,h,w")
        n, c, h, w = index
        position = (n, h, w, c)
        # Said in the order the index was given: NCHW, as the channel_first dumps.
        where = f"index {list(index)} (n,c,h,w) is outside NCHW shape "
        where += str([shape[0], shape[3], shape[1], shape[2]])
    else:
        if len(index) != len(shape):
            raise MobileNetV2Error(f"tensor of shape {list(shape)} needs {len(shape)} indices")
        position = tuple(index)
        where = f"index {list(index)} is outside shape {list(shape)}"
    for p, d in zip(position, shape, strict=True):
        if not 0 <= p < d:
            raise MobileNetV2Error(where)
    return position


def trace(
    reference: ReferenceInterpreter, values: dict[int, np.ndarray], tensor: int, position: tuple
) -> list[str]:
    """The steps that produced `values[tensor][position]`, as printable lines."""
    producer = next((s for s in reference.steps if tensor in s.op.outputs), None)
    t = reference.tensor(tensor)
    value = (
        int(values[tensor][position])
        if t.type_name != "FLOAT32"
        else float(values[tensor][position])
    )
    where = f"{t.type_name.lower()} {list(t.shape)} at NHWC {list(position)}"
    head = [f"tensor {tensor} {t.name!r} {where} = {value}"]
    if producer is None:
        return [*head, "  (model input or constant: no op computes it)"]
    op = producer.op
    head.append(f"op {op.index} {op.opcode}")
    explain = _EXPLAIN.get(op.opcode, _explain_copy)
    lines, result = explain(reference, values, op, position)
    lines = head + [f"  {line}" for line in lines]
    verdict = "matches" if result == value else f"DIFFERS from the computed {value}"
    lines.append(f"  = {result} ({verdict} the tensor)")
    return lines


def _requantize_lines(
    acc: int, multiplier: int, shift: int, zero_point: int, clamp, wide: bool = False
) -> tuple[list[str], int]:
    """The requantization of one accumulator: TFLite's MultiplyByQuantizedMultiplier, the
    int32 one (SRDHM, then a rounding divide) or with `wide` the int64 one of 16x8
    convolutions (the multiplier rounded to 16 bits, one rounding shift)."""
    real = multiplier * 2.0 ** (shift - 31)
    lines = [
        f"requantize: multiplier {multiplier} (Q0.31), shift {shift}  (real scale {real:.10g})"
    ]
    if wide:
        reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
        total_shift = 15 - shift
        product = acc * reduced
        scaled = (product + (1 << (total_shift - 1))) >> total_shift
        assert scaled == int(multiply_by_quantized_multiplier_int64(acc, multiplier, shift))
        lines += [
            f"  16-bit multiplier (M + 2^15) >> 16 = {reduced}; shift 15 - ({shift}) = "
            f"{total_shift}",
            f"  x * {reduced} = {product}",
            f"  (. + 2^{total_shift - 1}) >> {total_shift} (halves up) = {scaled}",
        ]
    else:
        left, right = max(shift, 0), max(-shift, 0)
        shifted = acc * (1 << left)
        high = int(saturating_rounding_doubling_high_mul(shifted, multiplier))
        scaled = int(rounding_divide_by_pot(high, right))
        assert scaled == int(multiply_by_quantized_multiplier(acc, multiplier, shift))
        lines += [
            f"  x * 2^{left} = {shifted}",
            f"  SaturatingRoundingDoublingHighMul(x, {multiplier}) = {high}",
            f"  RoundingDivideByPOT(., {right}) = {scaled}",
        ]
    out = scaled + zero_point
    final = min(max(out, clamp[0]), clamp[1])
    return [
        *lines,
        f"+ output zero point {zero_point} = {out}",
        f"clamp to [{clamp[0]}, {clamp[1]}] (fused activation and type range) = {final}",
    ], final


def _step_requantize_lines(step: Any, acc: int) -> tuple[list[str], int]:
    p = step.params
    return _requantize_lines(acc, p["multiplier"], p["shift"], p["output_zero_point"], p["clamp"])


def _conv_terms(reference, values, op, position, depthwise: bool):
    options = op.options
    x, w = values[op.inputs[0]], values[op.inputs[1]]
    in_zp = reference.quant(op.inputs[0]).zero_point
    uint8 = reference.tensor(op.inputs[1]).type_name == "UINT8"
    f_zp = reference.quant(op.inputs[1]).zero_point if uint8 else 0
    n, oy, ox, oc = position
    kh, kw = w.shape[1], w.shape[2]
    _, top, _ = window_padding(x.shape[1], kh, options.strideH, options.padding == 0)
    _, left, _ = window_padding(x.shape[2], kw, options.strideW, options.padding == 0)
    multiplier_d = (options.depthMultiplier or 1) if depthwise else 1
    channels = [oc // multiplier_d] if depthwise else range(x.shape[3])
    lines = [
        f"window: output ({oy}, {ox}) reads input rows {oy * options.strideH - top}.. and "
        f"columns {ox * options.strideW - left}.. (stride {options.strideH}, padding "
        f"{'SAME' if options.padding == 0 else 'VALID'}: top {top}, left {left}; "
        "outside = skipped)",
        f"input offset {-in_zp} (= -zero point), filter offset {-f_zp}",
        "terms: (ky, kx, in channel) input_q weight_q -> (input_q + in_off) * (weight_q + f_off)",
    ]
    acc = 0
    for i in range(kh):
        for j in range(kw):
            iy, ix = oy * options.strideH - top + i, ox * options.strideW - left + j
            if not (0 <= iy < x.shape[1] and 0 <= ix < x.shape[2]):
                lines.append(f"  ({i}, {j}) padding: skipped")
                continue
            for c in channels:
                xq = int(x[n, iy, ix, c])
                wq = int(w[0, i, j, oc]) if depthwise else int(w[oc, i, j, c])
                term = (xq - in_zp) * (wq - f_zp)
                acc += term
                lines.append(f"  ({i}, {j}, {c}) {xq} {wq} -> {term}")
    return lines, acc


def _explain_conv(reference, values, op, position, depthwise=False):
    lines, acc = _conv_terms(reference, values, op, position, depthwise)
    oc = position[-1]
    bias = int(values[op.inputs[2]][oc]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
    step = next(s for s in reference.steps if s.op is op)
    wide = step.params.get("int64_accumulator", False)
    lines += [
        f"{'int64' if wide else 'int32'} accumulator = {acc}",
        f"+ bias {bias} = {acc + bias}",
    ]
    multipliers = np.asarray(step.params["multiplier"]).reshape(-1)
    shifts = np.asarray(step.params["shift"]).reshape(-1)
    multiplier = int(multipliers[oc if multipliers.size > 1 else 0])
    shift = int(shifts[oc if shifts.size > 1 else 0])
    more, result = _requantize_lines(
        acc + bias,
        multiplier,
        shift,
        step.params["output_zero_point"],
        step.params["clamp"],
        wide,
    )
    return lines + more, result


def _explain_depthwise(reference, values, op, position):
    return _explain_conv(reference, values, op, position, depthwise=True)


def _explain_fully_connected(reference, values, op, position):
    x, w = values[op.inputs[0]].reshape(-1, values[op.inputs[1]].shape[1]), values[op.inputs[1]]
    n, oc = position[0], position[-1]
    in_zp = reference.quant(op.inputs[0]).zero_point
    lines = [f"input offset {-in_zp}; terms: (in) input_q weight_q -> (input_q + off) * weight_q"]
    acc = 0
    for d in range(w.shape[1]):
        term = (int(x[n, d]) - in_zp) * int(w[oc, d])
        acc += term
        lines.append(f"  ({d}) {int(x[n, d])} {int(w[oc, d])} -> {term}")
    bias = int(values[op.inputs[2]][oc]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
    step = next(s for s in reference.steps if s.op is op)
    scale = float(step.params["effective_scale"][oc])
    product = (acc + bias) * scale
    rounded = round_half_away(product)
    zp, clamp = step.params["output_zero_point"], step.params["clamp"]
    final = min(max(rounded + zp, clamp[0]), clamp[1])
    lines += [
        f"{'int64' if x.dtype == np.int16 else 'int32'} accumulator = {acc}",
        f"+ bias {bias} = {acc + bias}",
        f"* effective scale {scale:.17g} (double: in_scale * w_scale / out_scale) = {product:.17g}",
        f"round half away from zero = {rounded}",
        f"+ output zero point {zp} = {rounded + zp}",
        f"clamp to [{clamp[0]}, {clamp[1]}] = {final}",
    ]
    return lines, final


def _explain_add(reference, values, op, position):
    step = next(s for s in reference.steps if s.op is op)
    (m1, s1), (m2, s2) = step.params["input_multipliers"]
    left = step.params["left_shift"]
    lines, scaled = [], []
    for k, (m, s) in enumerate(((m1, s1), (m2, s2))):
        q = reference.quant(op.inputs[k])
        v = int(values[op.inputs[k]][position])
        shifted = (v - q.zero_point) << left
        sc = int(multiply_by_quantized_multiplier(shifted, m, s))
        scaled.append(sc)
        lines.append(
            f"input {k + 1}: {v} - zero point {q.zero_point} = {v - q.zero_point}; << {left} = "
            f"{shifted}; * multiplier {m} with shift {s} = {sc}"
        )
    lines.append(f"sum = {scaled[0] + scaled[1]}")
    more, result = _step_requantize_lines(step, scaled[0] + scaled[1])
    return lines + more, result


def _explain_mean(reference, values, op, position):
    step = next(s for s in reference.steps if s.op is op)
    x = values[op.inputs[0]]
    in_zp = reference.quant(op.inputs[0]).zero_point
    total = int(
        step.params["accumulator"].reshape(-1)[
            np.ravel_multi_index(position, values[op.outputs[0]].shape)
        ]
    )
    count = step.params["count"]
    lines = [
        f"sum of {count} inputs over the reduced axes = {total} (input {list(x.shape)})",
        f"- zero point {in_zp} * {count} = {total - in_zp * count}",
        "the division by the count is folded into the multiplier: (M << s) / count",
    ]
    more, result = _step_requantize_lines(step, total - in_zp * count)
    return lines + more, result


def _explain_average_pool(reference, values, op, position):
    step = next(s for s in reference.steps if s.op is op)
    acc = int(step.params["accumulator"][position])
    count = int(step.params["count"][(*position[:-1], 0)])
    rounded = (acc + count // 2) // count if acc >= 0 else -((-acc + count // 2) // count)
    low, high = step.params["clamp"]
    final = min(max(rounded, low), high)
    return [
        f"sum over the {count} in-bounds window inputs = {acc}",
        f"(sum +- {count // 2}) / {count}, truncated: halves away from zero = {rounded}",
        f"clamp to [{low}, {high}] = {final}",
    ], final


def _explain_softmax_int16(reference, values, op, position):
    step = next(s for s in reference.steps if s.op is op)
    p = step.params
    row = values[op.inputs[0]][position[:-1]].astype(np.int64)
    k = position[-1]
    diff = int(row[k] - row.max())
    m, left = p["input_multiplier"], p["input_left_shift"]
    scaled = int(multiply_by_quantized_multiplier(np.int64(diff), m, left))
    index = min(max(scaled + 32767, -32768), 32767)
    exp = int(lut_lookup(np.int64(index), exp_lut()))
    total = int(p["sum_of_exps"][position[:-1]][0])
    reciprocal = int(p["reciprocal"][position[:-1]][0])
    right = int(p["right_shift"][position[:-1]][0])
    final = min(max((exp * reciprocal + (1 << (right - 1))) >> right, 0), 32767)
    return [
        f"row max {int(row.max())}; input {int(row[k])}; difference {diff}",
        f"difference * multiplier {m} << {left} = {scaled}: [-65535, 0] spans [-10, 0]",
        f"+ 32767, clamped to int16 = {index}: exp table entry {256 + (index >> 7)}, "
        f"interpolated over {index & 0x7F}/128 = {exp} (Q0.15: {exp / 2**15:.6f})",
        f"sum of exps over the row = {total} (Q16.15); its reciprocal by table = {reciprocal}",
        f"exp * reciprocal, (. + 2^{right - 1}) >> {right} (halves up), clamp to [0, 32767]",
    ], final


def _explain_softmax(reference, values, op, position):
    if reference.tensor(op.inputs[0]).type_name == "INT16":
        return _explain_softmax_int16(reference, values, op, position)
    step = next(s for s in reference.steps if s.op is op)
    row = values[op.inputs[0]][position[:-1]].astype(np.int64)
    v = int(row[position[-1]])
    m, left, diff_min = (
        step.params[k] for k in ("input_multiplier", "input_left_shift", "diff_min")
    )
    diffs = row - row.max()
    rescaled = multiply_by_quantized_multiplier(diffs, m, left)
    exps = exp_on_negative_values(rescaled, 5)
    valid = diffs >= diff_min
    total = int(np.where(valid, rounding_divide_by_pot(exps, 12), 0).sum())
    reciprocal, bits_over = get_reciprocal(np.int64(total), 12)
    out_type = reference.tensor(op.outputs[0])
    out_min = int(np.iinfo(np.dtype(out_type.type_name.lower())).min)
    bits = np.iinfo(np.dtype(out_type.type_name.lower())).bits
    exponent = int(bits_over) + 31 - bits
    k = position[-1]
    lines = [
        f"row max {int(row.max())}; input {v}; difference {int(diffs[k])} (kept if >= {diff_min})",
        f"difference * multiplier {m} << {left} = {int(rescaled[k])} (Q5.26)",
        f"exp = {int(exps[k])} (Q0.31: {int(exps[k]) / 2**31:.9f})",
        f"sum of exps over the row = {total} (Q12.19, each exp rounded by 2^12)",
        f"reciprocal = {int(reciprocal)} (Q0.31) with {int(bits_over)} bits over one",
    ]
    if not valid[k]:
        return [*lines, f"difference below {diff_min}: output the minimum {out_min}"], out_min
    product = int(saturating_rounding_doubling_high_mul(reciprocal, exps[k]))
    unsat = int(rounding_divide_by_pot(product, exponent))
    final = min(max(unsat + out_min, out_min), out_min + 2**bits - 1)
    lines += [
        f"reciprocal * exp = {product}; RoundingDivideByPOT(., {exponent}) = {unsat}",
        f"+ {out_min} and clamp = {final}",
    ]
    return lines, final


def _explain_quantize(reference, values, op, position):
    q = reference.quant(op.outputs[0])
    f = np.float32(values[op.inputs[0]][position])
    ratio = f / np.float32(q.scale)
    rounded = round_half_away(ratio)
    info = np.iinfo(np.dtype(reference.tensor(op.outputs[0]).type_name.lower()))
    final = min(max(rounded + q.zero_point, int(info.min)), int(info.max))
    return [
        f"float input {float(f)!r} / scale {q.scale!r} = {float(ratio)!r} (float32)",
        f"round half away from zero = {rounded}; + zero point {q.zero_point}; clamp = {final}",
    ], final


def _explain_dequantize(reference, values, op, position):
    q = reference.quant(op.inputs[0])
    v = int(values[op.inputs[0]][position])
    result = float(np.float32((v - q.zero_point) * float(np.float32(q.scale))))
    return [f"({v} - zero point {q.zero_point}) * scale {q.scale!r} (double, then float32)"], result


def _explain_copy(reference, values, op, position):
    flat = int(np.ravel_multi_index(position, values[op.outputs[0]].shape))
    source = values[op.inputs[0]]
    if source.size == values[op.outputs[0]].size:
        src = np.unravel_index(flat, source.shape)
        return [f"{op.opcode}: element {flat} of tensor {op.inputs[0]} at {list(map(int, src))}"], (
            int(source[src]) if source.dtype.kind != "f" else float(source[src])
        )
    return [f"{op.opcode}: padding or copy (see the op's inputs)"], _scalar(
        values[op.outputs[0]][position]
    )


def _scalar(value: Any) -> Any:
    return float(value) if np.asarray(value).dtype.kind == "f" else int(value)


_EXPLAIN = {
    "CONV_2D": _explain_conv,
    "DEPTHWISE_CONV_2D": _explain_depthwise,
    "FULLY_CONNECTED": _explain_fully_connected,
    "ADD": _explain_add,
    "MEAN": _explain_mean,
    "AVERAGE_POOL_2D": _explain_average_pool,
    "SOFTMAX": _explain_softmax,
    "QUANTIZE": _explain_quantize,
    "DEQUANTIZE": _explain_dequantize,
}
