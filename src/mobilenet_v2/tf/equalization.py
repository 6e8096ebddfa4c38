"""Rewrites of the float model that make its INT8 conversion better, without training.

Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction"
(ICCV 2019), on this package's MobileNetV2:

- `with_relu`: ReLU instead of ReLU6 after every convolution that equalization rescales,
  the paper's choice (ReLU6 clips at a fixed 6, so it does not commute with a per-channel
  scale). It costs these quantization-aware trained weights 18 points of float top-1.
- `equalize`: cross-layer equalization. For each pair of convolutions with only an
  activation between them, output channel i of the first is divided by s_i and input
  channel i of the second multiplied by it, s_i = sqrt(r1_i * r2_i) / r2_i (r: the
  channel's largest |weight|), so that both ranges become sqrt(r1_i * r2_i); iterated,
  since the depthwise convolution is the second of one pair and the first of the next.
  Under ReLU6 (kept, unlike the paper) a channel that reaches 6 on the images keeps its
  scale, and the others stay below 6, so the model computes the same on those images.
- `absorb_bias`: high-bias absorption. Where an activation's input stays above
  c = mean - 3 std (per channel, and never above the least value seen), c moves from the
  first convolution's bias into the next 1x1 convolution's bias, which narrows the first's
  activation range.
- `correct_bias`: subtracts from each bias the expected output error of the INT8 weights,
  E[(W_q - W) x], with W_q quantized as the converter quantizes it (symmetric int8, per
  tensor or per output channel). The float model then computes slightly differently, so
  that its INT8 conversion computes like the model before.

Statistics come from images where given (the calibration images), else from batch norm
(mean beta, std |gamma|): weights folded from a `.tflite` carry none. Each function returns
a new model with the same layer names and leaves its argument unchanged.

The weights that TFLite quantizes are the convolution kernels with batch norm folded in
(`a = gamma / sqrt(variance + epsilon)` per output channel); everything here measures and
rescales those, through the batch norm's own variables where it can so that its statistics
stay true: a channel's output scale through gamma and beta, a shift of its input through the
moving mean.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mobilenet_v2.base.architecture import BN_EPSILON, batch_norm_name, conv_steps
from mobilenet_v2.base.errors import InvalidArgumentError
from mobilenet_v2.lite.record import STEPS
from mobilenet_v2.tf import layers
from mobilenet_v2.tf._tf import keras, tf

# Equalization stops when no channel's scale moves by more than this (relative) in a sweep.
_TOLERANCE = 1e-4
_MAX_SWEEPS = 500
ABSORB_SIGMAS = 3.0  # the paper's rule: c = max(0, mean - 3 std)
_BATCH = 8  # images per statistics run: every convolution's input for 8 images at 224


@dataclass
class _Conv:
    """A convolution (or the classifier) and the batch norm after it, seen as one affine
    map `a * (kernel * x) + b` per output channel, which is what TFLite fuses and quantizes."""

    conv: keras.layers.Layer
    bn: keras.layers.Layer | None

    @property
    def depthwise(self) -> bool:
        return isinstance(self.conv, layers.DepthwiseConv2D)

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        if self.bn is None:
            bias = self.conv.bias.numpy() if self.conv.use_bias else 0.0
            return np.ones(self.channels, np.float64), np.float64(bias)
        gamma, beta, mean, var = (
            np.asarray(v, np.float64)
            for v in (self.bn.gamma, self.bn.beta, self.bn.moving_mean, self.bn.moving_variance)
        )
        a = gamma / np.sqrt(var + self.bn.epsilon)
        return a, beta - a * mean

    @property
    def channels(self) -> int:
        return int(self.kernel.shape[-2] if self.depthwise else self.kernel.shape[-1])

    @property
    def kernel(self) -> tf.Variable:
        return self.conv.depthwise_kernel if self.depthwise else self.conv.kernel

    def folded(self) -> np.ndarray:
        """The kernel as TFLite quantizes it, batch norm folded in; output channels last
        (depthwise: (kh, kw, channels))."""
        kernel = np.asarray(self.kernel, np.float64)
        if self.depthwise:
            kernel = kernel[..., 0]
        return kernel * self._affine()[0]

    def output_ranges(self) -> np.ndarray:
        return _output_ranges(self.folded())

    def input_ranges(self) -> np.ndarray:
        return _input_ranges(self.folded(), self.depthwise)

    def scale_output(self, factor: np.ndarray) -> None:
        """Multiply output channel i by factor_i (> 0): gamma and beta, statistics kept."""
        self.bn.gamma.assign((self.bn.gamma.numpy() * factor).astype(np.float32))
        self.bn.beta.assign((self.bn.beta.numpy() * factor).astype(np.float32))

    def scale_input(self, factor: np.ndarray) -> None:
        """Multiply the weights of input channel i by factor_i: the output is unchanged for
        an input divided by it."""
        # (kh, kw, in, out) and depthwise (kh, kw, channels, 1) alike: input on axis -2.
        self.kernel.assign((self.kernel.numpy() * factor.reshape(-1, 1)).astype(np.float32))

    def shift_output(self, delta: np.ndarray) -> None:
        """Add delta_i to output channel i (its bias)."""
        if self.bn is None:
            self.conv.bias.assign((self.conv.bias.numpy() + delta).astype(np.float32))
        else:
            self.bn.beta.assign((self.bn.beta.numpy() + delta).astype(np.float32))

    def take_input_shift(self, shift: np.ndarray) -> None:
        """Keep the output of a 1x1 convolution for an input lowered by shift_i per channel:
        the convolution's output drops by kernel . shift, which the moving mean absorbs, so
        that batch norm's statistics stay those of its input."""
        drop = np.einsum("hwio,i->o", np.asarray(self.kernel, np.float64), shift)
        self.bn.moving_mean.assign((self.bn.moving_mean.numpy() - drop).astype(np.float32))


