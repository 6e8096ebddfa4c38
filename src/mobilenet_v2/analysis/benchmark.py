"""Latency, throughput and peak memory per model, each model in a fresh process.

TFLite models are timed like TFLite's `benchmark_model`: the interpreter's run on an input
already of the model's type; the TF model as `predict_on_batch` on a float32 batch of one.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from mobilenet_v2.base.outputs import markdown_table


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in a child process, so that its peak resident memory is this model's alone."""
    from mobilenet_v2.inference.classifier import kernels_of

    threads = spec["num_threads"]
    if spec["kind"] == "tf":
        if threads:  # read when TensorFlow creates its context, i.e. at import here
            os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
            os.environ["TF_NUM_INTEROP_THREADS"] = "1"
        from mobilenet_v2.inference.classifier import load_keras

        classifier = load_keras(spec["weights"], spec["alpha"], spec["size"])
    else:
        from mobilenet_v2.inference.classifier import load_tflite

        classifier = load_tflite(spec["path"], num_threads=threads, xnnpack=spec.get("xnnpack"))
    h, w = classifier.input_size
    x = np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)).astype(np.float32)
    if hasattr(classifier, "invoke"):  # TFLite: time the interpreter alone, input prepared
        x = classifier.quantize_input(x)
        run = classifier.invoke
    else:
        run = classifier.predict
    for _ in range(spec["warmup"]):
        run(x)
    times = []
    for _ in range(spec["runs"]):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {
        "model": classifier.name,
        "input": f"{h}x{w}",
        "kernels": kernels_of(classifier),
        "threads": threads,
        "runs": spec["runs"],
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "throughput_ips": float(1000.0 / ms.mean()),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, unlike
    ru_maxrss, which a spawned child inherits from the parent it was forked from."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    context = multiprocessing.get_context("spawn")
    for spec in specs:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results.append(pool.submit(_measure, spec).result())
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    headers = ["model", "kernels", "threads", "p50 (ms)", "p90 (ms)", "p99 (ms)"]
    headers += ["throughput (img/s)", "peak RSS (MiB)"]
    rows = [
        [
            r["model"],
            r["kernels"],
            r["threads"] or "default",
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['throughput_ips']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
        ]
        for r in results
    ]
    return markdown_table(headers, rows, text_columns=2)
