"""Keras layers whose computation is written with TensorFlow's low-level ops.

Every `call` below uses only `tf.nn`, `tf.math` and basic tensor ops, so each weight and each
op of the network is visible and replaceable. Weight names, shapes and layouts are those of
the Keras built-in layers (`kernel` HWIO, `depthwise_kernel` HWC1, `gamma`/`beta`/
`moving_mean`/`moving_variance`), so weights move between these layers and
`keras.applications.MobileNetV2` unchanged.

`data_format="channels_first"` layers take and return NCHW tensors. TensorFlow's CPU kernels
for convolution only run NHWC, so those layers transpose to NHWC around the op; their weights
keep the channels_last layout and are interchangeable with channels_last layers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from mobilenet_v2.tf._tf import keras, tf

_PACKAGE = "mobilenet_v2"

_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)

# Activations by name, mapped straight to tf.nn so that the layers never route through
# Keras' own op library; anything else (a user's callable) is taken as given.
_ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": tf.identity,
    "softmax": tf.nn.softmax,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "sigmoid": tf.math.sigmoid,
    "tanh": tf.math.tanh,
}


def normalize_data_format(data_format: str | None) -> str:
    """`None` means Keras' global `image_data_format()`, as in keras.layers."""
    value = keras.config.image_data_format() if data_format is None else data_format
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first'; received {data_format!r}"
        )
    return value


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints; received {value!r}")
    return pair  # type: ignore[return-value]


def _padding(value: str) -> str:
    if value.lower() not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid'; received {value!r}")
    return value.lower()


def _activation_fn(activation: str | Callable | None) -> Callable[[tf.Tensor], tf.Tensor]:
    if activation is None:
        return tf.identity
    if isinstance(activation, str):
        if activation in _ACTIVATIONS:
            return _ACTIVATIONS[activation]
        return keras.activations.get(activation)
    return activation


def _serialize_activation(activation: str | Callable | None) -> Any:
    if activation is None or isinstance(activation, str):
        return activation
    return keras.saving.serialize_keras_object(activation)


def _deserialize_activation(activation: Any) -> str | Callable | None:
    if activation is None or isinstance(activation, str):
        return activation
    return keras.saving.deserialize_keras_object(activation)


