"""MobileNetV2's structure, written once and importing nothing: the paper's (t, c, n, s)
table, channel rounding and Keras' layer names. `blocks()` drives both the Keras builder
(`mobilenet_v2.tf.model`) and the map from a `.tflite` model's operators to Keras layers
(`mobilenet_v2.lite.layer_map`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Table 2 of the paper: expansion factor t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

INPUT_LAYER = "input_layer"
POOLING_LAYER = "global_average_pooling2d"
CLASSIFIER_LAYER = "predictions"
LOGITS = "predictions_logits"  # the classifier before its softmax: no Keras layer outputs it
# Transfer learning fine-tunes from here on: the last three stride-16/32 blocks and Conv_1.
DEFAULT_FINE_TUNE_FROM = "block_13_expand"
STEM_FILTERS = 32
LAST_FILTERS = 1280
BN_MOMENTUM = 0.999
BN_EPSILON = 1e-3


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def batch_norm_name(conv_name: str) -> str:
    """The BatchNormalization layer that follows a convolution, by Keras' naming."""
    return {"Conv1": "bn_Conv1", "Conv_1": "Conv_1_bn"}.get(conv_name, f"{conv_name}_BN")


@dataclass(frozen=True)
class ConvStep:
    """One convolution + BatchNormalization (+ ReLU6); TFLite fuses the three into one op.
    The fields are keras.applications' arguments for that convolution."""

    conv: str  # the Keras convolution layer
    filters: int  # output channels
    kernel: int = 1
    stride: int = 1
    depthwise: bool = False
    relu: bool = True  # ReLU6 after the BN; False for the linear bottleneck (project)
    prefix: str = ""  # the block's name prefix ("" outside blocks)
    padding: str = "same"
    pad: bool = False  # an explicit asymmetric ZeroPadding2D first (`<prefix>pad`), stride 2

    @property
    def output(self) -> str:
        """The Keras layer whose output the fused op computes (ReLU6, else BN)."""
        if not self.relu:
            return batch_norm_name(self.conv)
        return {"Conv_1": "out_relu"}.get(self.conv, f"{self.conv}_relu")


@dataclass(frozen=True)
class Block:
    """A run of convolutions; `residual` adds the block's input to its output (`<prefix>add`)."""

    convs: tuple[ConvStep, ...]
    residual: bool = False
    prefix: str = ""


def blocks(alpha: float = 1.0) -> list[Block]:
    """The whole network below the classifier, in execution order: stem, the 17 inverted
    residual blocks of the table (expand 1x1 -> depthwise 3x3 -> linear project 1x1) and the
    last 1x1 convolution. Layer names are the same for every alpha and input size."""
    channels = make_divisible(STEM_FILTERS * alpha)
    found = [Block((ConvStep("Conv1", channels, kernel=3, stride=2),))]
    block_id = 0
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        filters = make_divisible(int(c * alpha))
        for i in range(n):
            p = f"block_{block_id}_" if block_id else "expanded_conv_"
            stride = s if i == 0 else 1
            expanded = t * channels
            convs = []
            if t != 1:  # block 0 has expansion 1: no expand convolution
                convs.append(ConvStep(f"{p}expand", expanded, prefix=p))
            # Stride 2: pad explicitly, then "valid", as Keras does (equal to TF's "same").
            downsample = {"padding": "valid", "pad": True} if stride == 2 else {}
            convs.append(
                ConvStep(
                    f"{p}depthwise",
                    expanded,
                    kernel=3,
                    stride=stride,
                    depthwise=True,
                    prefix=p,
                    **downsample,
                )
            )
            convs.append(ConvStep(f"{p}project", filters, relu=False, prefix=p))
            residual = channels == filters and stride == 1
            found.append(Block(tuple(convs), residual=residual, prefix=p))
            channels, block_id = filters, block_id + 1
    # The paper keeps 1280 channels for alpha <= 1 and widens them only for alpha > 1.
    last = make_divisible(LAST_FILTERS * alpha) if alpha > 1.0 else LAST_FILTERS
    found.append(Block((ConvStep("Conv_1", last, padding="valid"),)))  # 1x1: same as "same"
    return found


def conv_steps(alpha: float = 1.0) -> list[ConvStep]:
    """Every convolution in execution order."""
    return [step for block in blocks(alpha) for step in block.convs]
