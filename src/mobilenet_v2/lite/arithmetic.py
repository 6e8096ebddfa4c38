"""TFLite's kernel arithmetic that the LiteRT runner and the NumPy reference share: std::round
and the quantized SOFTMAX's input scaling, with the check that refuses a model whose softmax
LiteRT's reference kernel would abort on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.lite.tflite_file import TFLiteModel

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
        if not tensor.quantized or tensor.type_name == "INT16":  # int16: a plain multiplier
            continue
        beta = float(op.options.beta) if op.options is not None else 1.0
        scale = float(tensor.scales[0])
        if softmax_input_multiplier(beta, scale) <= 1.0:
            raise ModelFileError(
                f"{model.path}: op {op.index} SOFTMAX: its input scale {scale:.3g} is below "
                f"2^-26, which TFLite's reference softmax cannot scale (LiteRT would abort); "
                "the logits have almost no range: are the weights degenerate?"
            )


def round_half_away(q: Any) -> Any:
    """std::round: to nearest, halves away from zero, exact for float32 and float64 alike."""
    q = np.asarray(q)
    whole = np.trunc(q)
    frac = q - whole
    result = whole + np.where(np.abs(frac) >= 0.5, np.sign(q), 0)
    return int(result) if result.ndim == 0 else result.astype(np.int64)