def _units(model: keras.Model) -> dict[str, _Conv]:
    """Every convolution with its batch norm, by convolution name, in network order."""
    found = {}
    for step in conv_steps():
        try:
            conv = model.get_layer(step.conv)
            bn = model.get_layer(batch_norm_name(step.conv))
        except ValueError:
            raise InvalidArgumentError(
                f"model {model.name!r} has no layer {step.conv!r}: not this package's MobileNetV2"
            ) from None
        kind = layers.DepthwiseConv2D if step.depthwise else layers.Conv2D
        # keras.applications' model has the same names but other layers (and weights this
        # module does not read): refused rather than rewritten wrongly.
        if not isinstance(conv, kind) or not isinstance(bn, layers.BatchNormalization):
            raise InvalidArgumentError(
                f"layer {step.conv!r} of model {model.name!r} is not mobilenet_v2.tf.layers' "
                f"{kind.__name__} with its BatchNormalization: build the model with "
                "mobilenet_v2.MobileNetV2"
            )
        found[step.conv] = _Conv(conv, bn)
    return found


def pairs(model: keras.Model) -> list[tuple[_Conv, _Conv, keras.layers.Layer]]:
    """(first, second, activation between them) for every two convolutions joined by an
    activation alone: Conv1 -> first depthwise, and in each block expand -> depthwise ->
    project. (A block's output feeds a residual sum, so its channels cannot be rescaled.)"""
    units = _units(model)
    steps = conv_steps()
    return [
        (units[a.conv], units[b.conv], model.get_layer(a.output))
        for a, b in itertools.pairwise(steps)
        if a.relu
    ]


def with_relu(model: keras.Model) -> keras.Model:
    """A copy of `model` with ReLU (same name) for the ReLU6 between the pairs that
    `equalize` rescales; the last one (`out_relu`) stays ReLU6."""
    names = {activation.name for _, _, activation in pairs(model)}
    return _copy(model, lambda layer: layers.ReLU(name=layer.name) if layer.name in names else None)


