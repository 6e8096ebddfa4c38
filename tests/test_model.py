"""MobileNetV2 is keras.applications.MobileNetV2: same layers, names, shapes and outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import copy_weights, randomize

from mobilenet_v2 import MobileNetV2
from mobilenet_v2.base.architecture import INVERTED_RESIDUAL_SETTING
from mobilenet_v2.tf import layers as ours
from mobilenet_v2.tf._tf import keras

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
SIZES = (96, 128, 160, 192, 224)
FULL_GRID = list(itertools.product(ALPHAS, SIZES))
# The default run: the model everyone runs, and the narrowest and the widest (their channels
# round differently; test_layer_names_and_shapes_match_keras_for_every_alpha checks every
# alpha's shapes); `-m slow` runs every alpha at every size.
SUBSET = [(1.0, 224), (0.35, 96), (1.4, 192)]


def pair(alpha, size, seed=0, **kwargs):
    """Keras' model (random weights, random BN statistics) and ours with the same weights."""
    ref = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=None, **kwargs
    )
    randomize(ref, seed)
    mine = MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, **kwargs)
    copy_weights(ref, mine)
    return mine, ref


def check_parity(alpha, size, real_images, **kwargs):
    """Logits (`classifier_activation=None`) or features, to a relative tolerance: with random
    weights the softmax outputs are all about 1e-3, where an absolute 1e-5 would say little.
    1e-4 relative (plus 1e-5 of the largest value, for values near 0) allows float32
    reordering: our BN runs fused, Keras' decomposed."""
    if kwargs.get("include_top", True):
        kwargs.setdefault("classifier_activation", None)
    mine, ref = pair(alpha, size, **kwargs)
    rng = np.random.default_rng(7)
    real = keras.ops.image.resize(real_images, (size, size)).numpy()
    for x in (rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32), real):
        got, want = mine.predict(x, verbose=0), ref.predict(x, verbose=0)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.shared
@pytest.mark.parametrize(("alpha", "size"), SUBSET)
def test_logits_match_keras_applications(alpha, size, real_images):
    check_parity(alpha, size, real_images)


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize(("alpha", "size"), FULL_GRID)
@pytest.mark.parametrize("top", ["top", "avg", "max", "none"])
def test_full_grid_matches_keras_applications(alpha, size, top, real_images):
    kwargs = {"include_top": True} if top == "top" else {"include_top": False}
    if top in ("avg", "max"):
        kwargs["pooling"] = top
    check_parity(alpha, size, real_images, **kwargs)


# Global average pooling, what transfer learning uses, in the default run; the full grid
# runs max and none at every alpha and size.
SLOW = pytest.mark.slow


@pytest.mark.shared
@pytest.mark.parametrize(
    "pooling", ["avg", pytest.param("max", marks=SLOW), pytest.param(None, marks=SLOW)]
)
def test_no_top_features_match_keras_applications(pooling, real_images):
    check_parity(0.5, 128, real_images, include_top=False, pooling=pooling)


def test_layer_names_and_shapes_match_keras_for_every_alpha():
    for alpha in ALPHAS:
        mine, ref = pair(alpha, 96)
        named = [
            (layer.name, layer.output.shape)
            for layer in ref.layers
            if not layer.name.startswith(("input_layer", "global_"))
        ]
        assert [
            (layer.name, layer.output.shape)
            for layer in mine.layers
            if not layer.name.startswith(("input_layer", "global_"))
        ] == named
        assert mine.count_params() == ref.count_params()
        assert mine.name == ref.name == f"mobilenetv2_{alpha:0.2f}_96"


def test_convolution_arguments_match_keras():
    """Padding, strides, kernel size, width and bias of every convolution, padding layer and
    BN as keras.applications sets them (its saved config is what other tools read); e.g.
    `Conv_1` is "valid", the stride-2 depthwise convolutions explicit pads + "valid"."""
    mine, ref = pair(1.3, 96)
    keys = ("padding", "strides", "kernel_size", "filters", "use_bias", "momentum", "epsilon")
    for layer, theirs in zip(mine.layers, ref.layers, strict=True):
        want = {k: v for k, v in theirs.get_config().items() if k in keys}
        got = {k: v for k, v in layer.get_config().items() if k in want}
        assert got == want, layer.name


def test_parameter_count_of_the_paper_model():
    # Table 3 of the paper: 3.4 M parameters for MobileNetV2 1.0 (Keras counts 3,538,984).
    assert MobileNetV2(weights=None).count_params() == 3_538_984


