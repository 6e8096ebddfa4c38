"""gemmlowp's fixed-point primitives as TFLite's common.h uses them, vectorised over int64
arrays: the multiplier/shift pair, saturating rounding doubling high multiply, rounding divide
by a power of two, and the exp/reciprocal of the integer softmax; for 16x8 models, the int64
multiply with a 16-bit multiplier and the 513-entry lookup tables of the int16 softmax."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mobilenet_v2.lite.arithmetic import round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: `real ~= multiplier * 2**(shift - 31)`, multiplier in
    [2**30, 2**31). frexp, then round half away from zero; 2**31 rolls over to the next
    power of two; shifts below -31 flush to zero."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(abs(q) * 2**31 + 0.5) * (1 if q > 0 else -1)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: Any) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2 * a * b, i.e.
    (a * b + nudge) / 2**31 truncated toward zero, nudge 2**30 (1 - 2**30 when a * b < 0);
    INT32_MIN * INT32_MIN saturates to INT32_MAX."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: Any) -> np.ndarray:
    """x / 2**exponent rounded to nearest, halves away from zero (gemmlowp)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding): SRDHM(x * 2**left, M), then
    a rounding right shift. `multiplier` and `shift` may be per-channel (broadcast)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = wrap32(np.asarray(x, np.int64) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def multiply_by_quantized_multiplier_int64(
    x: np.ndarray, multiplier: Any, shift: Any
) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for an int64 accumulator (16x8 convolutions):
    the 31-bit multiplier rounded to 16 bits (0x7FFF at the top), then one rounding shift,
    `(x * m16 + 2**(t - 1)) >> t` with t = 15 - shift (halves up), cut to int32. Both of
    TFLite's rounding builds compute this one the same way."""
    multiplier = np.asarray(multiplier, np.int64)
    total_shift = 15 - np.asarray(shift, np.int64)
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    rounding = np.int64(1) << (total_shift - 1)
    return wrap32((np.asarray(x, np.int64) * reduced + rounding) >> total_shift)


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement wrap-around of an int64 array."""
    return ((np.asarray(x, np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for exponent > 0 (< 0: rounding divide)."""
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    if exponent == 0:
        return x
    threshold = (1 << (31 - exponent)) - 1
    shifted = wrap32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def fixed_mul(a: np.ndarray, b: Any) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp's Taylor expansion at -1/8)."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = fixed_mul(x, x)
    x3 = fixed_mul(x2, x)
    x4 = fixed_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(
        wrap32(fixed_mul(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1
    )
    return wrap32(constant_term + fixed_mul(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given in Q(integer_bits).(31 - integer_bits); result Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308))
    barrel += ((2, 39332535), (3, 720401), (4, 242))
    for exponent, multiplier in barrel:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, fixed_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) in Q0.31, by Newton-Raphson in Q2.29 (gemmlowp)."""
    total = np.asarray(a, np.int64) + INT32_MAX  # RoundingHalfSum(a, One): (sum +- 1) / 2
    half_denominator = np.where(total >= 0, (total + 1) >> 1, -((1 - total) >> 1))
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    x = wrap32(constant_48_over_17 + fixed_mul(half_denominator, constant_neg_32_over_17))
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = fixed_mul(half_denominator, x)
        one_minus = wrap32(one_q2 - half_denominator_times_x)
        x = wrap32(x + _saturating_shift_left(fixed_mul(x, one_minus), 2))
    return _saturating_shift_left(x, 1)  # ExactMulByPot<-1> then Rescale<0>: Q1.30 -> Q0.31


def count_leading_zeros32(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of x as uint32 (frexp is exact on integers below 2**53)."""
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    _, exponent = np.frexp(x.astype(np.float64))
    return np.where(x == 0, 32, 32 - exponent).astype(np.int64)


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: 1/x as Q0.31 plus how many bits x is over one."""
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# --- The int16 softmax's tables ----------------------------------------------------------------

LUT_STEPS = 512  # entries 0..512: 512 intervals of 128 int16 values each


def int16_lut(
    function: Callable[[float], float],
    input_scale: float,
    input_zero_point: int,
    output_scale: float,
    output_zero_point: int,
) -> np.ndarray:
    """TFLite's LUTPopulate for int16 (`detail::LUTPopulateInt16<double>`): `function`
    sampled at 513 points over the int16 input range, each sample lowered by half the error
    that linear interpolation makes at the interval's midpoint; in double precision, in
    TFLite's order of operations (std::round: `round_half_away`)."""
    input_min = input_scale * (-32768 - input_zero_point)
    input_max = input_scale * (32767 - input_zero_point)
    output_min = output_scale * (-32768 - output_zero_point)
    output_max = output_scale * (32767 - output_zero_point)
    step = (input_max - input_min) / LUT_STEPS
    half_step = step / 2
    scaling = 65536.0 / (output_max - output_min)
    table = np.zeros(LUT_STEPS + 1, np.int64)
    for i in range(LUT_STEPS):
        value = function(input_min + i * step)
        midpoint = function(input_min + i * step + half_step)
        following = function(input_min + (i + 1) * step)
        sample = round_half_away(value * scaling)
        interpolated = round_half_away((following * scaling + round_half_away(value * scaling)) / 2)
        bias = round_half_away((interpolated - round_half_away(midpoint * scaling)) / 2)
        table[i] = int(min(max(sample - bias, -32768.0), 32767.0))
    last = round_half_away(function(input_max) * scaling)
    table[LUT_STEPS] = int(min(max(last, -32768.0), 32767.0))
    return table


INT16_RANGE = 65535  # int16 max - min: the tables map it onto their input intervals


@functools.cache
def exp_lut() -> np.ndarray:
    """exp(x) for x in [-10, 0], Q0.15 (the int16 softmax's exponentials)."""
    return int16_lut(math.exp, 10.0 / INT16_RANGE, 32767, 2.0 / INT16_RANGE, 0)


@functools.cache
def one_over_one_plus_x_lut() -> np.ndarray:
    """1 / (1 + x) for x in [0, 1], Q0.15 (the int16 softmax's reciprocal of the sum)."""
    return int16_lut(lambda x: 1.0 / (1.0 + x), 1.0 / INT16_RANGE, -32768, 2.0 / INT16_RANGE, 0)


def lut_lookup(value: np.ndarray, table: np.ndarray) -> np.ndarray:
    """TFLite's int16 LUTLookup: the entry of the value's top 9 bits, plus the slope to the
    next entry times its low 7 bits, rounded (halves up)."""
    value = np.asarray(value, np.int64)
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = table[index]
    slope = table[index + 1] - base
    return base + ((slope * offset + 64) >> 7)
