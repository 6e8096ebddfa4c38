"""Which Keras layer each operator of a `.tflite` MobileNetV2 computes.

The map is structural (operator types in execution order against `architecture.conv_steps`),
not by tensor names, so it holds for our conversions, for keras.applications' and for
TF-slim's models (whose tensors are named `MobilenetV2/expanded_conv_1/...`).
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
from mobilenet_v2.lite.tflite_file import TFLiteModel


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
    residual = {block.prefix for block in blocks() if block.residual}
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
        elif op.opcode == "ADD" and 0 < k < len(steps):
            if prefix not in residual:
                return LayerMap()  # an add where MobileNetV2 has none
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
