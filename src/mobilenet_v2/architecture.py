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


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def batch_norm_name(conv_name: str) -> str:
    """The BatchNormalization layer that follows a convolution, by Keras' naming."""
    return {"Conv1": "bn_Conv1", "Conv_1": "Conv_1_bn"}.get(conv_name, f"{conv_name}_BN")


def block_prefix(block_id: int) -> str:
    return f"block_{block_id}_" if block_id else "expanded_conv_"


@dataclass(frozen=True)
class ConvStep:
    """One convolution of the network; TFLite fuses it with its BN and ReLU6 into one op."""

    conv: str  # the Keras convolution layer
    depthwise: bool
    stride: int
    output: str  # the Keras layer whose output the fused op computes (ReLU6, else BN)
    prefix: str  # the block's name prefix ("" outside blocks)


def conv_steps() -> list[ConvStep]:
    """Every convolution in execution order; the same names for any alpha and input size."""
    steps = [ConvStep("Conv1", False, 2, "Conv1_relu", "")]
    block_id = 0
    for _, _, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        for i in range(repeats):
            p = block_prefix(block_id)
            if block_id:  # block 0 has expansion 1: no expand convolution
                steps.append(ConvStep(f"{p}expand", False, 1, f"{p}expand_relu", p))
            stride = first_stride if i == 0 else 1
            steps.append(ConvStep(f"{p}depthwise", True, stride, f"{p}depthwise_relu", p))
            steps.append(ConvStep(f"{p}project", False, 1, batch_norm_name(f"{p}project"), p))
            block_id += 1
    steps.append(ConvStep("Conv_1", False, 1, "out_relu", ""))
    return steps


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
        elif op.opcode == "PAD" and k < len(steps) and steps[k].depthwise and steps[k].stride == 2:
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
