"""MobileNetV2 (Sandler et al., 2018) built from `mobilenet_v2.tf.layers`.

Same arguments, defaults, validation, layer names and weight files as
`keras.applications.MobileNetV2`, plus `data_format` and the kernel/bias initializers.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from mobilenet_v2.base.architecture import (
    BN_EPSILON,
    BN_MOMENTUM,
    CLASSIFIER_LAYER,
    INPUT_LAYER,
    POOLING_LAYER,
    ConvStep,
    batch_norm_name,
    blocks,
)
from mobilenet_v2.base.errors import InvalidArgumentError
from mobilenet_v2.tf import layers
from mobilenet_v2.tf import weights as weights_io
from mobilenet_v2.tf._tf import keras
from mobilenet_v2.tf.initialization import seeded_initialization

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
MIN_SIZE = 32


def conv_bn(x: keras.KerasTensor, step: ConvStep, data_format: str, init: dict[str, Any]):
    """One convolution of the network with its BatchNormalization and ReLU6 (Keras' names)."""
    if step.pad:
        x = layers.ZeroPadding2D(
            _correct_pad(x, data_format), data_format=data_format, name=f"{step.prefix}pad"
        )(x)
    common = {"strides": step.stride, "padding": step.padding, "use_bias": False, **init}
    common.update(data_format=data_format, name=step.conv)
    if step.depthwise:
        x = layers.DepthwiseConv2D(step.kernel, **common)(x)
    else:
        x = layers.Conv2D(step.filters, step.kernel, **common)(x)
    x = layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        data_format=data_format,
        name=batch_norm_name(step.conv),
    )(x)
    return layers.ReLU6(name=step.output)(x) if step.relu else x


def MobileNetV2(  # noqa: N802 (the name is keras.applications')
    input_shape: tuple[int | None, int | None, int] | None = None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    input_tensor: Any = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    data_format: str | None = None,
    kernel_initializer: Any = "glorot_uniform",
    bias_initializer: Any = "zeros",
    name: str | None = None,
    init_seed: int | None = None,
) -> keras.Model:
    """Build MobileNetV2, optionally with weights.

    `weights`: `None` (random), `"imagenet"` (the official Keras file for this alpha and size,
    from the Keras cache or downloaded), or a path to a legacy Keras `.h5`, a
    `.weights.h5`/`.keras` of this package or of `keras.applications`, or a `.tflite`
    MobileNetV2 classifier (float or quantized). Only the command line reads
    `$MOBILENET_V2_WEIGHTS` (its `--weights` default).

    `init_seed` (with `weights=None` only): seeded random weights instead of Keras'
    unseeded initializers, the same for a seed on every run and platform
    (`initialization.seeded_initialization`: non-trivial batch norm, for golden tensors).
    """
    data_format = layers.normalize_data_format(data_format)
    if not (weights in ("imagenet", None) or isinstance(weights, (str, os.PathLike))):
        raise InvalidArgumentError(
            "The `weights` argument should be either `None` (random initialization), "
            "`imagenet` (pre-training on ImageNet), or the path to the weights file to be "
            f"loaded. Received `weights={weights}`"
        )
    if init_seed is not None:
        if weights is not None:
            raise InvalidArgumentError(
                "`init_seed` seeds random initialization (`weights=None`); Received "
                f"`weights={weights}`"
            )
        if isinstance(init_seed, bool) or not isinstance(init_seed, int) or init_seed < 0:
            raise InvalidArgumentError(
                f"`init_seed` must be a non-negative integer. Received `init_seed={init_seed}`"
            )
    if weights not in ("imagenet", None):
        weights_io.check_readable(weights)
    if weights == "imagenet" and include_top and classes != 1000:
        raise InvalidArgumentError(
            'If using `weights="imagenet"` with `include_top` as true, `classes` should be '
            f"1000. Received `classes={classes}`"
        )
    if not alpha > 0:
        raise InvalidArgumentError(f"`alpha` must be positive. Received `alpha={alpha}`")
    if pooling not in (None, "avg", "max"):
        raise InvalidArgumentError(
            f"`pooling` must be None, 'avg' or 'max'. Received `pooling={pooling}`"
        )
    if include_top and weights is not None:
        activation = keras.activations.get(classifier_activation)
        if activation not in (keras.activations.get("softmax"), keras.activations.get(None)):
            raise InvalidArgumentError(
                "Only `None` and `softmax` activations are allowed for the "
                "`classifier_activation` argument when using pretrained weights, with "
                f"`include_top=True`; Received: classifier_activation={classifier_activation}"
            )

    input_shape = _input_shape(input_shape, input_tensor, include_top, weights, data_format)
    row_axis = 1 if data_format == "channels_first" else 0
    rows, cols = input_shape[row_axis], input_shape[row_axis + 1]
    if weights == "imagenet":
        if alpha not in IMAGENET_ALPHAS:
            raise InvalidArgumentError(
                "If imagenet weights are being loaded, alpha must be one of `0.35`, `0.50`, "
                f"`0.75`, `1.0`, `1.3` or `1.4` only; Received `alpha={alpha}`"
            )
        if rows != cols or rows not in IMAGENET_SIZES:
            rows = 224
            warnings.warn(
                "`input_shape` is undefined or non-square, or `rows` is not in "
                "[96, 128, 160, 192, 224]. Weights for input shape (224, 224) will be loaded "
                "as the default.",
                stacklevel=2,
            )

    if input_tensor is None:
        img_input = keras.Input(shape=input_shape, name=INPUT_LAYER)
    elif keras.backend.is_keras_tensor(input_tensor):
        img_input = input_tensor
    else:
        img_input = keras.Input(tensor=input_tensor, shape=input_shape, name=INPUT_LAYER)

    init = {"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer}
    x = img_input
    for block in blocks(alpha):
        block_input = x
        for step in block.convs:
            x = conv_bn(x, step, data_format, init)
        if block.residual:
            x = layers.Add(name=f"{block.prefix}add")([block_input, x])

    if include_top:
        x = layers.GlobalAveragePooling2D(data_format=data_format, name=POOLING_LAYER)(x)
        top = layers.Dense(classes, activation=classifier_activation, name=CLASSIFIER_LAYER, **init)
        x = top(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=data_format, name=POOLING_LAYER)(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=data_format, name="global_max_pooling2d")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name or f"mobilenetv2_{alpha:0.2f}_{rows}")

    if weights == "imagenet":
        weights = weights_io.imagenet_weights_path(alpha, rows, include_top)
    if weights is not None:
        weights_io.load_weights(model, weights)
    elif init_seed is not None:
        seeded_initialization(model, init_seed)
    # Which file the weights came from (None: random), for results that name it by hash,
    # and the seed of random ones (None: unseeded, or real weights).
    model.loaded_weights_file = None if weights is None else str(weights)
    model.init_seed = init_seed
    return model


