"""Cross-layer equalization, high-bias absorption and bias correction (`convert --equalize
--absorb-bias --bias-correction`): what each keeps of the float model, and the INT8 weights
that bias correction expects. Accuracy and bit-exactness of the rewritten per-tensor model:
tests/test_tflite.py and tests/test_reference.py (the session's `per_tensor_model`)."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES

from mobilenet_v2 import MobileNetV2, load_image
from mobilenet_v2.base.errors import InvalidArgumentError
from mobilenet_v2.lite.tflite_file import parse_tflite, read_tflite
from mobilenet_v2.tf import equalization, layers
from mobilenet_v2.tf._tf import keras, tf

PHOTOS = ["grace_hopper.bmp", "parrot.jpg", "hot_dog.jpg", "cat.bmp", "bird.bmp"]
SIZE = 96  # the rewrites do not depend on the input size; 96 px keeps the tests fast


@functools.cache
def photos(size: int = SIZE) -> np.ndarray:
    return np.stack([load_image(IMAGES / name, size) for name in PHOTOS])


@functools.cache  # built once: every rewrite returns a new model and leaves its argument
def build(alpha: float) -> MobileNetV2:
    """alpha 1.0: the real weights (folded batch norm); 0.35: seeded random weights, whose
    batch norm is not folded (no real weights of that width here)."""
    if alpha == 1.0:
        return MobileNetV2(
            input_shape=(SIZE, SIZE, 3), weights=str(FIXTURE_TFLITE), classifier_activation=None
        )
    return MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=alpha, weights=None, init_seed=1,
        classifier_activation=None,
    )  # fmt: skip


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# Equalization only reorders float32 products (one scale per channel and sweep): measured
# 1.7e-6 relative on the logits. 1e-4 (the bound) leaves a wide margin, and a wrong
# scale on one channel moves the logits by far more.
EXACT = 1e-4


@pytest.mark.shared
@pytest.mark.parametrize("alpha", [1.0, 0.35])
def test_equalization_keeps_a_relu_model(alpha):
    """Through ReLU, which commutes with any positive scale (the paper's method), the
    equalized model computes what the model before it computes, on any image."""
    model = equalization.with_relu(build(alpha))
    equalized = equalization.equalize(model)
    x = photos()
    assert relative_difference(equalized(x), model(x)) < EXACT


@pytest.mark.shared
@pytest.mark.parametrize("alpha", [1.0, 0.35])
def test_equalization_keeps_relu6_on_its_images(alpha):
    """ReLU6 stays: channels that reach 6 on the images keep their scale, so on those images
    the equalized model computes the same."""
    model = build(alpha)
    x = photos()
    equalized = equalization.equalize(model, x)
    assert all(isinstance(a, layers.ReLU6) for _, _, a in equalization.pairs(equalized))
    assert relative_difference(equalized(x), model(x)) < EXACT


@pytest.mark.shared
def test_equalization_balances_the_ranges_of_each_pair():
    """Through ReLU every channel of a pair ends with the same range in both convolutions,
    sqrt(r1 r2); the real weights' first depthwise convolution, whose channels span 0 to 56
    (what breaks per-tensor INT8), then spans no more than Conv1's largest range."""
    model = equalization.with_relu(build(1.0))
    before = equalization.pairs(model)[0][1].output_ranges()
    assert before.max() > 50
    equalized = equalization.equalize(model)
    for first, second, _ in equalization.pairs(equalized):
        r1, r2 = first.output_ranges(), second.input_ranges()
        live = (r1 > 0) & (r2 > 0)
        np.testing.assert_allclose(r1[live], r2[live], rtol=1e-3)
    conv1, depthwise, _ = equalization.pairs(equalized)[0]
    assert depthwise.output_ranges().max() <= conv1.output_ranges().max() * 1.001 < 3


@pytest.mark.shared
def test_with_relu_replaces_only_the_activations_between_pairs():
    model = equalization.with_relu(build(1.0))
    relus = {layer.name for layer in model.layers if isinstance(layer, layers.ReLU)}
    assert len(relus) == 34 and "Conv1_relu" in relus and "block_16_depthwise_relu" in relus
    assert isinstance(model.get_layer("out_relu"), layers.ReLU6)


@pytest.mark.shared
def test_absorption_keeps_the_model_on_its_images():
    """High biases move into the next 1x1 convolution only where the activation never goes
    below them on the images and never clips: on those images the model is unchanged, and
    some channels did move (the first's bias down, the next's moving mean with it)."""
    x = photos()
    model = build(1.0)
    equalized = equalization.equalize(model, x)
    absorbed = equalization.absorb_bias(equalized, x)
    assert relative_difference(absorbed(x), model(x)) < EXACT
    lowered = shifted = 0
    for (a, b, _), (a0, b0, _) in zip(
        equalization.pairs(absorbed), equalization.pairs(equalized), strict=True
    ):
        lowered += int((a.bn.beta.numpy() < a0.bn.beta.numpy()).sum())
        shifted += int((b.bn.moving_mean.numpy() != b0.bn.moving_mean.numpy()).sum())
    assert lowered > 0 and shifted > 0


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_bias_correction_cancels_the_mean_error_of_int8_weights(per_channel):
    """For each convolution (a stride-2 padded depthwise one, a 1x1 one, Conv1) and the
    classifier, fed the float model's inputs: with the converter's INT8 weights and the
    corrected bias, the mean output equals the float model's. Measured: the mean error
    drops from about 1e-2 to about 1e-6 (float32 sums); allowed 1e-4 of the output's size."""
    model = build(0.35)
    x = photos()
    corrected = equalization.correct_bias(model, x, per_channel=per_channel)
    names = ["Conv1", "block_1_depthwise", "block_5_expand", "predictions"]
    targets = {t.conv.name: t for t in equalization._weighted(model)}
    fixed = {t.conv.name: t for t in equalization._weighted(corrected)}
    probe = keras.Model(model.input, [model.get_layer(n).input for n in names])
    for name, inputs in zip(names, probe(x), strict=True):
        target, after = targets[name], fixed[name]
        w = target.folded()
        q = equalization.quantized_weights(w, per_channel)
        before_error = mean_output(target, inputs, q) - mean_output(target, inputs, w)
        bias_change = after._affine()[1] - target._affine()[1]
        size = np.abs(mean_output(target, inputs, w)).max()
        assert np.abs(before_error).max() > 1e-3 * size, name  # there was an error to cancel
        assert np.abs(before_error + bias_change).max() < 1e-4 * size, name


def mean_output(target, inputs, weights) -> np.ndarray:
    """Mean over images and positions of the layer's output without bias, for `weights`."""
    x = tf.constant(np.asarray(inputs), tf.float64)
    w = tf.constant(weights, tf.float64)
    conv = target.conv
    if isinstance(conv, layers.Dense):
        y = tf.linalg.matmul(x, w)
    elif target.depthwise:
        y = tf.nn.depthwise_conv2d(x, w[..., None], (1, *conv.strides, 1), conv.padding.upper())
    else:
        y = tf.nn.conv2d(x, w, (1, *conv.strides, 1), conv.padding.upper())
    y = np.asarray(y)
    return y.reshape(-1, y.shape[-1]).mean(axis=0)


def test_rewrites_refuse_what_they_cannot_know():
    """Without images, the statistics must come from batch norm: folded weights have none,
    and ReLU6's clipping cannot be read from it."""
    model = build(1.0)
    with pytest.raises(InvalidArgumentError, match="ReLU6"):
        equalization.equalize(model)
    with pytest.raises(InvalidArgumentError, match="folded away"):
        equalization.correct_bias(model)
    with pytest.raises(InvalidArgumentError, match="folded away"):
        equalization.absorb_bias(equalization.with_relu(model))
    with pytest.raises(InvalidArgumentError, match="unknown steps"):
        equalization.rewrite(model, ["equalise"])


def test_rewrites_refuse_keras_applications_model():
    """Same layer names, other layers (whose weights these rewrites do not read)."""
    other = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None)
    refused = re.escape("is not mobilenet_v2.tf.layers' Conv2D")
    with pytest.raises(InvalidArgumentError, match=refused):
        equalization.correct_bias(other)


