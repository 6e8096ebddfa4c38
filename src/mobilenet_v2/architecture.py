"""MobileNetV2's structure without TensorFlow: the paper's table, channel rounding, Keras'
layer names, and which Keras layer each operator of a `.tflite` MobileNetV2 computes.

The op-to-layer map is structural (operator types in execution order), not by tensor names,
so it holds for our conversions, for keras.applications' and for TF-slim's models (whose
tensors are named `MobilenetV2/expanded_conv_1/...`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mobilenet_v2.tflite_file import TFLiteModel

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
    """One convolution + BatchNormalization (+ ReLU6); TFLite fuses the three into one op."""

    conv: str  # the Keras convolution layer
    depthwise: bool
    kernel: int
    stride: int
    filters: int  # output channels
    relu: bool  # ReLU6 after the BN; False for the linear bottleneck (project)
    prefix: str = ""  # the block's name prefix ("" outside blocks)
    pad: bool = False  # explicit asymmetric ZeroPadding2D + "valid", as Keras (stride 2)

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
    found = [Block((ConvStep("Conv1", False, 3, 2, channels, relu=True),))]
    block_id = 0
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        filters = make_divisible(int(c * alpha))
        for i in range(n):
            p = f"block_{block_id}_" if block_id else "expanded_conv_"
            stride = s if i == 0 else 1
            convs = []
            if t != 1:  # block 0 has expansion 1: no expand convolution
                convs.append(ConvStep(f"{p}expand", False, 1, 1, t * channels, True, p))
            width = t * channels
            convs.append(ConvStep(f"{p}depthwise", True, 3, stride, width, True, p, stride == 2))
            convs.append(ConvStep(f"{p}project", False, 1, 1, filters, False, p))
            found.append(Block(tuple(convs), channels == filters and stride == 1, p))
            channels, block_id = filters, block_id + 1
    # The paper keeps 1280 channels for alpha <= 1 and widens them only for alpha > 1.
    last = make_divisible(LAST_FILTERS * alpha) if alpha > 1.0 else LAST_FILTERS
    found.append(Block((ConvStep("Conv_1", False, 1, 1, last, relu=True),)))
    return found


def conv_steps(alpha: float = 1.0) -> list[ConvStep]:
    """Every convolution in execution order."""
    return [step for block in blocks(alpha) for step in block.convs]


@dataclass
class LayerMap:
    """Keras names for a `.tflite` model's operators and tensors.

    `op_layer[op]`: the Keras layer whose output the op computes. `tensor_names[t]`: the name
    its dump file takes, which a float dump of the Keras model shares: a layer name for
    activations, `<conv>.folded_kernel` / `<conv>.folded_bias` for BN-folded weights,
    `predictions.kernel` / `.bias`, and `predictions_logits` before the softmax.
    """

    op_layer: dict[int, str] = field(default_factory=dict)
    tensor_layer: dict[int, str] = field(default_factory=dict)
    tensor_names: dict[int, str] = field(default_factory=dict)

    def name(self, tensor: int, layer: str, file_name: str | None = None) -> None:
        self.tensor_layer.setdefault(tensor, layer)
        self.tensor_names.setdefault(tensor, file_name or layer)


def map_tflite(tfl: TFLiteModel) -> LayerMap:
    """Walk the operators in order against `conv_steps()`; a model whose convolutions do not
    line up with MobileNetV2's gets an empty map (its tensors keep their own names)."""
    steps = conv_steps()
    found = LayerMap()
    for tensor in tfl.inputs[:1]:
        found.name(tensor, INPUT_LAYER)
    k, prefix = 0, ""
    for op in tfl.operators:
        out = op.outputs[0] if op.outputs else -1
        layer, file_name = "", None
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D") and k < len(steps):
            step = steps[k]
            if (op.opcode == "DEPTHWISE_CONV_2D") != step.depthwise:
                return LayerMap()
            layer, prefix, k = step.output, step.prefix, k + 1
            _name_weights(found, op.inputs, step.conv, "folded_kernel", "folded_bias")
        elif op.opcode == "PAD" and k < len(steps) and steps[k].pad:
            layer = f"{steps[k].prefix}pad"
        elif op.opcode == "ADD" and prefix and 0 < k < len(steps):
            layer = f"{prefix}add"
        elif op.opcode in ("MEAN", "AVERAGE_POOL_2D") and k == len(steps):
            layer = POOLING_LAYER
        elif op.opcode in ("FULLY_CONNECTED", "CONV_2D") and k == len(steps):
            layer, file_name, k = CLASSIFIER_LAYER, LOGITS, k + 1
            _name_weights(found, op.inputs, CLASSIFIER_LAYER, "kernel", "bias")
        elif op.opcode == "SOFTMAX" and k > len(steps):
            layer = CLASSIFIER_LAYER
        elif op.opcode == "QUANTIZE" and op.inputs and op.inputs[0] in tfl.inputs:
            layer = INPUT_LAYER
        if layer:
            found.op_layer[op.index] = layer
            if out >= 0:
                found.name(out, layer, file_name)
    if k < len(steps):
        return LayerMap()  # not (all of) MobileNetV2
    return found


def _name_weights(found: LayerMap, inputs: tuple[int, ...], layer: str, kernel: str, bias: str):
    for position, role in ((1, kernel), (2, bias)):
        if position < len(inputs) and inputs[position] >= 0:
            found.name(inputs[position], layer, f"{layer}.{role}")