def _correct_pad(x: keras.KerasTensor, data_format: str) -> tuple[tuple[int, int], ...]:
    """Padding that makes a 3x3 stride-2 "valid" convolution match TF's "same"."""
    first = 2 if data_format == "channels_first" else 1
    size = x.shape[first : first + 2]
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    return ((1 - adjust[0], 1), (1 - adjust[1], 1))


def _input_shape(
    input_shape: Any,
    input_tensor: Any,
    include_top: bool,
    weights: Any,
    data_format: str,
) -> tuple:
    """`keras.applications`' input shape rules, with `data_format` given explicitly."""
    first = data_format == "channels_first"
    if (
        input_shape is None
        and input_tensor is not None
        and keras.backend.is_keras_tensor(input_tensor)
    ):
        input_shape = tuple(input_tensor.shape[1:])
        given = False  # inferred from the tensor: same defaults as no shape, but keep sizes
    else:
        given = input_shape is not None
    if input_shape is not None:
        input_shape = tuple(input_shape)
        rows, cols = (input_shape[1], input_shape[2]) if first else input_shape[:2]
        default_size = rows if rows == cols and rows in IMAGENET_SIZES else 224
    else:
        default_size = 224

    default_shape = (3, default_size, default_size) if first else (default_size, default_size, 3)
    if weights != "imagenet" and input_shape is not None and len(input_shape) == 3:
        channels = input_shape[0] if first else input_shape[-1]
        default_shape = (
            (channels, default_size, default_size)
            if first
            else (default_size, default_size, channels)
        )
    if weights == "imagenet" and include_top:
        if given and input_shape != default_shape:
            raise InvalidArgumentError(
                "When setting `include_top=True` and loading `imagenet` weights, `input_shape` "
                f"should be {default_shape}.  Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape is None:
        if include_top:
            return default_shape
        return (3, None, None) if first else (None, None, 3)
    if len(input_shape) != 3:
        raise InvalidArgumentError("`input_shape` must be a tuple of three integers.")
    channels = input_shape[0] if first else input_shape[-1]
    if channels != 3 and weights == "imagenet":
        raise InvalidArgumentError(
            f"The input must have 3 channels; Received `input_shape={input_shape}`"
        )
    spatial = input_shape[1:] if first else input_shape[:2]
    if any(size is not None and size < MIN_SIZE for size in spatial):
        raise InvalidArgumentError(
            f"Input size must be at least {MIN_SIZE}x{MIN_SIZE}; Received: "
            f"input_shape={input_shape}"
        )
    if include_top and None in input_shape:
        raise InvalidArgumentError(
            "If `include_top` is True, you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape
