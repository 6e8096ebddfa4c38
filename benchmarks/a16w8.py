"""16-bit activations with 8-bit weights (A16W8, `convert --quantize int16x8`) against INT8
(A8W8) and float, each with the hosted model's weights kept on their quantization grid and
requantized by the converter; the NumPy reference against LiteRT's reference kernels on the
16x8 model; latency of float32, INT8 and A16W8 at 1 and 2 threads.

    python benchmarks/a16w8.py [--out results.json] [--reference-images N] [--skip-latency]

The fixture weights (the hosted quantization-aware trained uint8 model), calibrated on the
250-image calibration split of the 500 shared images (class index % 4 == 0, as
tests/test_tflite.py splits them), evaluated on all 500 and on the 250 held out
(index % 4 == 2). Every model is converted with `convert_file` as `mobilenet-v2 convert`
does (float32 input and output, so that all are fed the same preprocessed arrays) and runs on
LiteRT's default kernels: XNNPACK for float and INT8, the built-in ones for A16W8 (XNNPACK
has no 16x8 path). One image is 0.2 points of 500, 0.4 of 250.
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

# (row, --quantize, whether the weights keep the source's grid)
ROWS = (
    ("A8W8, weights requantized", "int8", False),
    ("A8W8, weights on their grid", "int8", True),
    ("A16W8, weights requantized", "int16x8", False),
    ("A16W8, weights on their grid", "int16x8", True),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument(
        "--reference-images",
        type=int,
        default=500,
        metavar="N",
        help="run the NumPy reference against LiteRT's reference kernels on the A16W8 model "
        "(grid kept) over the first N images (500; 0: none)",
    )
    parser.add_argument("--skip-latency", action="store_true", help="no latency table")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency cell (30)")
    args = parser.parse_args()

    from mobilenet_v2.analysis import benchmark
    from mobilenet_v2.base.machine import describe, machine_info
    from mobilenet_v2.inference.classifier import kernels_of, load_keras, load_tflite
    from mobilenet_v2.tf.convert import convert_file

    split = sample_split("a16w8-")
    images, labels, held_out, x = split.images, split.labels, split.held_out, split.x
    calibration_dir, tmp = split.calibration_dir, split.tmp

    float_model = load_keras(str(WEIGHTS))
    reference = np.concatenate([float_model.predict(x[i : i + 50]) for i in range(0, len(x), 50)])
    reference_top1 = reference.argmax(1)

    def scores(logits: np.ndarray) -> dict[str, float]:
        predicted = np.argsort(-logits, axis=1)[:, :5]
        top1 = predicted[:, 0] == labels
        agree = predicted[:, 0] == reference_top1
        return {
            "top1_500": float(top1.mean()),
            "top1_250": float(top1[held_out].mean()),
            "top5_500": float((predicted == labels[:, None]).any(1).mean()),
            "agreement_500": float(agree.mean()),
            "agreement_250": float(agree[held_out].mean()),
        }

    float_scores = scores(reference)
    rows = [{"row": "float32 (TF)", **float_scores}]
    print("| model | top-1 (500) | top-1 (250 held out) | agreement (500) | agreement (250) |")
    print(
        f"| float32 (TF) | {float_scores['top1_500']:.1%} | {float_scores['top1_250']:.1%} "
        "| — | — |",
        flush=True,
    )
    paths = {}
    for name, quantize, keep_grid in ROWS:
        start = time.perf_counter()
        path = tmp / f"{quantize}-{'grid' if keep_grid else 'requantized'}.tflite"
        convert_file(
            path,
            str(WEIGHTS),
            quantize=quantize,
            io_type="float32",
            calibration_dir=calibration_dir,
            calibration_size=250,
            keep_grid=keep_grid,
        )
        paths[(quantize, keep_grid)] = path
        model = load_tflite(path)
        logits = np.concatenate([model.predict(x[i : i + 25]) for i in range(0, len(x), 25)])
        row = {
            "row": name,
            "kernels": kernels_of(model),
            **scores(logits),
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(
            f"| {name} | {row['top1_500']:.1%} | {row['top1_250']:.1%} | "
            f"{row['agreement_500']:.1%} | {row['agreement_250']:.1%} |",
            flush=True,
        )

    exact = None
    if args.reference_images:
        exact = reference_check(paths[("int16x8", True)], images[: args.reference_images])
        print(f"\nNumPy reference vs LiteRT reference kernels, A16W8: {exact}", flush=True)

    latency = []
    if not args.skip_latency:
        float_path = tmp / "float32.tflite"
        convert_file(float_path, str(WEIGHTS), quantize="none", io_type="float32")
        models = [float_path, paths[("int8", True)], paths[("int16x8", True)]]
        specs = [
            {
                "kind": "tflite",
                "path": str(m),
                "num_threads": threads,
                "runs": args.runs,
                "warmup": 3,
            }
            for threads in (1, 2)
            for m in models
        ]
        latency = benchmark.benchmark(specs)
        print()
        print(benchmark.markdown(latency))
    shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        machine = {"cpu": describe(machine_info())}
        args.out.write_text(
            json.dumps(
                {"machine": machine, "rows": rows, "reference": exact, "latency": latency},
                indent=1,
                default=str,
            )
        )
    print(f"\nMeasured on: {describe(machine_info())}")
    return 0


def reference_check(model: Path, images: list[Path]) -> dict[str, int]:
    """Differing elements over every op output, NumPy reference against LiteRT's reference
    kernels (BUILTIN_REF), on `images`: {"images", "tensors", "elements", "differing"}."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from mobilenet_v2.inference.classifier import load_for
    from mobilenet_v2.reference import ReferenceInterpreter

    ours = ReferenceInterpreter(model)
    theirs = Interpreter(
        model_path=str(model),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    theirs.allocate_tensors()
    index = theirs.get_input_details()[0]["index"]
    outputs = [out for op in ours.model.operators for out in op.outputs]
    elements = differing = 0
    for image in images:
        x = ours.quantize_input(load_for(ours, image)[None])
        theirs.set_tensor(index, x)
        theirs.invoke()
        values = ours.run(x)
        for out in outputs:
            expected = theirs.get_tensor(out)
            elements += expected.size
            differing += int((values[out] != expected).sum())
    return {
        "images": len(images),
        "tensors": len(outputs),
        "elements": elements,
        "differing": differing,
    }


if __name__ == "__main__":
    sys.exit(main())
