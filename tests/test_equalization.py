"""Cross-layer equalization, high-bias absorption and bias correction (`convert --equalize
--absorb-bias --bias-correction`): what each keeps of the float model, and the INT8 weights
that bias correction expects. Accuracy and bit-exactness of the rewritten per-tensor model:
tests/test_tflite.py and tests/test_reference.py (the session's `per_tensor_model`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES

from mobilenet_v2 import MobileNetV2, load_image
from mobilenet_v2.base.errors import InvalidArgumentError
from mobilenet_v2.lite.tflite_file import parse_tflite, read_tflite
from mobilenet_v2.tf import equalization, layers

PHOTOS = ["grace_hopper.bmp", "parrot.jpg", "hot_dog.jpg", "cat.bmp", "bird.bmp"]
SIZE = 96  # the rewrites do not depend on the input size; 96 px keeps the tests fast


def photos(size: int = SIZE) -> np.ndarray:
    return np.stack([load_image(IMAGES / name, size) for name in PHOTOS])


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
    below them on the images and never clips: on those images the model is unchanged."""
    model = build(1.0)
    x = photos()
    absorbed = equalization.absorb_bias(equalization.equalize(model, x), x)
    assert relative_difference(absorbed(x), model(x)) < EXACT
    moved = [
        not np.allclose(a.bn.beta.numpy(), b.bn.beta.numpy())
        for (a, _, _), (b, _, _) in zip(
            equalization.pairs(absorbed), equalization.pairs(model), strict=True
        )
    ]
    assert any(moved)


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
    """How many of the file's int8 weights differ from `quantized_weights` of `model`'s,
    (differing, all); each difference is asserted to be one level at most."""
    tfl = read_tflite(tflite) if not isinstance(tflite, bytes) else parse_tflite(tflite, "m")
    ops = [op for op in tfl.operators if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    differ = total = 0
    for unit, op in zip(equalization._units(model).values(), ops, strict=True):
        q = tfl.constant(op.inputs[1]).dequantized()
        q = q[0] if unit.depthwise else np.transpose(q, (1, 2, 3, 0))  # 1HWC / OHWI
        expected = equalization.quantized_weights(unit.folded(), per_channel, unit.depthwise)
        scales = np.asarray(tfl.tensors[op.inputs[1]].scales)
        assert scales.size == (unit.channels if per_channel else 1)
        off = np.abs(q - expected) > 1e-3 * scales.max()
        assert (np.abs(q - expected)[off] <= scales.max() * 1.001).all()
        differ += int(off.sum())
        total += off.size
    return differ, total


# `quantized_weights` is what the converter writes: symmetric int8, scale max|w|/127 per
# channel or per tensor, rounded as the converter rounds (through the inverse scale in
# float32: the real weights, trained on a grid, sit on halves). Measured: 0 of the 2.2 M real
# convolution weights differ per channel, 0 of the 382 048 seeded random ones (alpha 0.35)
# per tensor or per channel; with another seed one weight did, where batch norm folded in
# another float order lands on a half. Allowed: one in 100 000, by one level.


@pytest.mark.shared
def test_bias_correction_expects_the_converters_per_channel_weights(int8_model, fixture_model):
    differ, total = differing_weights(int8_model, fixture_model, per_channel=True)
    assert differ <= total * 1e-5, (differ, total)


@pytest.mark.integration
def test_bias_correction_expects_the_converters_per_tensor_weights():
    from mobilenet_v2.tf.convert import convert

    model = build(0.35)
    data = convert(model, "int8", "int8", photos(), per_tensor=True)
    differ, total = differing_weights(data, model, per_channel=False)
    assert differ <= total * 1e-5, (differ, total)