def test_data_free_bias_correction_uses_batch_norm():
    """Seeded random weights carry batch norm: correction needs no images. Conv1's input is
    the image, whose mean batch norm cannot tell: it keeps its bias."""
    model = build(0.35)
    corrected = equalization.correct_bias(model, per_channel=False)
    for name in ("bn_Conv1", "block_1_expand_BN", "Conv_1_bn"):
        changed = not np.allclose(
            corrected.get_layer(name).beta.numpy(), model.get_layer(name).beta.numpy()
        )
        assert changed == (name != "bn_Conv1"), name


def test_clipped_normal_mean_matches_integration():
    """E[min(max(z, 0), top)] for z ~ N(m, s^2), against a numerical integral."""
    mean, std = np.array([-1.0, 0.5, 3.0, 7.0]), np.array([0.5, 1.0, 2.0, 1.5])
    z = np.linspace(-20, 30, 200001)
    for top in (6.0, math.inf):
        got = equalization._clipped_normal_mean(mean, std, top)
        for m, s, g in zip(mean, std, got, strict=True):
            density = np.exp(-0.5 * ((z - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
            expected = np.trapezoid(np.clip(z, 0, top) * density, z)
            assert g == pytest.approx(expected, abs=1e-6)


def differing_weights(tflite, model, per_channel: bool) -> tuple[int, int]:
    """How many of the file's int8 weights (convolutions and classifier) differ from
    `quantized_weights` of `model`'s, (differing, all); each difference is asserted to be
    one level at most."""
    tfl = read_tflite(tflite) if not isinstance(tflite, bytes) else parse_tflite(tflite, "m")
    kinds = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ops = [op for op in tfl.operators if op.opcode in kinds]
    differ = total = 0
    for unit, op in zip(equalization._weighted(model), ops, strict=True):
        q = tfl.constant(op.inputs[1]).dequantized()  # to output channels last, as `folded`:
        if op.opcode == "CONV_2D":
            q = np.transpose(q, (1, 2, 3, 0))  # OHWI
        elif op.opcode == "DEPTHWISE_CONV_2D":
            q = q[0]  # 1HWC
        else:
            q = q.T  # (out, in)
        expected = equalization.quantized_weights(unit.folded(), per_channel)
        scales = np.asarray(tfl.tensors[op.inputs[1]].scales)
        assert scales.size == (unit.channels if per_channel else 1), op.opcode
        off = np.abs(q - expected) > 1e-3 * scales.max()
        assert (np.abs(q - expected)[off] <= scales.max() * 1.001).all()
        differ += int(off.sum())
        total += off.size
    return differ, total


# `quantized_weights` is what the converter writes: symmetric int8, scale max|w|/127 per
# channel or per tensor, rounded as the converter rounds (through the inverse scale in
# float32: the real weights, trained on a grid, sit on halves). Measured, convolutions and
# classifier: 0 of the 3.47 M real weights differ per channel; 0 of the 1.66 M seeded random
# ones (alpha 0.35) per tensor or per channel, and with another seed one, where batch norm
# folded in another float order lands on a half. Allowed: one in 100 000, by one level.


@pytest.mark.shared
def test_bias_correction_expects_the_converters_per_channel_weights(
    int8_float_io_model, fixture_model
):
    """On the INT8 model of a float source: a quantized source's weights keep their grid
    instead (test_weight_grid), which is why --bias-correction does not keep it."""
    differ, total = differing_weights(int8_float_io_model, fixture_model, per_channel=True)
    assert differ <= total * 1e-5, (differ, total)


@pytest.mark.integration
@pytest.mark.slow  # a conversion of its own; the per-channel case above is in the default run
def test_bias_correction_expects_the_converters_per_tensor_weights():
    from mobilenet_v2.tf.convert import convert

    model = build(0.35)
    data = convert(model, "int8", "int8", photos(), per_tensor=True)
    differ, total = differing_weights(data, model, per_channel=False)
    assert differ <= total * 1e-5, (differ, total)
