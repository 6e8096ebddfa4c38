"""`mobilenet-v2 benchmark`: latency, throughput and peak memory per model, batch 1."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.cli.parser import (
    UsageError,
    default_weights,
    input_size,
    non_negative_int,
    positive_int,
    refuse_tf_model_flags,
    refuse_xnnpack,
    thread_count,
    weights_arg,
    width_multiplier,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    bench = commands.add_parser(
        "benchmark",
        help="latency, throughput and memory",
        description="Per model: latency p50/p90/p99, throughput and peak memory, batch 1.",
    )
    bench.add_argument(
        "models",
        nargs="*",
        metavar="MODEL.tflite",
        help="TFLite models to measure, each once (with none, --weights is required)",
    )
    bench.add_argument(
        "--weights",
        default=None,
        help="also benchmark the TF float model with these weights, as for classify "
        "(imagenet, a file, or none)",
    )
    bench.add_argument("--alpha", type=width_multiplier, default=None, help="TF model (1.0)")
    bench.add_argument("--size", type=input_size, default=None, help="TF model (224)")
    bench.add_argument(
        "--num-threads",
        type=thread_count,
        default=None,
        metavar="N",
        help="threads of each model's LiteRT interpreter and of TensorFlow's ops (default: "
        "LiteRT's and TensorFlow's own)",
    )
    bench.add_argument(
        "--xnnpack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LiteRT's XNNPACK delegate for the .tflite models (default: on; int16x8 models "
        "always run on the built-in kernels: XNNPACK has no 16x8 path)",
    )
    bench.add_argument(
        "--runs", type=positive_int, default=50, metavar="N", help="timed runs per model (50)"
    )
    bench.add_argument(
        "--warmup",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="untimed runs per model before the timed ones (5)",
    )
    bench.add_argument(
        "--json",
        action="store_true",
        help="print the results and the machine as JSON (default: a Markdown table)",
    )
    return bench


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis import benchmark
    from mobilenet_v2.base.machine import describe, machine_info

    common = {"num_threads": args.num_threads, "runs": args.runs, "warmup": args.warmup}
    if not args.models and not args.weights and default_weights() == "imagenet":
        # Without $MOBILENET_V2_WEIGHTS this would be an ImageNet download, not a measurement.
        raise UsageError("nothing to measure: give MODEL.tflite files, or --weights W")
    seen = set()
    for model in args.models:  # as evaluate refuses one --model twice
        if os.path.abspath(model) in seen:
            raise UsageError(f"the same model is given twice: {model}")
        seen.add(os.path.abspath(model))
    for model in args.models:
        if not Path(model).is_file():
            raise MobileNetV2Error(f"{model}: model file not found")
    specs = [{"kind": "tflite", "path": m, "xnnpack": args.xnnpack, **common} for m in args.models]
    if specs and not args.weights:
        refuse_tf_model_flags(args)
    if not specs:
        refuse_xnnpack(args, ".tflite models")
    if args.weights or not specs:  # no model: $MOBILENET_V2_WEIGHTS' file (checked above)
        # Unset: a trained model's own width and size (`trained.model_spec`), else 1.0/224.
        tf_model = {"weights": weights_arg(args.weights), "alpha": args.alpha}
        specs.insert(0, {"kind": "tf", **tf_model, "size": args.size, **common})
    results = benchmark.benchmark(specs)
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": results}, indent=2))
    else:
        print(f"{benchmark.markdown(results)}\n\nMeasured on: {describe()}")
    return 0
