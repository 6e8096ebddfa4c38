"""The `mobilenet-v2` command.

Errors in the user's input (files, flags, weights) are printed as one line naming the file,
with exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mobilenet_v2.classifier import preprocessing_for
from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import RESIZE_MODES, list_images, load_image
from mobilenet_v2.tflite_file import IO_TYPES, QUANTIZATIONS

PROG = "mobilenet-v2"


def default_weights() -> str:
    return os.environ.get("MOBILENET_V2_WEIGHTS") or "imagenet"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_preprocessing_flags(parser: argparse.ArgumentParser) -> None:
    """Unset flags fall back to what the model records (TFLite), else the defaults shown."""
    parser.add_argument("--size", type=_positive_int, default=None, help="input size (224)")
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="crop: central 87.5%% square, then resize (ImageNet eval); stretch: whole image",
    )
    parser.add_argument("--input-mean", type=float, default=None, help="(x - mean) / std: 127.5")
    parser.add_argument("--input-std", type=float, default=None, help="(x - mean) / std: 127.5")


def _add_model_flags(parser: argparse.ArgumentParser, several: bool = False) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        help="TF model weights: 'imagenet' (official Keras file, downloaded once), an "
        ".h5/.weights.h5/.keras file or a MobileNetV2 .tflite (default: "
        "$MOBILENET_V2_WEIGHTS or imagenet)",
    )
    parser.add_argument("--alpha", type=float, default=1.0, help="width multiplier (1.0)")
    parser.add_argument(
        "--model",
        action="append" if several else "store",
        default=None,
        metavar="M.tflite",
        help="run a TFLite model with LiteRT (no TensorFlow)"
        + (" (repeatable)" if several else ""),
    )
    parser.add_argument("--num-threads", type=_positive_int, default=None, help="LiteRT threads")
    parser.add_argument(
        "--xnnpack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LiteRT's XNNPACK delegate (default: on, except for dynamic-range models)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="MobileNetV2 from TensorFlow low-level ops."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser(
        "classify", help="classify images", description="Top-K ImageNet classes per image."
    )
    classify.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    _add_model_flags(classify)
    _add_preprocessing_flags(classify)
    classify.add_argument("--top", type=_positive_int, default=5, help="classes per image (5)")
    classify.add_argument("--batch-size", type=_positive_int, default=32)
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.set_defaults(run=run_classify)

    convert = commands.add_parser(
        "convert",
        help="convert to TensorFlow Lite",
        description="Convert MobileNetV2 to TFLite; int8 = full-integer, calibrated.",
    )
    convert.add_argument("--output", required=True, metavar="PATH")
    convert.add_argument("--weights", default=None, help="as for classify")
    convert.add_argument("--alpha", type=float, default=1.0)
    convert.add_argument("--size", type=_positive_int, default=224)
    convert.add_argument("--quantize", choices=QUANTIZATIONS, default="int8")
    convert.add_argument(
        "--io-type",
        choices=IO_TYPES,
        default=None,
        help="input/output type (int8 for --quantize int8, else float32)",
    )
    convert.add_argument(
        "--calibration-dir",
        default=None,
        metavar="DIR",
        help="images to calibrate int8 on (default: imagenette2-160 val)",
    )
    convert.add_argument("--calibration-size", type=_positive_int, default=256, metavar="N")
    convert.add_argument("--seed", type=int, default=0, metavar="K")
    convert.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help="preprocessing recorded in the model and used for calibration",
    )
    convert.set_defaults(run=run_convert)

    evaluate = commands.add_parser(
        "evaluate",
        help="top-1/top-5 of models side by side",
        description="Accuracy on a labelled directory (synset in file or folder names).",
    )
    evaluate.add_argument("directory", metavar="DIR")
    _add_model_flags(evaluate, several=True)
    evaluate.add_argument("--resize", choices=RESIZE_MODES, default=None)
    evaluate.add_argument("--limit", type=_positive_int, default=None, metavar="N")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=run_evaluate)

    bench = commands.add_parser(
        "benchmark",
        help="latency, throughput and memory",
        description="Per model: latency p50/p90/p99, throughput and peak memory, batch 1.",
    )
    bench.add_argument("models", nargs="*", metavar="MODEL.tflite")
    bench.add_argument("--weights", default=None, help="also benchmark the TF float model")
    bench.add_argument("--alpha", type=float, default=1.0)
    bench.add_argument("--size", type=_positive_int, default=224)
    bench.add_argument("--num-threads", type=_positive_int, default=None)
    bench.add_argument("--runs", type=_positive_int, default=50)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(run=run_benchmark)
    return parser


def _classifiers(args: argparse.Namespace) -> list:
    """The TFLite models named by --model, else (or also, with --weights) the TF model."""
    from mobilenet_v2.classifier import load_tflite

    models = args.model if isinstance(args.model, list) else [args.model] if args.model else []
    found = [load_tflite(m, args.num_threads, args.xnnpack) for m in models]
    if args.weights or not found:
        from mobilenet_v2.classifier import KerasClassifier

        size = getattr(args, "size", None) or 224
        found.insert(0, KerasClassifier(args.weights or default_weights(), args.alpha, size))
    return found


def run_classify(args: argparse.Namespace) -> int:
    images = list_images(args.inputs)  # fails before any model loads on an empty directory
    if args.model:  # LiteRT only: TensorFlow is never imported on this path
        from mobilenet_v2.classifier import load_tflite

        classifier = load_tflite(args.model, args.num_threads, args.xnnpack)
    else:
        classifier = _classifiers(args)[0]
    prep = preprocessing_for(
        classifier, resize=args.resize, mean=args.input_mean, std=args.input_std
    )
    if args.size and args.model and (args.size, args.size) != classifier.input_size:
        raise MobileNetV2Error(
            f"{args.model}: model input is {classifier.input_size}, not --size {args.size}"
        )
    failures = 0

    def load(path: Path) -> np.ndarray | MobileNetV2Error:
        try:
            return load_image(path, **prep)
        except MobileNetV2Error as exc:
            return exc

    many = len(images) > 1
    bar = tqdm(
        total=len(images), unit="img", file=sys.stderr, disable=len(images) <= args.batch_size
    )
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(images), args.batch_size):
            batch = images[start : start + args.batch_size]
            loaded = list(pool.map(load, batch))
            good = [(p, x) for p, x in zip(batch, loaded, strict=True) if isinstance(x, np.ndarray)]
            for x in loaded:
                if isinstance(x, MobileNetV2Error):
                    failures += 1
                    tqdm.write(f"{PROG}: error: {x}", file=sys.stderr)
            if good:
                scores = classifier.predict(np.stack([x for _, x in good]))
                for (path, _), top in zip(good, decode_predictions(scores, args.top), strict=True):
                    _print_result(path, top, args.json, many)
            bar.update(len(batch))
    bar.close()
    return 1 if failures else 0


def run_convert(args: argparse.Namespace) -> int:
    from mobilenet_v2.convert import convert_file

    start = time.perf_counter()
    io_type = args.io_type or ("int8" if args.quantize == "int8" else "float32")
    path = convert_file(
        args.output,
        weights=args.weights or default_weights(),
        alpha=args.alpha,
        size=args.size,
        quantize=args.quantize,
        io_type=io_type,
        calibration_dir=args.calibration_dir,
        calibration_size=args.calibration_size,
        seed=args.seed,
        preprocessing={"resize": args.resize},
    )
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.quantize}, "
        f"{io_type} I/O) in {time.perf_counter() - start:.1f} s"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from mobilenet_v2 import evaluate

    images = evaluate.labelled_images(args.directory, args.limit)
    report = evaluate.evaluate(_classifiers(args), images, args.batch_size, resize=args.resize)
    for message in report["skipped"]:
        print(f"{PROG}: warning: skipped {message}", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else evaluate.markdown(report))
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from mobilenet_v2 import benchmark

    common = {"num_threads": args.num_threads, "runs": args.runs, "warmup": args.warmup}
    for model in args.models:
        if not Path(model).is_file():
            raise MobileNetV2Error(f"{model}: model file not found")
    specs = [{"kind": "tflite", "path": m, **common} for m in args.models]
    if args.weights or not specs:
        weights = args.weights or default_weights()
        specs.insert(
            0, {"kind": "tf", "weights": weights, "alpha": args.alpha, "size": args.size, **common}
        )
    results = benchmark.benchmark(specs)
    print(json.dumps(results, indent=2) if args.json else benchmark.markdown(results))
    return 0


def _print_result(path: Path, top: list, as_json: bool, with_header: bool) -> None:
    if as_json:
        preds = [{"synset": s, "name": n, "score": score} for s, n, score in top]
        print(json.dumps({"image": str(path), "predictions": preds}), flush=True)
        return
    if with_header:
        print(f"{path}:")
    for synset, name, score in top:
        print(f"{synset} {name} {score:.3f}")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (MobileNetV2Error, ValueError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
