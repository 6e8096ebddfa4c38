"""Affine quantization's one formula: `real = (q - zero_point) * scale`, per tensor or per
channel along one axis. The NumPy reference's DEQUANTIZE kernel keeps its own arithmetic
(TFLite's, in double precision), because it must match LiteRT bit for bit."""

from __future__ import annotations

import numpy as np


def dequantize(
    values: np.ndarray,
    scales: np.ndarray | float,
    zero_points: np.ndarray | float | None = None,
    axis: int = 0,
) -> np.ndarray:
    """`(q - zero_point) * scale` in float32. One scale applies to the whole tensor; several
    apply per channel along `axis`. Missing zero points are 0; float input comes back as
    float32 unchanged, whatever the parameters say."""
    values = np.asarray(values)
    scales = np.asarray(scales, np.float32).reshape(-1)
    if values.dtype.kind == "f" or scales.size == 0:
        return values.astype(np.float32)
    zero_points = np.asarray(0 if zero_points is None else zero_points, np.float32).reshape(-1)
    return (
        (values.astype(np.float32) - _along(zero_points, values.ndim, axis))
        * _along(scales, values.ndim, axis)
    ).astype(np.float32)


def _along(parameters: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """One value for the whole tensor (none: 0), or one per channel along `axis`."""
    if parameters.size == 0:
        parameters = np.zeros(1, np.float32)
    shape = [1] * ndim
    if parameters.size > 1:
        shape[axis] = -1
    return parameters.reshape(shape)
