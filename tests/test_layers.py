"""Each low-level layer computes what its Keras built-in counterpart computes."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from mobilenet_v2.tf import layers as ours
from mobilenet_v2.tf._tf import keras, tf

RNG = np.random.default_rng(1)


def nhwc(shape=(2, 9, 11, 4)) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def to_nchw(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 3, 1, 2))


def run(layer, x, **kwargs):
    return np.asarray(layer(tf.constant(x), **kwargs))


def built_pair(mine, reference, x):
    """Build both layers on `x`, give ours the reference's weights, return both outputs."""
    ref_out = run(reference, x)
    mine(tf.constant(x))
    mine.set_weights(reference.get_weights())
    return run(mine, x), ref_out


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_matches_keras(strides, padding, use_bias):
    x = nhwc()
    kwargs = dict(
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        activation="relu6",
        bias_initializer="random_normal",
    )
    mine, ref = built_pair(ours.Conv2D(5, 3, **kwargs), keras.layers.Conv2D(5, 3, **kwargs), x)
    np.testing.assert_allclose(mine, ref, atol=1e-6)


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_depthwise_conv2d_matches_keras(strides, padding):
    x = nhwc()
    kwargs = dict(
        strides=strides,
        padding=padding,
        use_bias=True,
        bias_initializer="random_normal",
        depth_multiplier=2,
    )
    mine, ref = built_pair(
        ours.DepthwiseConv2D(3, **kwargs), keras.layers.DepthwiseConv2D(3, **kwargs), x
    )
    np.testing.assert_allclose(mine, ref, atol=1e-6)


def bn_pair():
    kwargs = dict(momentum=0.999, epsilon=1e-3)
    mine, ref = ours.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    x = nhwc()
    ref(tf.constant(x))
    ref.set_weights(
        [RNG.uniform(0.5, 1.5, 4), RNG.normal(size=4), RNG.normal(size=4), RNG.uniform(0.5, 2.0, 4)]
    )
    mine(tf.constant(x))
    mine.set_weights(ref.get_weights())
    return mine, ref, x


def test_batch_norm_inference_uses_moving_statistics():
    mine, ref, x = bn_pair()
    gamma, beta, mean, var = mine.get_weights()
    expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(run(mine, x, training=False), expected, atol=1e-5)
    np.testing.assert_allclose(run(mine, x, training=False), run(ref, x, training=False), atol=1e-6)


def test_batch_norm_training_uses_batch_statistics_and_updates_moving_ones():
    mine, ref, x = bn_pair()
    _, _, mean0, var0 = mine.get_weights()
    out = run(mine, x, training=True)
    np.testing.assert_allclose(out, run(ref, x, training=True), atol=1e-5)
    batch_mean, batch_var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    _, _, mean1, var1 = mine.get_weights()
    np.testing.assert_allclose(mean1, 0.999 * mean0 + 0.001 * batch_mean, rtol=1e-5)
    np.testing.assert_allclose(var1, 0.999 * var0 + 0.001 * batch_var, rtol=1e-5)
    np.testing.assert_allclose(mean1, ref.get_weights()[2], rtol=1e-5)
    np.testing.assert_allclose(var1, ref.get_weights()[3], rtol=1e-5)


def test_frozen_batch_norm_stays_in_inference_mode():
    mine, _, x = bn_pair()
    before = mine.get_weights()
    mine.trainable = False
    np.testing.assert_array_equal(run(mine, x, training=True), run(mine, x, training=False))
    for a, b in zip(before, mine.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dense_softmax_matches_keras():
    x = RNG.normal(size=(3, 7)).astype(np.float32)
    kw = dict(activation="softmax", bias_initializer="random_normal")
    mine, ref = built_pair(ours.Dense(5, **kw), keras.layers.Dense(5, **kw), x)
    np.testing.assert_allclose(mine, ref, atol=1e-7)
    np.testing.assert_allclose(mine.sum(axis=1), 1.0, atol=1e-6)


def test_relu6_add_padding_and_pooling_match_keras():
    x, y = nhwc(), nhwc()
    np.testing.assert_array_equal(run(ours.ReLU6(), x * 10), np.clip(x * 10, 0, 6))
    np.testing.assert_array_equal(np.asarray(ours.Add()([x, y])), x + y)
    pad = ((0, 1), (1, 2))
    np.testing.assert_array_equal(
        run(ours.ZeroPadding2D(pad), x), run(keras.layers.ZeroPadding2D(pad), x)
    )
    np.testing.assert_allclose(
        run(ours.GlobalAveragePooling2D(), x), x.mean(axis=(1, 2)), atol=1e-6
    )
    np.testing.assert_array_equal(run(ours.GlobalMaxPooling2D(), x), x.max(axis=(1, 2)))


LAYERS_NCHW = [
    lambda f: ours.Conv2D(6, 3, strides=2, padding="same", data_format=f),
    lambda f: ours.DepthwiseConv2D(3, padding="valid", data_format=f),
    lambda f: ours.BatchNormalization(data_format=f, moving_mean_initializer="random_normal"),
    lambda f: ours.ZeroPadding2D(((0, 1), (0, 1)), data_format=f),
    lambda f: ours.GlobalAveragePooling2D(data_format=f),
    lambda f: ours.GlobalMaxPooling2D(data_format=f),
]


@pytest.mark.parametrize("make", LAYERS_NCHW)
def test_channels_first_is_the_transposed_channels_last(make):
    x = nhwc()
    last, first = make("channels_last"), make("channels_first")
    expected = run(last, x)
    first(tf.constant(to_nchw(x)))
    first.set_weights(last.get_weights())  # same weight layout in both formats
    got = run(first, to_nchw(x))
    np.testing.assert_allclose(
        got, to_nchw(expected) if expected.ndim == 4 else expected, atol=1e-5
    )


def test_default_initializers_are_glorot_uniform_and_zeros():
    conv = ours.Conv2D(4, 3)
    assert isinstance(conv.kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(conv.bias_initializer, keras.initializers.Zeros)
    dense = ours.Dense(4)
    assert isinstance(dense.kernel_initializer, keras.initializers.GlorotUniform)


def test_initializers_are_configurable():
    conv = ours.Conv2D(
        4, 3, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(2.0)
    )
    out = run(conv, np.ones((1, 3, 3, 2), np.float32))
    np.testing.assert_allclose(out, np.full((1, 1, 1, 4), 3 * 3 * 2 + 2.0))


@pytest.mark.parametrize(
    "layer",
    [
        ours.Conv2D(
            4, 3, strides=2, padding="same", activation="relu6", data_format="channels_first"
        ),
        ours.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, kernel_initializer="ones"),
        ours.BatchNormalization(momentum=0.9, epsilon=1e-4, gamma_initializer="ones"),
        ours.ZeroPadding2D(((0, 1), (1, 1))),
        ours.GlobalMaxPooling2D(keepdims=True),
        ours.Dense(3, activation="softmax", bias_initializer="ones"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_calls_use_no_keras_layers_or_ops():
    """The computation is tf.nn / tf.math / tf basics: no keras.layers or keras.ops inside."""
    for name, cls in inspect.getmembers(ours, inspect.isclass):
        if issubclass(cls, keras.layers.Layer) and cls.__module__ == ours.__name__:
            source = inspect.getsource(cls.call) if "call" in cls.__dict__ else ""
            assert "keras" not in source, name
