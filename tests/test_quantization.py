"""The one dequantization formula (`mobilenet_v2.base.quantization.dequantize`) that the
`.tflite` reader, the LiteRT classifier's scores and the golden dumps share."""

from __future__ import annotations

import numpy as np

from mobilenet_v2.base.quantization import dequantize


def test_per_tensor():
    q = np.array([[0, 128, 255]], np.uint8)
    assert dequantize(q, 0.5, 128).tolist() == [[-64.0, 0.0, 63.5]]


def test_per_channel_along_the_axis():
    q = np.array([[1, 2], [3, 4], [5, 6]], np.int8)  # channels along axis 1
    got = dequantize(q, np.array([1.0, 0.25]), np.array([0, 2]), axis=1)
    assert got.tolist() == [[1.0, 0.0], [3.0, 0.5], [5.0, 1.0]]
    assert got.dtype == np.float32


def test_missing_zero_points_are_zero():
    q = np.array([-2, 4], np.int32)
    assert dequantize(q, [0.5], None).tolist() == [-1.0, 2.0]
    assert dequantize(q, [0.5], []).tolist() == [-1.0, 2.0]


def test_float_input_and_no_scales_pass_through_as_float32():
    x = np.array([1.5, -2.0], np.float16)
    assert dequantize(x, [0.1], [3]).dtype == np.float32
    assert dequantize(x, [0.1], [3]).tolist() == [1.5, -2.0]
    assert dequantize(np.array([7], np.int8), []).tolist() == [7.0]