class _ImageLayer(keras.layers.Layer):
    """Common handling of `data_format` for layers that see 4-D image tensors."""

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format)

    @property
    def channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def _to_nhwc(self, x: tf.Tensor) -> tf.Tensor:
        return tf.transpose(x, _NCHW_TO_NHWC) if self.data_format == "channels_first" else x

    def _from_nhwc(self, x: tf.Tensor) -> tf.Tensor:
        return tf.transpose(x, _NHWC_TO_NCHW) if self.data_format == "channels_first" else x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class _ConvBase(_ImageLayer):
    """Shared arguments and bias handling of Conv2D and DepthwiseConv2D."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        activation: str | Callable | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.activation = activation
        self._activation_fn = _activation_fn(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _finish(self, y: tf.Tensor) -> tf.Tensor:
        """Bias, activation and layout back to `data_format` for an NHWC op result."""
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self._from_nhwc(self._activation_fn(y))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": _serialize_activation(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _ConvBase:
        config = dict(config)
        config["activation"] = _deserialize_activation(config.get("activation"))
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Conv2D(_ConvBase):
    """2-D convolution, `tf.nn.conv2d`; kernel (kh, kw, in, out)."""

    def __init__(self, filters: int, kernel_size: int | Sequence[int], **kwargs: Any) -> None:
        super().__init__(kernel_size, **kwargs)
        self.filters = int(filters)

    def build(self, input_shape: tuple) -> None:
        in_channels = int(input_shape[self.channel_axis])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, in_channels, self.filters),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer
            )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(
            self._to_nhwc(inputs),
            self.kernel,
            strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
        )
        return self._finish(y)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthwiseConv2D(_ConvBase):
    """Depthwise convolution, `tf.nn.depthwise_conv2d`; kernel (kh, kw, in, multiplier)."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        depth_multiplier: int = 1,
        depthwise_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        # keras.layers.DepthwiseConv2D names its kernel initializer `depthwise_initializer`.
        if depthwise_initializer is not None:
            kwargs["kernel_initializer"] = depthwise_initializer
        super().__init__(kernel_size, **kwargs)
        self.depth_multiplier = int(depth_multiplier)

    def build(self, input_shape: tuple) -> None:
        in_channels = int(input_shape[self.channel_axis])
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel",
            shape=(*self.kernel_size, in_channels, self.depth_multiplier),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(in_channels * self.depth_multiplier,),
                initializer=self.bias_initializer,
            )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        y = tf.nn.depthwise_conv2d(
            self._to_nhwc(inputs),
            self.depthwise_kernel,
            strides=(1, *self.strides, 1),
            padding=self.padding.upper(),
        )
        return self._finish(y)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNormalization(_ImageLayer):
    """Batch normalization over the channel axis, `tf.nn.batch_normalization`.

    Inference (and a frozen layer, `trainable=False`, as in Keras) normalizes with the moving
    statistics, through the fused kernel (`tf.compat.v1.nn.fused_batch_norm`) for images so
    that Grappler folds it into the preceding convolution. `training=True` normalizes with
    the batch mean and (biased) variance and moves the moving statistics towards them:
    `moving = moving * momentum + batch * (1 - momentum)`.
    """

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("axis", None)  # the channel axis follows from data_format
        super().__init__(data_format=data_format, **kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)

    def build(self, input_shape: tuple) -> None:
        self._rank = len(input_shape)
        channels = int(input_shape[self.channel_axis])
        shape = (channels,)
        self.gamma = (
            self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer)
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer)
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=shape,
            initializer=self.moving_mean_initializer,
            trainable=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=shape,
            initializer=self.moving_variance_initializer,
            trainable=False,
        )

    def _broadcast(self, v: tf.Tensor | None) -> tf.Tensor | None:
        """Channel vector shaped to broadcast against an NCHW (or NC...) tensor."""
        if v is None or self.channel_axis == -1:
            return v
        return tf.reshape(v, (-1,) + (1,) * (self._rank - 2))

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training and self.trainable:
            channel = self.channel_axis % self._rank
            axes = [i for i in range(self._rank) if i != channel]
            mean, variance = tf.nn.moments(inputs, axes=axes)
            decay = 1.0 - self.momentum
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * decay)
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * decay)
        elif self._rank == 4 and self.scale and self.center:
            # Inference on images: the fused kernel, which Grappler's remapper also fuses
            # into the preceding convolution (Conv2D + FusedBatchNorm + ReLU6 in one op).
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                self.gamma,
                self.beta,
                self.moving_mean,
                self.moving_variance,
                epsilon=self.epsilon,
                data_format="NCHW" if self.data_format == "channels_first" else "NHWC",
                is_training=False,
            )
            return y
        else:
            mean, variance = self.moving_mean, self.moving_variance
        b = self._broadcast
        return tf.nn.batch_normalization(
            inputs, b(mean), b(variance), b(self.beta), b(self.gamma), self.epsilon
        )

    def get_config(self) -> dict[str, Any]:
        ser = keras.initializers.serialize
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": ser(self.beta_initializer),
            "gamma_initializer": ser(self.gamma_initializer),
            "moving_mean_initializer": ser(self.moving_mean_initializer),
            "moving_variance_initializer": ser(self.moving_variance_initializer),
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReLU6(keras.layers.Layer):
    """min(max(x, 0), 6), `tf.nn.relu6`."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu6(inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReLU(keras.layers.Layer):
    """max(x, 0), `tf.nn.relu`: scale-equivariant, where ReLU6 is not (cross-layer
    equalization rescales channels through it)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Add(keras.layers.Layer):
    """Element-wise sum of a list of tensors, `tf.math.add`.

    Pairwise ADD rather than ADD_N: TFLite has int8 kernels for ADD only, so ADD_N would
    leave float islands (DEQUANTIZE / QUANTIZE) in a full-integer model."""

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        return functools.reduce(tf.math.add, inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ZeroPadding2D(_ImageLayer):
    """Zero padding of the two spatial axes, `tf.pad`; padding ((top, bottom), (left, right))."""

    def __init__(
        self,
        padding: int | Sequence[int] | Sequence[Sequence[int]] = 1,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_format=data_format, **kwargs)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        elif all(isinstance(p, int) for p in padding):
            rows, cols = _pair(padding, "padding")  # type: ignore[arg-type]
            padding = ((rows, rows), (cols, cols))
        self.padding = tuple(_pair(p, "padding") for p in padding)  # type: ignore[arg-type]
        if len(self.padding) != 2:
            raise ValueError(f"padding must have two (before, after) pairs; received {padding!r}")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        spatial = [list(p) for p in self.padding]
        if self.data_format == "channels_first":
            paddings = [[0, 0], [0, 0], *spatial]
        else:
            paddings = [[0, 0], *spatial, [0, 0]]
        return tf.pad(inputs, paddings)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


class _GlobalPooling2D(_ImageLayer):
    def __init__(self, keepdims: bool = False, data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = keepdims

    @property
    def spatial_axes(self) -> list[int]:
        return [2, 3] if self.data_format == "channels_first" else [1, 2]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over the spatial axes, `tf.math.reduce_mean`."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.math.reduce_mean(inputs, axis=self.spatial_axes, keepdims=self.keepdims)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over the spatial axes, `tf.math.reduce_max`."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.math.reduce_max(inputs, axis=self.spatial_axes, keepdims=self.keepdims)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Dense(keras.layers.Layer):
    """Fully connected layer, `tf.linalg.matmul`; kernel (in, units)."""

    def __init__(
        self,
        units: int,
        activation: str | Callable | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self._activation_fn = _activation_fn(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[-1]), self.units),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer
            )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        y = tf.linalg.matmul(inputs, self.kernel)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self._activation_fn(y)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": _serialize_activation(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        config = dict(config)
        config["activation"] = _deserialize_activation(config.get("activation"))
        return cls(**config)