def _copy(model: keras.Model, replace=lambda layer: None) -> keras.Model:
    """A copy of `model` with its own weights; `replace(layer)` may return a new layer
    (without weights) to use instead."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        new = replace(layer)
        return new if new is not None else layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    for attribute in ("loaded_weights_file", "init_seed"):
        if hasattr(model, attribute):
            setattr(copy, attribute, getattr(model, attribute))
    return copy


def _clip(activation: keras.layers.Layer) -> float:
    """Where the activation clips its input from above: 6 for ReLU6, inf for ReLU."""
    if isinstance(activation, layers.ReLU6):
        return 6.0
    if isinstance(activation, layers.ReLU):
        return np.inf
    raise InvalidArgumentError(
        f"layer {activation.name!r} is neither ReLU nor ReLU6: not this package's MobileNetV2"
    )


def _activation_moments(
    model: keras.Model, found: list, images: np.ndarray | None, what: str
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(mean, std, min, max) per channel of each pair's activation input: over `images`,
    else as batch norm models it (no least value; max: mean + 3 std). ReLU6 without images
    is refused: which channels it clips is then unknown."""
    if images is not None:
        return _channel_moments(model, images, [first.bn.name for first, _, _ in found])
    moments = []
    for first, _, activation in found:
        if isinstance(activation, layers.ReLU6):
            raise InvalidArgumentError(
                f"{what} without images cannot tell which channels ReLU6 clips "
                f"({activation.name!r}): pass the calibration images, or ReLU for ReLU6 "
                "first (with_relu)"
            )
        mean, std = _batch_norm_moments(first, what)
        moments.append((mean, std, np.full_like(mean, np.inf), mean + ABSORB_SIGMAS * std))
    return moments


def equalize(model: keras.Model, images: np.ndarray | None = None) -> keras.Model:
    """Cross-layer equalization: a copy of `model` whose pairs of convolutions have equal
    per-channel weight ranges, computing the same.

    A ReLU between a pair commutes with any scale. ReLU6 does not: a channel that reaches 6
    on `images` keeps its scale, and the others are scaled no further than keeps them below
    6, so the copy computes the same on `images` (and, in practice, close to it elsewhere;
    docs/benchmarks.md). Without images every pair needs ReLU: `equalize(with_relu(model))`
    is the paper's method."""
    model = _copy(model)
    found = pairs(model)
    clips = [_clip(activation) for _, _, activation in found]
    if images is None and all(clip == np.inf for clip in clips):
        tops = [np.full(first.channels, -np.inf) for first, _, _ in found]  # nothing clips
    else:
        tops = [top for *_, top in _activation_moments(model, found, images, "equalization")]
    reaching = [top >= clip for top, clip in zip(tops, clips, strict=True)]
    # The sweeps run on NumPy copies of the folded kernels, each unit's accumulated output
    # and input scales applied to the model's variables once at the end.
    weights = {id(u): _Scaled(u) for pair in found for u in pair[:2]}
    for _ in range(_MAX_SWEEPS):
        moved = 0.0
        for k, (first, second, _) in enumerate(found):
            a, b = weights[id(first)], weights[id(second)]
            r1, r2 = a.output_ranges(), b.input_ranges()
            live = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1)
            s[live] = np.sqrt(r1[live] * r2[live]) / r2[live]
            # A channel of the first with no weights outputs a constant (its bias through
            # the activation), which any s rescales exactly: bring the second's weights for
            # it down to the pair's largest equalized range, which they would otherwise
            # exceed.
            dead = (r1 == 0) & (r2 > 0)
            if dead.any() and live.any():
                s[dead] = np.minimum(1.0, np.sqrt(r1[live] * r2[live]).max() / r2[dead])
            if np.isfinite(clips[k]):
                s = np.maximum(s, tops[k] / clips[k])  # stays below the clip
                s[reaching[k]] = 1.0  # clipped: any scale would move where
            a.output_scale /= s
            b.input_scale *= s
            tops[k] = tops[k] / s
            moved = max(moved, float(np.abs(np.log(s)).max(initial=0.0)))
        if moved < _TOLERANCE:
            break
    for scaled in weights.values():
        scaled.unit.scale_output(scaled.output_scale)
        scaled.unit.scale_input(scaled.input_scale)
    return model