def test_architecture_is_the_papers_table():
    model = MobileNetV2(weights=None, input_shape=(224, 224, 3))
    assert INVERTED_RESIDUAL_SETTING[0] == (1, 16, 1, 1)
    assert sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING) == 17
    assert model.get_layer("block_16_project").filters == 320
    assert model.get_layer("Conv_1").filters == 1280
    assert model.get_layer("out_relu").output.shape == (None, 7, 7, 1280)
    residuals = [layer.name for layer in model.layers if isinstance(layer, ours.Add)]
    assert residuals == [f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]


def test_model_uses_only_our_layers():
    model = MobileNetV2(weights=None, input_shape=(96, 96, 3))
    for layer in model.layers[1:]:
        assert type(layer).__module__ == "mobilenet_v2.tf.layers", layer.name


@pytest.mark.parametrize(("alpha", "shape"), [(0.6, (64, 80, 3)), (0.9, (33, 33, 3))])
def test_any_alpha_and_input_size_match_keras(alpha, shape):
    ref = keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, weights=None)
    randomize(ref)
    mine = MobileNetV2(input_shape=shape, alpha=alpha, weights=None)
    copy_weights(ref, mine)
    x = np.random.default_rng(3).uniform(-1, 1, (2, *shape)).astype(np.float32)
    assert np.abs(mine.predict(x, verbose=0) - ref.predict(x, verbose=0)).max() <= 1e-5


@pytest.mark.shared
def test_channels_first_predicts_what_channels_last_predicts(real_images):
    last = MobileNetV2(weights=None, input_shape=(224, 224, 3))
    randomize(last)
    first = MobileNetV2(weights=None, input_shape=(3, 224, 224), data_format="channels_first")
    copy_weights(last, first)
    got = first.predict(np.transpose(real_images, (0, 3, 1, 2)), verbose=0)
    assert np.abs(got - last.predict(real_images, verbose=0)).max() <= 1e-5


@pytest.mark.shared
def test_channels_first_real_weights_classify_the_same(fixture_model, real_images):
    from conftest import FIXTURE_TFLITE

    first = MobileNetV2(
        weights=str(FIXTURE_TFLITE), input_shape=(3, 224, 224), data_format="channels_first"
    )
    got = first.predict(np.transpose(real_images, (0, 3, 1, 2)), verbose=0)
    want = fixture_model.predict(real_images, verbose=0)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.shared
def test_keras_save_and_load_round_trip(tmp_path, real_images):
    model = MobileNetV2(weights=None, alpha=0.5, input_shape=(128, 128, 3))
    randomize(model)
    x = keras.ops.image.resize(real_images, (128, 128)).numpy()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_input_tensor_is_used_as_the_input():
    inputs = keras.Input((96, 96, 3))
    model = MobileNetV2(input_tensor=inputs, weights=None, include_top=False, pooling="avg")
    assert model.inputs[0] is inputs
    assert model.output.shape == (None, 1280)


def test_unknown_input_size_without_top():
    model = MobileNetV2(weights=None, include_top=False)
    assert model.input.shape == (None, None, None, 3)
    assert model.predict(np.zeros((1, 64, 96, 3), np.float32), verbose=0).shape == (1, 2, 3, 1280)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": "imagenet", "alpha": 0.6}, "alpha must be one of"),
        ({"weights": "imagenet", "classes": 10}, "`classes` should be 1000"),
        ({"weights": None, "input_shape": (31, 31, 3)}, "at least 32x32"),
        ({"weights": None, "input_shape": (None, None, 3)}, "static `input_shape`"),
        ({"weights": None, "input_shape": (224, 3)}, "three integers"),
        ({"weights": "imagenet", "input_shape": (96, 96, 1)}, "should be (96, 96, 3)"),
        ({"weights": 3}, "`weights` argument should be"),
        ({"weights": "imagenet", "classifier_activation": "relu"}, "Only `None` and `softmax`"),
        ({"weights": None, "alpha": 0}, "`alpha` must be positive"),
        ({"weights": None, "pooling": "sum", "include_top": False}, "`pooling` must be"),
        ({"weights": None, "data_format": "NHWC"}, "data_format must be"),
    ],
)
def test_invalid_arguments_are_refused_like_keras(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MobileNetV2(**kwargs)


def test_model_initializers_reach_every_layer():
    model = MobileNetV2(
        weights=None,
        input_shape=(32, 32, 3),
        alpha=0.35,
        kernel_initializer="ones",
        bias_initializer="ones",
    )
    np.testing.assert_array_equal(model.get_layer("Conv1").kernel.numpy(), 1.0)
    np.testing.assert_array_equal(
        model.get_layer("block_5_depthwise").depthwise_kernel.numpy(), 1.0
    )
    np.testing.assert_array_equal(model.get_layer("predictions").bias.numpy(), 1.0)
