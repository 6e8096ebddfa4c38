"""Seeded random weights for MobileNetV2: one seed, one set of weights on every run and
platform, with non-trivial batch norm (golden tensors of it can show a folding mistake).
"""

from __future__ import annotations

import math

import numpy as np

from mobilenet_v2.base.errors import WeightsError
from mobilenet_v2.tf import layers
from mobilenet_v2.tf._tf import keras

# The second moment E[x^2] assumed for the model's input: pixels scaled to [-1, 1], about
# uniform (1/3). Only the scale of the BN statistics derives from it.
_INPUT_SECOND_MOMENT = 1.0 / 3.0


def seeded_initialization(model: keras.Model, seed: int) -> None:
    """Set every variable of `model` from `np.random.default_rng(seed)`, layer by layer in the
    model's order (that of `model.weights`): one seed, one set of weights, on every run and
    every platform (Keras' initializers draw from TensorFlow's unseeded generator).

    Kernels (convolution, depthwise, dense): Glorot uniform, fan_in and fan_out computed from
    the shape as Keras does. Biases: zero. BatchNormalization: gamma in U[0.5, 1.5], beta from
    N(0, 0.1), moving_mean from N(0, 0.1 * rms) and moving_variance in rms^2 * U[0.5, 1.5],
    where rms is the scale the convolution before it produces. Why not Keras' identity BN
    (gamma 1, beta 0, mean 0, variance 1): golden tensors of such a model cannot show a
    mistake in folding BN into the convolutions. Why the scale: Glorot kernels shrink the
    signal (a depthwise 3x3 over C channels by about 2 / C), and with a variance of 1 the
    activations fall to ~1e-8 within a few blocks, so every INT8 tensor is zero and LiteRT's
    reference softmax aborts on the logits' scale. The scale comes from the shapes and the
    drawn values alone (expected second moments, propagated layer by layer), never from
    running the model, so it is the same on every platform; it is size-independent (image
    borders are ignored), so one seed gives one set of weights for every input size.
    """
    rng = np.random.default_rng(seed)
    # E[x^2] of each symbolic tensor, by id: Keras shares one tensor object between the layer
    # that makes it and the layers that take it.
    moments: dict[int, float] = {}
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        moment = sum(moments.get(id(t), _INPUT_SECOND_MOMENT) for t in inputs)
        if isinstance(layer, keras.layers.InputLayer):
            moment = _INPUT_SECOND_MOMENT
        elif isinstance(layer, layers.BatchNormalization):
            moment = _seeded_batch_norm(layer, rng, moment)
        elif isinstance(layer, layers.ReLU6):
            moment /= 2  # half of a zero-centred signal passes; 6 is rarely reached
        else:
            moment *= _seeded_kernel_and_bias(layer, rng)
        moments[id(layer.output)] = moment


def _seeded_kernel_and_bias(layer: keras.layers.Layer, rng: np.random.Generator) -> float:
    """Glorot-uniform kernel and zero bias; returns the gain on E[x^2] (1 with no kernel)."""
    gain = 1.0
    for var in layer.weights:
        shape = tuple(int(d) for d in var.shape)
        if var.name in ("kernel", "depthwise_kernel"):
            # Keras' fans: the receptive field times the last two dimensions.
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            value = rng.uniform(-limit, limit, shape)
            # Terms summed per output: kh * kw * C_in, but kh * kw for a depthwise kernel.
            terms = receptive if var.name == "depthwise_kernel" else fan_in
            gain = terms * 2.0 / (fan_in + fan_out)  # the variance of U[-limit, limit] x terms
        elif var.name == "bias":
            value = np.zeros(shape)
        else:
            raise WeightsError(
                f"cannot initialize weight '{var.name}' of layer '{layer.name}' "
                f"({type(layer).__name__}): not a MobileNetV2 weight"
            )
        var.assign(value.astype(np.float32))
    return gain


def _seeded_batch_norm(bn: keras.layers.Layer, rng: np.random.Generator, moment: float) -> float:
    """Draw a BatchNormalization's four vectors for an input of second moment `moment`;
    returns its output's second moment, averaged over channels."""
    shape = tuple(int(d) for d in bn.moving_mean.shape)
    rms = np.sqrt(moment)
    values = {
        "gamma": rng.uniform(0.5, 1.5, shape),
        "beta": rng.normal(0.0, 0.1, shape),
        "moving_mean": rng.normal(0.0, 0.1 * rms, shape),
        "moving_variance": moment * rng.uniform(0.5, 1.5, shape),
    }
    for var in bn.weights:
        var.assign(values[var.name].astype(np.float32))
    gamma = values["gamma"] if bn.scale else np.ones(shape)
    beta = values["beta"] if bn.center else np.zeros(shape)
    # y = gamma (x - mean) / sqrt(var + eps) + beta, for x of mean 0 and second moment `moment`.
    scale = gamma / np.sqrt(values["moving_variance"].astype(np.float32) + bn.epsilon)
    second = np.square(scale) * moment + np.square(beta - scale * values["moving_mean"])
    # fsum: an exactly rounded sum, the same on every platform (NumPy's may vary with SIMD).
    return math.fsum(second.tolist()) / second.size