class _Scaled:
    """A unit's folded kernel under per-channel output and input scales not yet applied."""

    def __init__(self, unit: _Conv) -> None:
        self.unit = unit
        self.folded = unit.folded()
        self.output_scale = np.ones(self.folded.shape[-1])
        self.input_scale = np.ones(self.folded.shape[-1 if unit.depthwise else -2])

    def _weights(self) -> np.ndarray:
        if self.unit.depthwise:  # one axis: each channel is its own input and output
            return np.abs(self.folded * (self.input_scale * self.output_scale))
        return np.abs(self.folded * self.input_scale[:, None] * self.output_scale)

    def output_ranges(self) -> np.ndarray:
        return _output_ranges(self._weights())

    def input_ranges(self) -> np.ndarray:
        return _input_ranges(self._weights(), self.unit.depthwise)


def _output_ranges(folded: np.ndarray) -> np.ndarray:
    """Largest |weight| of each output channel (the last axis)."""
    w = np.abs(folded)
    return w.reshape(-1, w.shape[-1]).max(axis=0)


def _input_ranges(folded: np.ndarray, depthwise: bool) -> np.ndarray:
    """Largest |weight| of each input channel: a depthwise kernel's are its output ones."""
    if depthwise:
        return _output_ranges(folded)
    w = np.abs(folded)
    return np.moveaxis(w, -2, 0).reshape(w.shape[-2], -1).max(axis=1)


def absorb_bias(
    model: keras.Model, images: np.ndarray | None = None, sigmas: float = ABSORB_SIGMAS
) -> keras.Model:
    """High-bias absorption: a copy of `model` where each channel whose activation input
    stays above c = mean - `sigmas` std (the paper's rule; with `images`, also never above
    the least value seen) passes c on to the next 1x1 convolution's bias. Under ReLU6 only
    channels that stay below 6 do (ReLU6(z) - c = ReLU6(z - c) needs z <= 6). The statistics
    come from `images` where given, else from batch norm (refused where it is folded away,
    and for ReLU6)."""
    model = _copy(model)
    # Into a 1x1 convolution only: a depthwise one also sees its zero padding, which the
    # shift does not reach, so its border outputs would change (measured: 1.4 points of
    # agreement with float on the 500 shared images; docs/benchmarks.md).
    found = [pair for pair in pairs(model) if pair[1].conv.kernel_size == (1, 1)]
    moments = _activation_moments(model, found, images, "bias absorption")
    for (first, second, activation), (mean, std, bottom, top) in zip(found, moments, strict=True):
        c = np.maximum(0.0, np.minimum(mean - sigmas * std, bottom))
        c[top >= _clip(activation)] = 0.0
        first.shift_output(-c)
        second.take_input_shift(c)
    return model


def correct_bias(
    model: keras.Model,
    images: np.ndarray | None = None,
    per_channel: bool = True,
) -> keras.Model:
    """Bias correction: a copy of `model` whose every convolution and the classifier
    subtract E[(W_q - W) x] from their bias, W_q the INT8 weights the converter will make
    (`per_channel`, or one scale per tensor). E[x] is each layer's mean input over `images`
    (empirical), else follows from batch norm (data-free: the mean of a clipped normal
    through each activation; not for the first convolution, whose input is the image)."""
    model = _copy(model)
    targets = _weighted(model)
    if images is not None:
        means = _input_means(model, images, [t.conv for t in targets])
    else:
        means = _data_free_input_means(model, targets)
    for position, (target, mean) in enumerate(zip(targets, means, strict=True)):
        if mean is None:
            if position:  # only Conv1's input, the image, has no mean batch norm can tell
                raise InvalidArgumentError(
                    f"bias correction without images: no batch norm tells the mean input of "
                    f"layer {target.conv.name!r}; pass the calibration images"
                )
            continue
        w = target.folded()
        error = quantized_weights(w, per_channel) - w
        target.shift_output(-_expected_output(target, error, mean))
    return model


def _weighted(model: keras.Model) -> list[_Conv]:
    """Every convolution with its batch norm, and the classifier (if any), in network order."""
    classifier = _classifier(model)
    return [*_units(model).values(), *([_Conv(classifier, None)] if classifier else [])]


