"""TFLite benchmark for issue 3: INT8 vs float32, ours vs keras.applications, conversion time,
and the cold start of `tflite_inference.py`.

    python benchmarks/bench_tflite.py [--calibration-dir DIR] [--runs 50] [--out DIR]

Both INT8 models are converted the same way (`mobilenet_v2.tf.convert.convert`, the same 256
calibration images, the same preprocessing) from the same weights (the fixture's). Latency is
`mobilenet-v2 benchmark` (each model in a fresh process, batch 1, median after warm-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration-dir", default=str(SHARED / "data" / "imagenet" / "sample"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", default="/tmp/mobilenet_v2_bench")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from mobilenet_v2.analysis import benchmark
    from mobilenet_v2.base.calibration import calibration_images
    from mobilenet_v2.base.machine import describe
    from mobilenet_v2.base.preprocess import DEFAULT_PREPROCESSING
    from mobilenet_v2.tf._tf import keras
    from mobilenet_v2.tf.convert import INT8_INPUT, convert, convert_file
    from mobilenet_v2.tf.model import MobileNetV2

    start = time.perf_counter()
    ours_int8 = convert_file(
        out / "ours_int8.tflite", str(WEIGHTS), calibration_dir=args.calibration_dir
    )
    conversion_s = time.perf_counter() - start
    ours_f32 = convert_file(
        out / "ours_f32.tflite", str(WEIGHTS), quantize="none", io_type="float32"
    )

    # keras.applications with the same weights, converted the same way.
    ours = MobileNetV2(weights=str(WEIGHTS))
    ref = keras.applications.MobileNetV2(weights=None)
    for layer in ours.layers:
        if layer.weights:
            ref.get_layer(layer.name).set_weights(layer.get_weights())
    prep = {**DEFAULT_PREPROCESSING, **INT8_INPUT, "size": 224}
    calibration = calibration_images(args.calibration_dir, 256, 0, prep)
    keras_int8 = out / "keras_int8.tflite"
    keras_int8.write_bytes(convert(ref, "int8", "int8", calibration))

    rows = []
    for threads in (1, 2):
        specs = [
            {
                "kind": "tflite",
                "path": str(p),
                "num_threads": threads,
                "runs": args.runs,
                "warmup": 10,
            }
            for p in (ours_int8, ours_f32, keras_int8)
        ]
        rows += benchmark.benchmark(specs)
    print(benchmark.markdown(rows))
    print()
    by = {(r["model"], r["threads"]): r["p50_ms"] for r in rows}
    for threads in (1, 2):
        int8, f32, kint8 = (
            by[(n, threads)] for n in ("ours_int8.tflite", "ours_f32.tflite", "keras_int8.tflite")
        )
        print(
            f"- {threads} thread(s): our INT8 / our float32 = {int8 / f32:.3f} (target <= 0.5); "
            f"our INT8 / keras.applications INT8 = {int8 / kint8:.3f} (target <= 1.05)"
        )
    print(f"- conversion with 256 calibration images: {conversion_s:.1f} s wall")

    image = SHARED / "data" / "images" / "grace_hopper.bmp"
    cold = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "tflite_inference.py", "-i", str(image), "--model", str(ours_int8)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        cold.append(time.perf_counter() - start)
    print(
        f"- tflite_inference.py -i IMAGE, process start to printed result: median "
        f"{statistics.median(cold):.2f} s of 5 (target <= 1.5 s)"
    )
    print(f"\nMeasured on: {describe()}")


if __name__ == "__main__":
    main()
