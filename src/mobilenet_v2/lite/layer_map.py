"""Which Keras layer each operator of a `.tflite` MobileNetV2 computes, and which of its
constant tensors hold that layer's weights.

The map is structural (operator types in execution order against `architecture.conv_steps`),
not by tensor names, so it holds for our conversions, for keras.applications' and for
TF-slim's models (whose tensors are named `MobilenetV2/expanded_conv_1/...`). It is the one
walk over a model's operators: the tensor tables name tensors by it and the weights loader
(`mobilenet_v2.tf.weights`) takes each convolution's kernel and bias from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mobilenet_v2.base.architecture import (
    CLASSIFIER_LAYER,
    INPUT_LAYER,
    LOGITS,
    POOLING_LAYER,
    blocks,
    conv_steps,
)
from mobilenet_v2.lite.tflite_file import Operator, TFLiteModel

# Operators that hold weights: what a Keras convolution or the classifier becomes.
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# The classifier: FULLY_CONNECTED, or a 1x1 CONV_2D in TF-slim's models.
CLASSIFIER_OPS = ("CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class WeightOp:
    """An operator holding a layer's weights: the tensor indices of its kernel (input 1) and
    bias (input 2), -1 where the operator has none."""

    op: Operator
    kernel: int
    bias: int

    @classmethod
    def of(cls, op: Operator) -> WeightOp:
        kernel = op.inputs[1] if len(op.inputs) > 1 else -1
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        return cls(op, kernel, bias)


@dataclass
class LayerMap:
    """Keras names for a `.tflite` model's operators and tensors, and its weight operators.

    `op_layer[op]`: the Keras layer whose output the op computes. `tensor_names[t]`: the name
    its dump file takes, which a float dump of the Keras model shares: a layer name for
    activations, `<conv>.folded_kernel` / `<conv>.folded_bias` for BN-folded weights,
    `predictions.kernel` / `.bias`, and `predictions_logits` before the softmax. These three
    are empty for a model that is not MobileNetV2 (its tensors keep their own names).

    `convolutions[conv]`: the operator of each Keras convolution, in execution order, up to
    the first that does not line up; `head`: the weight operators after the last convolution
    (a MobileNetV2 classifier has one); `problem`: why the weight operators do not line up
    with MobileNetV2's convolutions, empty when they do.
    """

    op_layer: dict[int, str] = field(default_factory=dict)
    tensor_layer: dict[int, str] = field(default_factory=dict)
    tensor_names: dict[int, str] = field(default_factory=dict)
    convolutions: dict[str, WeightOp] = field(default_factory=dict)
    head: list[WeightOp] = field(default_factory=list)
    problem: str = ""

    def name(self, tensor: int, layer: str, file_name: str | None = None) -> None:
        self.tensor_layer.setdefault(tensor, layer)
        self.tensor_names.setdefault(tensor, file_name or layer)

    def name_weights(self, weights: WeightOp, layer: str, kernel: str, bias: str) -> None:
        for tensor, role in ((weights.kernel, kernel), (weights.bias, bias)):
            if tensor >= 0:
                self.name(tensor, layer, f"{layer}.{role}")


def map_tflite(tfl: TFLiteModel) -> LayerMap:
    """Walk the operators in order against `conv_steps()`: the n-th weight operator is the
    n-th convolution's. A model whose convolutions do not line up with MobileNetV2's gets no
    names, and `problem` says where it parts."""
    steps = conv_steps()
    residual = {block.prefix for block in blocks() if block.residual}
    found = LayerMap()
    for tensor in tfl.inputs[:1]:
        found.name(tensor, INPUT_LAYER)
    k, prefix, lined_up = 0, "", True
    for op in tfl.operators:
        out = op.outputs[0] if op.outputs else -1
        layer, file_name = "", None
        if op.opcode in WEIGHT_OPS and found.problem:
            pass  # past the first mismatch: nothing more to pair
        elif op.opcode in WEIGHT_OPS and k < len(steps):
            step = steps[k]
            expected = "DEPTHWISE_CONV_2D" if step.depthwise else "CONV_2D"
            if op.opcode != expected:
                found.problem = (
                    f"op {op.index} is {op.opcode} where layer '{step.conv}' needs {expected}"
                )
                continue
            weights = found.convolutions[step.conv] = WeightOp.of(op)
            layer, prefix, k = step.output, step.prefix, k + 1
            found.name_weights(weights, step.conv, "folded_kernel", "folded_bias")
        elif op.opcode in WEIGHT_OPS:
            weights = WeightOp.of(op)
            found.head.append(weights)
            if op.opcode in CLASSIFIER_OPS and k == len(steps):
                layer, file_name, k = CLASSIFIER_LAYER, LOGITS, k + 1
                found.name_weights(weights, CLASSIFIER_LAYER, "kernel", "bias")
        elif op.opcode == "PAD" and k < len(steps) and steps[k].pad:
            layer = f"{steps[k].prefix}pad"
        elif op.opcode == "ADD" and 0 < k < len(steps):
            lined_up = lined_up and prefix in residual  # else an add where MobileNetV2 has none
            layer = f"{prefix}add"
        elif op.opcode in ("MEAN", "AVERAGE_POOL_2D") and k == len(steps):
            layer = POOLING_LAYER
        elif op.opcode == "SOFTMAX" and k > len(steps):
            layer = CLASSIFIER_LAYER
        elif op.opcode == "QUANTIZE" and op.inputs and op.inputs[0] in tfl.inputs:
            layer = INPUT_LAYER
        if layer:
            found.op_layer[op.index] = layer
            if out >= 0:
                found.name(out, layer, file_name)
    if not found.problem and k < len(steps):  # not (all of) MobileNetV2
        found.problem = f"the file has {k} convolutions; layer '{steps[k].conv}' has none"
    if found.problem or not lined_up:
        found.op_layer, found.tensor_layer, found.tensor_names = {}, {}, {}
    return found