def folded_biases(model: keras.Model) -> dict[str, np.ndarray]:
    """Each convolution's bias with its batch norm folded in, and the classifier's, by layer
    name: the biases TFLite quantizes (float64)."""
    return {
        unit.conv.name: np.broadcast_to(unit._affine()[1], (unit.channels,)).astype(np.float64)
        for unit in _weighted(model)
    }


def quantized_weights(folded: np.ndarray, per_channel: bool) -> np.ndarray:
    """`folded` (output channels last, as `_Conv.folded` gives it; a depthwise kernel's
    channels are its output channels) as TFLite's converter quantizes it, dequantized:
    symmetric int8 in [-127, 127], scale = max |w| / 127 per output channel or per tensor."""
    # In float32 and through the inverse scale, as the converter computes: weights of a
    # quantization-aware trained model sit on halves, where another order rounds otherwise.
    w = np.asarray(folded, np.float32)
    r = _output_ranges(w) if per_channel else np.abs(w).max()
    scale = np.where(r > 0, r / np.float32(127), np.float32(1)).astype(np.float32)
    x = w * (np.float32(1) / scale)
    q = np.trunc(x + np.copysign(np.float32(0.5), x))  # half away from zero
    return (np.clip(q, -127, 127) * scale).astype(np.float64)


def _classifier(model: keras.Model) -> keras.layers.Layer | None:
    try:
        return model.get_layer("predictions")
    except ValueError:
        return None


