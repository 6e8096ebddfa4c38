"""Cross-check `mobilenet-v2 compare` against TensorFlow's QuantizationDebugger.

    python benchmarks/quantization_debugger_crosscheck.py --weights W --model M.tflite \
        --calibration-dir C --images D [--limit 20]

M must be `mobilenet-v2 convert --weights W --calibration-dir C` (int8): the debugger
converts the same model with the same converter settings and calibration images, so both
see the same quantization parameters. Both run on the same images with the INT8 model's
preprocessing. Prints a Markdown table per layer: the debugger's error of each quantized op
alone (its float op gets the dequantized inputs of the quantized model) next to ours, the
error accumulated from the input to that layer (float model vs INT8 model).
"""

from __future__ import annotations

import argparse
import math
import re

import numpy as np

from mobilenet_v2.base.architecture import CLASSIFIER_LAYER, LOGITS
from mobilenet_v2.base.calibration import calibration_images
from mobilenet_v2.base.outputs import markdown_table
from mobilenet_v2.base.preprocess import list_images, load_image
from mobilenet_v2.base.quiet import silenced_stderr, silenced_stdout
from mobilenet_v2.golden.compare import compare
from mobilenet_v2.tf._tf import tf
from mobilenet_v2.tf.convert import INT8_INPUT, make_converter
from mobilenet_v2.tf.model import MobileNetV2

# "mobilenetv2_1.00_224_1/block_1_expand_relu_1/Relu6;..." -> "block_1_expand_relu"
_LAYER = re.compile(r"^(?:NumericVerify/)?[^/;]+/([A-Za-z0-9_]+?)(?:_\d+)?/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--model", required=True, help="our INT8 conversion of --weights")
    parser.add_argument("--calibration-dir", required=True)
    parser.add_argument("--calibration-size", type=int, default=256)
    parser.add_argument("--images", required=True)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()

    images = list_images([args.images])[: args.limit]
    prep = {"mean": INT8_INPUT["mean"], "std": INT8_INPUT["std"]}
    batch = np.stack([load_image(p, **prep) for p in images])
    model = MobileNetV2(weights=args.weights)
    calibration = calibration_images(args.calibration_dir, args.calibration_size)
    converter = make_converter(model, "int8", "float32", calibration)
    with silenced_stderr(), silenced_stdout():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([x[None]] for x in batch)
        )
        debugger.run()
    ours = {r["layer"]: r for r in compare(images, args.model, args.weights, **prep)["layers"]}

    print(f"{len(images)} images; RMSE and max |error| in float units\n")
    rows = []
    for name, stats in debugger.layer_statistics.items():
        match = _LAYER.match(name)
        layer = match.group(1) if match else name
        if layer == CLASSIFIER_LAYER:  # the verified op is the FULLY_CONNECTED: logits
            layer = LOGITS
        mine = ours.get(layer)
        if mine is None:
            continue
        rmse = (
            mine["rms_float"] * 10 ** (-mine["sqnr_db"] / 20) if mine["sqnr_db"] != math.inf else 0
        )
        rows.append(
            [
                layer,
                f"{math.sqrt(stats['mean_squared_error']):.4g}",
                f"{stats['max_abs_error']:.4g}",
                f"{rmse:.4g}",
                f"{mine['max_abs_error']:.4g}",
            ]
        )
    headers = ["layer", "debugger RMSE (op alone)", "debugger max", "ours RMSE (accumulated)"]
    headers.append("ours max")
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
