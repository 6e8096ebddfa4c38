"""What each rewrite of `convert` buys INT8 MobileNetV2, in the form of Table 1 of Nagel et
al., "Data-Free Quantization Through Weight Equalization and Bias Correction" (ICCV 2019).

    python benchmarks/per_tensor_steps.py [--out results.json]

The fixture weights (the hosted quantization-aware trained model, dequantized), calibrated on
the 250-image calibration split of the 500 shared images (class index % 4 == 0, as
tests/test_tflite.py splits them; the rewrites use the same images), evaluated on all 500
and on the 250 held-out images (index % 4 == 2). Each row converts through
`equalization.rewrite` and `convert`, as `mobilenet-v2 convert` does with the row's flags
(but float32 input and output, fed the same preprocessed arrays), and runs on LiteRT's
default kernels (XNNPACK; `--kernels builtin`: TFLite's own). Columns: the rewritten float
model's top-1, the INT8 model's top-1 and top-5, and its top-1 agreement with the original
float model (ReLU6, no rewrite), on all 500 (which include the calibration images) and on
the 250 held out. One image is 0.2 points of 500, 0.4 of 250. Then the per-layer SQNR of
each INT8 model against the float model it came from (`compare`, which redoes the rewrites
but bias correction).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from sample_split import WEIGHTS, sample_split

# (row, convert's flags): the rewrite steps and whether the weights are per tensor.
ROWS = (
    ("per-tensor", (), True),
    ("+ ReLU for ReLU6 (with_relu; the command wants --equalize with --relu)", ("relu",), True),
    ("+ ReLU, + CLE (the paper's)", ("relu", "equalize"), True),
    ("CLE, ReLU6 kept (--equalize)", ("equalize",), True),
    ("+ absorption (--absorb-bias)", ("equalize", "absorb_bias"), True),
    ("+ bias correction (--bias-correction)", ("equalize", "absorb_bias", "bias_correction"), True),
    ("CLE + bias correction, no absorption", ("equalize", "bias_correction"), True),
    ("per-channel", (), False),
    ("per-channel + bias correction", ("bias_correction",), False),
)

# Where per-tensor INT8 loses and regains precision: the first depthwise convolution (folded
# weights 0 to 56), a block with a dead expand channel, the last block and the logits.
SQNR_LAYERS = (
    "Conv1_relu",
    "expanded_conv_depthwise_relu",
    "expanded_conv_project_BN",
    "block_2_depthwise_relu",
    "block_2_add",
    "block_11_depthwise_relu",
    "block_16_project_BN",
    "out_relu",
    "predictions_logits",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument(
        "--sqnr-images",
        type=int,
        default=20,
        metavar="N",
        help="per-layer SQNR (`compare`, reference kernels) over the first N held-out images "
        "(20; 0: none)",
    )
    parser.add_argument(
        "--kernels",
        choices=("xnnpack", "builtin"),
        default="xnnpack",
        help="LiteRT's kernels for the INT8 models (xnnpack, LiteRT's default)",
    )
    parser.add_argument(
        "--rows", type=int, nargs="+", default=None, metavar="I", help="only these rows (0-based)"
    )
    args = parser.parse_args()

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from mobilenet_v2 import MobileNetV2
    from mobilenet_v2.base.calibration import calibration_images
    from mobilenet_v2.base.machine import describe, machine_info
    from mobilenet_v2.golden.compare import compare
    from mobilenet_v2.lite.record import embed_metadata
    from mobilenet_v2.tf.convert import (
        calibration_record,
        convert,
        metadata_record,
    )
    from mobilenet_v2.tf.equalization import _channel_moments, pairs, rewrite

    split = sample_split("per-tensor-steps-")
    images, labels, held_out, x = split.images, split.labels, split.held_out, split.x
    prep, calibration_dir, tmp = split.preprocessing, split.calibration_dir, split.tmp
    calibration = calibration_images(calibration_dir, 250, 0, prep)
    sqnr_images = [p for p, h in zip(images, held_out, strict=True) if h][: args.sqnr_images]

    original = MobileNetV2(weights=str(WEIGHTS), classifier_activation=None)
    # How many channels between pairs ReLU6 clips on the calibration images: those keep
    # their scale under --equalize.
    found = pairs(original)
    tops = [
        top for *_, top in _channel_moments(original, calibration, [f.bn.name for f, *_ in found])
    ]
    clipped = sum(int((top >= 6).sum()) for top in tops)
    print(
        f"channels reaching 6 on the calibration images: {clipped} of {sum(t.size for t in tops)}"
    )

    def float_logits(model) -> np.ndarray:
        return np.concatenate([np.asarray(model(x[i : i + 50])) for i in range(0, len(x), 50)])

    reference = float_logits(original).argmax(1)

    def scores(predicted: np.ndarray) -> dict[str, float]:
        top1 = predicted[:, 0] == labels
        return {
            "top1_500": float(top1.mean()),
            "top1_250": float(top1[held_out].mean()),
            "top5_500": float((predicted == labels[:, None]).any(1).mean()),
            "agreement_500": float((predicted[:, 0] == reference).mean()),
            "agreement_250": float((predicted[:, 0] == reference)[held_out].mean()),
        }

    rows = []
    chosen = [ROWS[i] for i in args.rows] if args.rows else ROWS
    for name, steps, per_tensor in chosen:
        start = time.perf_counter()
        model = rewrite(original, steps, calibration, per_channel=not per_tensor)
        float_scores = scores(np.argsort(-float_logits(model), axis=1)[:, :5])
        data = convert(model, "int8", "float32", calibration, per_tensor)
        interpreter = Interpreter(
            model_content=data,
            experimental_op_resolver_type=OpResolverType.AUTO
            if args.kernels == "xnnpack"
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        logits = []
        for image in x:
            interpreter.set_tensor(inp, image[None])
            interpreter.invoke()
            logits.append(interpreter.get_tensor(out)[0])
        int8 = scores(np.argsort(-np.array(logits), axis=1)[:, :5])
        sqnr = {}
        if sqnr_images:
            # `compare` redoes the recorded rewrites on the recorded calibration images and
            # compares each layer with the float model the INT8 one came from.
            record = metadata_record(
                {k: prep[k] for k in ("mean", "std", "resize", "crop_fraction")},
                per_tensor=per_tensor,
                steps=list(steps),
                calibration=calibration_record(calibration, calibration_dir, 0),
            )
            path = tmp / "model.tflite"
            path.write_bytes(embed_metadata(data, record))
            report = compare(sqnr_images, path, str(WEIGHTS))
            sqnr = {layer["layer"]: layer["sqnr_db"] for layer in report["layers"]}
        row = {
            "row": name,
            "steps": list(steps),
            "per_tensor": per_tensor,
            "float_top1_500": float_scores["top1_500"],
            "float_top1_250": float_scores["top1_250"],
            **{f"int8_{k}": v for k, v in int8.items()},
            "sqnr_db": sqnr,
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(
            f"| {name} | {row['float_top1_500']:.1%} | {row['float_top1_250']:.1%} | "
            f"{row['int8_top1_500']:.1%} | {row['int8_top1_250']:.1%} | "
            f"{row['int8_agreement_500']:.1%} | {row['int8_agreement_250']:.1%} | "
            f"{row['int8_top5_500']:.1%} |",
            flush=True,
        )
    if sqnr_images:
        print(f"\nSQNR (dB) against the float model each came from, {len(sqnr_images)} images:")
        numbers = args.rows or range(len(ROWS))
        print("| layer | " + " | ".join(str(i) for i in numbers) + " |")
        for layer in SQNR_LAYERS:
            values = [row["sqnr_db"].get(layer, float("nan")) for row in rows]
            print(f"| {layer} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
        medians = [np.median(list(row["sqnr_db"].values())) for row in rows]
        print("| median of all layers | " + " | ".join(f"{v:.1f}" for v in medians) + " |")
    shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        machine = {"cpu": describe(machine_info()), "kernels": args.kernels}
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