def _expected_output(target: _Conv, error: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """E[error * x] per output channel for the layer's mean input `mean` (NHWC without the
    batch, or a vector for the classifier): the convolution of the mean with the error
    weights, over the layer's own strides and padding, averaged over output positions."""
    if isinstance(target.conv, layers.Dense):
        return mean @ error
    if mean.ndim == 1:  # data-free: the same mean everywhere (borders aside)
        taps = error.reshape(-1, *error.shape[2:]).sum(axis=0)
        return taps * mean if target.depthwise else mean @ taps
    conv = target.conv
    x = tf.constant(mean[None], tf.float64)
    strides = (1, *conv.strides, 1)
    if target.depthwise:
        y = tf.nn.depthwise_conv2d(x, tf.constant(error[..., None]), strides, conv.padding.upper())
    else:
        y = tf.nn.conv2d(x, tf.constant(error), strides, conv.padding.upper())
    return np.asarray(y, np.float64).reshape(-1, y.shape[-1]).mean(axis=0)


def _batches(images: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(images), _BATCH):
        yield images[start : start + _BATCH]


def _nhwc(layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    if getattr(layer, "data_format", "channels_last") == "channels_first" and x.ndim == 4:
        return np.moveaxis(x, 1, -1)
    return x


def _channel_moments(
    model: keras.Model, images: np.ndarray, names: list[str]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per-channel mean, std, min and max of the named layers' outputs over `images`."""
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    sums: list[Any] = [0.0] * len(names)
    squares: list[Any] = [0.0] * len(names)
    tops: list[Any] = [-np.inf] * len(names)
    bottoms: list[Any] = [np.inf] * len(names)
    count = [0] * len(names)
    for batch in _batches(images):
        outputs = probe(batch, training=False)
        for i, (name, y) in enumerate(zip(names, outputs, strict=True)):
            y = _nhwc(model.get_layer(name), np.asarray(y, np.float64))
            y = y.reshape(-1, y.shape[-1])
            sums[i] = sums[i] + y.sum(axis=0)
            squares[i] = squares[i] + np.square(y).sum(axis=0)
            tops[i] = np.maximum(tops[i], y.max(axis=0))
            bottoms[i] = np.minimum(bottoms[i], y.min(axis=0))
            count[i] += y.shape[0]
    moments = []
    for total, total_sq, top, bottom, n in zip(sums, squares, tops, bottoms, count, strict=True):
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        moments.append((mean, std, bottom, top))
    return moments


def _input_means(
    model: keras.Model, images: np.ndarray, targets: list[keras.layers.Layer]
) -> list[np.ndarray]:
    """Each layer's input averaged over `images`, position by position (NHWC, no batch)."""
    probe = keras.Model(model.input, [layer.input for layer in targets])
    sums: list[Any] = [0.0] * len(targets)
    for batch in _batches(images):
        outputs = probe(batch, training=False)
        for i, (layer, x) in enumerate(zip(targets, outputs, strict=True)):
            sums[i] = sums[i] + _nhwc(layer, np.asarray(x, np.float64)).sum(axis=0)
    return [total / len(images) for total in sums]


def _batch_norm_moments(unit: _Conv, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of a batch norm's output, as batch norm models it: beta and |gamma|."""
    bn = unit.bn
    folded = np.allclose(bn.moving_mean.numpy(), 0.0) and np.allclose(
        bn.moving_variance.numpy(), 1.0 - BN_EPSILON
    )
    if folded:
        raise InvalidArgumentError(
            f"{what} without images needs batch norm statistics, and layer {bn.name!r} has "
            "them folded away (weights from a .tflite): pass the calibration images"
        )
    return bn.beta.numpy().astype(np.float64), np.abs(bn.gamma.numpy().astype(np.float64))


def _clipped_normal_mean(mean: np.ndarray, std: np.ndarray, top: float) -> np.ndarray:
    """E[min(max(z, 0), top)] for z ~ N(mean, std^2) (top = inf: ReLU)."""
    from math import erf, exp, pi, sqrt

    def pdf(u: float) -> float:
        return exp(-0.5 * u * u) / sqrt(2 * pi)

    def cdf(u: float) -> float:
        return 0.5 * (1 + erf(u / sqrt(2)))

    out = np.empty_like(mean)
    for i, (m, s) in enumerate(zip(mean, std, strict=True)):
        if s == 0:
            out[i] = min(max(m, 0.0), top)
            continue
        lo = (0 - m) / s
        value = m * (1 - cdf(lo)) + s * pdf(lo)  # E[z; z > 0]
        if np.isfinite(top):
            hi = (top - m) / s
            # minus E[z - top; z > top]
            value -= (m - top) * (1 - cdf(hi)) + s * pdf(hi)
        out[i] = value
    return out


def _data_free_input_means(model: keras.Model, targets: list[_Conv]) -> list[Any]:
    """E[x] of each target's input channels from batch norm, as a channel vector (spatially
    constant); None for the first convolution, whose input is the image. Follows the
    network's wiring: activations clip a normal, additions add, padding and pooling keep."""
    means: dict[int, np.ndarray] = {}  # by id of a Keras symbolic tensor
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            means[id(layer.output)] = _batch_norm_moments(_Conv(None, layer), "bias correction")
            continue
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        known = [means.get(id(t)) for t in inputs]
        if isinstance(layer, keras.layers.InputLayer) or any(m is None for m in known):
            continue
        if isinstance(layer, layers.ReLU | layers.ReLU6):
            mean, std = known[0]
            top = 6.0 if isinstance(layer, layers.ReLU6) else np.inf
            means[id(layer.output)] = _clipped_normal_mean(mean, std, top)
        elif isinstance(layer, layers.Add):
            means[id(layer.output)] = sum(_first_moment(m) for m in known)
        elif not layer.weights:  # padding, pooling
            means[id(layer.output)] = known[0]
    result = []
    for target in targets:
        m = means.get(id(target.conv.input))
        result.append(None if m is None else _first_moment(m))
    return result


def _first_moment(value: Any) -> np.ndarray:
    return value[0] if isinstance(value, tuple) else value


def rewrite(
    model: keras.Model,
    steps: Sequence[str],
    images: np.ndarray | None = None,
    per_channel: bool = True,
) -> keras.Model:
    """`model` through the named `steps` in `STEPS`' order (each once): ReLU for ReLU6
    (`with_relu`), `equalize`, `absorb_bias` and `correct_bias` (for `per_channel` or
    per-tensor weights), all on `images`. The model itself for no steps."""
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise InvalidArgumentError(f"unknown steps {unknown}; known: {', '.join(STEPS)}")
    for step in STEPS:
        if step not in steps:
            continue
        if step == "relu":
            model = with_relu(model)
        elif step == "equalize":
            model = equalize(model, images)
        elif step == "absorb_bias":
            model = absorb_bias(model, images)
        else:
            model = correct_bias(model, images, per_channel)
    return model
