"""Latency of our MobileNetV2 vs keras.applications.MobileNetV2, same weights, same process.

    python benchmarks/bench_tf_model.py [--runs 30] [--warmup 5] [--alpha 1.0] [--size 224]

Both models get identical weights (the fixture's real ImageNet weights when
`$MOBILENET_V2_SHARED`/../shared has them, else random) and are called the same way, as a
compiled `tf.function` with `training=False` (what `predict` runs), alternating between the two
models on every run so that machine noise hits both alike. Prints a Markdown table of medians
and the ratio ours / Keras; the target is ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mobilenet_v2 import MobileNetV2
from mobilenet_v2.base.outputs import markdown_table
from mobilenet_v2.tf._tf import keras, tf

SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", Path(__file__).parents[2] / "shared"))
FIXTURE = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"


def build(alpha: float, size: int):
    shape = (size, size, 3)
    weights = str(FIXTURE) if FIXTURE.is_file() and alpha == 1.0 else None
    ours = MobileNetV2(input_shape=shape, alpha=alpha, weights=weights)
    ref = keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, weights=None)
    for layer in ours.layers:
        if layer.weights:
            ref.get_layer(layer.name).set_weights(layer.get_weights())
    return ours, ref, "fixture (real ImageNet)" if weights else "random"


def compiled(model):
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def bench(fns: dict, x: tf.Tensor, runs: int, warmup: int) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(warmup):
            fn(x).numpy()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(x).numpy()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()

    ours, ref, weights = build(args.alpha, args.size)
    fns = {"ours": compiled(ours), "keras": compiled(ref)}
    rng = np.random.default_rng(0)
    print(f"MobileNetV2 alpha {args.alpha}, {args.size}x{args.size}, weights: {weights}")
    cpu = platform.processor() or platform.machine()
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {cpu}, {os.cpu_count()} CPUs; "
        f"median of {args.runs} runs after {args.warmup} warm-up\n"
    )
    rows = []
    for batch in args.batches:
        x = tf.constant(rng.uniform(-1, 1, (batch, args.size, args.size, 3)).astype(np.float32))
        diff = float(np.abs(fns["ours"](x).numpy() - fns["keras"](x).numpy()).max())
        med = bench(fns, x, args.runs, args.warmup)
        ratio = med["ours"] / med["keras"]
        rows.append([batch, f"{med['ours']:.2f}", f"{med['keras']:.2f}", f"{ratio:.3f}"])
        print(f"batch {batch}: max |diff| {diff:.1e}", file=sys.stderr)
    headers = ["batch", "ours (ms)", "keras.applications (ms)", "ratio ours/keras"]
    print(markdown_table(headers, rows, text_columns=0))


if __name__ == "__main__":
    main()
