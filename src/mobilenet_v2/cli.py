"""The `mobilenet-v2` command.

Errors in the user's input (files, flags, weights) are printed as one line naming the file,
with exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from tqdm import tqdm

from mobilenet_v2.calibration import CALIBRATION_SIZE, MIN_CALIBRATION_IMAGES
from mobilenet_v2.classifier import preprocessing_for
from mobilenet_v2.dump import FORMATS
from mobilenet_v2.errors import MobileNetV2Error, ModelFileError
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import (
    RESIZE_MODES,
    check_normalization,
    decode_pool,
    list_images,
    load_image,
)
from mobilenet_v2.tensor_map import DATA_FORMATS
from mobilenet_v2.tflite_file import IO_TYPES, QUANTIZATIONS

PROG = "mobilenet-v2"
LITERT_KERNELS = ("reference", "optimized")
MAX_THREADS = 256


def default_weights() -> str:
    return os.environ.get("MOBILENET_V2_WEIGHTS") or "imagenet"


def weights_arg(value: str | None) -> str | None:
    """--weights as the model takes it: unset = $MOBILENET_V2_WEIGHTS or imagenet; `none`
    (any case, also in the variable) = random initialization, as `weights=None` in Python.
    A file literally named `none` is `./none`."""
    value = value or default_weights()
    return None if value.lower() == "none" else value


def _int_at_least(minimum: int, name: str) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    parse.__name__ = name  # argparse names the type in "invalid <name> value: 'x'"
    return parse


positive_int = _int_at_least(1, "positive_int")


def _thread_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_THREADS:  # LiteRT cannot start that many threads (it crashes trying)
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {text}")
    return value


_non_negative_int = _int_at_least(0, "non_negative_int")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def pixel_mean(text: str) -> float:
    value = _finite_float(text)
    try:
        check_normalization(value, 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a pixel value in [0, 255], got {text}") from None
    return value


def pixel_std(text: str) -> float:
    value = _finite_float(text)
    try:
        check_normalization(127.5, value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number that float32 can divide by, got {text}"
        ) from None
    return value


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    """Preprocessing overrides; unset, each model's own (recorded) preprocessing applies."""
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="crop: the central 87.5%% square, then resize (ImageNet evaluation); stretch: "
        "the whole image, aspect ratio ignored (default: what a .tflite model records, "
        "else crop)",
    )
    parser.add_argument(
        "--input-mean",
        type=pixel_mean,
        default=None,
        metavar="M",
        help="input = (pixel - M) / S (default: the model's record, else 127.5; our INT8 "
        "models record 128)",
    )
    parser.add_argument(
        "--input-std",
        type=pixel_std,
        default=None,
        metavar="S",
        help="a positive number (default: the model's record, else 127.5)",
    )


def _add_model_flags(parser: argparse.ArgumentParser, several: bool = False) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        help="TF model weights: 'imagenet' (official Keras file, downloaded once), an "
        ".h5/.weights.h5/.keras file, a MobileNetV2 .tflite, or 'none' (random "
        "initialization) (default: $MOBILENET_V2_WEIGHTS or imagenet)",
    )
    parser.add_argument(
        "--alpha", type=positive_float, default=None, help="TF model width multiplier (1.0)"
    )
    parser.add_argument(
        "--model",
        action="append" if several else "store",
        default=None,
        metavar="M.tflite",
        help="run a TFLite model with LiteRT (no TensorFlow)"
        + (" (repeatable)" if several else ""),
    )
    parser.add_argument("--num-threads", type=_thread_count, default=None, help="LiteRT threads")
    parser.add_argument(
        "--xnnpack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LiteRT's XNNPACK delegate (default: on; off = TFLite's built-in kernels)",
    )


class UsageError(MobileNetV2Error):
    """Flags that cannot go together: reported like argparse's own errors, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog command: error: argument --x: why (see --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description="MobileNetV2 from TensorFlow low-level ops.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser(
        "classify", help="classify images", description="Top-K ImageNet classes per image."
    )
    classify.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    _add_model_flags(classify)
    classify.add_argument(
        "--size", type=positive_int, default=None, help="TF model input size (224)"
    )
    _add_input_flags(classify)
    classify.add_argument("--top", type=positive_int, default=5, help="classes per image (5)")
    classify.add_argument("--batch-size", type=positive_int, default=32, help="images (32)")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.set_defaults(run=run_classify)

    convert = commands.add_parser(
        "convert",
        help="convert to TensorFlow Lite",
        description="Convert MobileNetV2 to TFLite; int8 = full-integer, calibrated.",
    )
    convert.add_argument("--output", required=True, metavar="PATH")
    convert.add_argument("--weights", default=None, help="as for classify")
    convert.add_argument("--alpha", type=positive_float, default=1.0, help="width (1.0)")
    convert.add_argument("--size", type=positive_int, default=224, help="input size (224)")
    convert.add_argument(
        "--quantize", choices=QUANTIZATIONS, default="int8", help="weights and activations (int8)"
    )
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
    convert.add_argument(
        "--calibration-size",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"images drawn from DIR ({CALIBRATION_SIZE}); with fewer readable ones a warning, "
        f"and below {MIN_CALIBRATION_IMAGES} a refusal unless --force",
    )
    convert.add_argument(
        "--seed", type=_non_negative_int, default=None, metavar="K", help="calibration draw (0)"
    )
    convert.add_argument(
        "--force",
        action="store_true",
        help=f"calibrate on fewer than {MIN_CALIBRATION_IMAGES} images when DIR has no more",
    )
    convert.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help="preprocessing recorded in the model and used for calibration (crop)",
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
    evaluate.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="a class-balanced sample of N images, drawn with --seed (all)",
    )
    evaluate.add_argument(
        "--seed", type=_non_negative_int, default=None, metavar="K", help="--limit's draw (0)"
    )
    evaluate.add_argument("--batch-size", type=positive_int, default=32)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=run_evaluate)

    dump = commands.add_parser(
        "dump",
        help="write every tensor of one inference (golden reference)",
        description="Every tensor of one run: TFLite (--model, all interpreter tensors) or the "
        "float TF model (every layer output and weight), as text and/or .npy, with "
        "manifest.json and manifest.csv.",
    )
    dump.add_argument("image", metavar="IMAGE")
    dump.add_argument("--output", required=True, metavar="DIR")
    dump.add_argument("--model", default=None, metavar="M.tflite", help="dump a TFLite model")
    dump.add_argument("--weights", default=None, help="dump the float TF model (as classify)")
    dump.add_argument("--alpha", type=positive_float, default=None, help="TF model (1.0)")
    dump.add_argument("--size", type=positive_int, default=None, help="TF model input (224)")
    dump.add_argument("--format", choices=FORMATS, default="txt")
    dump.add_argument(
        "--data-format",
        choices=DATA_FORMATS,
        default="channel_first",
        help="channel_first: activations NCHW, conv weights OIHW, depthwise C1HW; "
        "channel_last: TFLite's NHWC, OHWI, 1HWC",
    )
    dump.add_argument(
        "--kernels",
        choices=LITERT_KERNELS,
        default=None,
        help="LiteRT kernels: reference (golden arithmetic, the default) or optimized",
    )
    dump.add_argument(
        "--engine",
        choices=("litert", "reference"),
        default="litert",
        help="litert: LiteRT's interpreter; reference: the NumPy integer reference "
        "(mobilenet_v2.reference, bit-exact with LiteRT's reference kernels)",
    )
    _add_input_flags(dump)
    dump.set_defaults(run=run_dump)

    inspect = commands.add_parser(
        "inspect",
        help="layers-to-tensor map, MACs, parameters, diagram",
        description="Per op (TFLite) or layer (TF model): Keras layer, tensors with shapes, "
        "dtypes and quantization, MACs and parameter counts; totals.",
    )
    inspect.add_argument(
        "model", metavar="MODEL", help="a .tflite, a weights file, 'imagenet' or 'none'"
    )
    inspect.add_argument("--alpha", type=positive_float, default=None, help="TF model width (1.0)")
    inspect.add_argument("--size", type=positive_int, default=None, help="TF model input (224)")
    inspect.add_argument("--xlsx", metavar="PATH", help="write the map as an Excel workbook")
    inspect.add_argument("--csv", metavar="PATH", help="write one row per op and tensor")
    inspect.add_argument("--diagram", metavar="PATH", help="draw the network (.png or .svg)")
    inspect.add_argument("--markdown", action="store_true", help="print the table (default)")
    inspect.add_argument("--json", action="store_true", help="print the map as JSON")
    inspect.set_defaults(run=run_inspect)

    compare = commands.add_parser(
        "compare",
        help="float vs INT8, layer by layer",
        description="For each layer: cosine similarity, SQNR, max and mean absolute error "
        "of the dequantized INT8 output against the float model, over the images given.",
    )
    compare.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    compare.add_argument("--model", required=True, metavar="INT8.tflite")
    compare.add_argument("--weights", default=None, help="float weights (as classify)")
    compare.add_argument("--alpha", type=positive_float, default=1.0)
    compare.add_argument("--report", required=True, metavar="DIR")
    compare.add_argument("--kernels", choices=LITERT_KERNELS, default="reference")
    compare.add_argument("--limit", type=positive_int, default=None, metavar="N")
    _add_input_flags(compare)
    compare.set_defaults(run=run_compare)

    trace = commands.add_parser(
        "trace",
        help="explain one output element of a quantized model",
        description="Every integer step behind one element, with the NumPy reference: input "
        "window and weights, accumulator, bias, multiplier, shift, rounding, zero point, clamp.",
    )
    trace.add_argument("model", metavar="MODEL.tflite")
    trace.add_argument("image", metavar="IMAGE")
    trace.add_argument("--tensor", required=True, help="tensor name, dump file name or index")
    trace.add_argument(
        "--index", required=True, help="n,c,h,w for 4-D tensors (as the NCHW dumps), else n,c"
    )
    _add_input_flags(trace)
    trace.set_defaults(run=run_trace)

    bench = commands.add_parser(
        "benchmark",
        help="latency, throughput and memory",
        description="Per model: latency p50/p90/p99, throughput and peak memory, batch 1.",
    )
    bench.add_argument("models", nargs="*", metavar="MODEL.tflite")
    bench.add_argument("--weights", default=None, help="also benchmark the TF float model")
    bench.add_argument("--alpha", type=positive_float, default=None, help="TF model (1.0)")
    bench.add_argument("--size", type=positive_int, default=None, help="TF model (224)")
    bench.add_argument("--num-threads", type=_thread_count, default=None)
    bench.add_argument(
        "--xnnpack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LiteRT's XNNPACK delegate for the .tflite models (default: on)",
    )
    bench.add_argument("--runs", type=positive_int, default=50)
    bench.add_argument("--warmup", type=_non_negative_int, default=5)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(run=run_benchmark)
    for command in commands.choices.values():
        command.add_argument(
            "--debug", action="store_true", help="show the traceback of an unexpected error"
        )
    return parser


def _refuse(args: argparse.Namespace, flags: Sequence[str], reason: str) -> None:
    """One-line error for a flag the user set that the chosen engine or mode would ignore."""
    for flag in flags:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None and value is not False:  # 0 is a value the user typed
            raise UsageError(f"{flag} {reason}")


def _refuse_tf_model_flags(args: argparse.Namespace) -> None:
    """--alpha/--size shape the TF model; a .tflite model fixes both in its file."""
    _refuse(
        args,
        ("--alpha", "--size"),
        "sets the TF model (--weights); a .tflite model's width and input size are fixed "
        "in the file",
    )


def _refuse_xnnpack(args: argparse.Namespace, where: str) -> None:
    if args.xnnpack is not None:  # True, or False for --no-xnnpack: both typed by the user
        raise UsageError(f"{'--xnnpack' if args.xnnpack else '--no-xnnpack'} applies to {where}")


def _model_paths(args: argparse.Namespace) -> list[str]:
    """The --model paths (one or several), after refusing flags no chosen engine uses."""
    models = args.model if isinstance(args.model, list) else [args.model] if args.model else []
    if models and not args.weights:
        _refuse_tf_model_flags(args)
    if not models:
        _refuse(args, ("--num-threads",), "applies to LiteRT (--model)")
        _refuse_xnnpack(args, "LiteRT (--model)")
    return models


def _classifiers(args: argparse.Namespace, models: list[str]) -> list:
    """The TFLite `models` (from `_model_paths`), else (or also, with --weights) the TF model."""
    from mobilenet_v2.classifier import load_tflite

    found = [load_tflite(m, args.num_threads, args.xnnpack) for m in models]
    for classifier in found:
        if classifier.classes - classifier.label_offset != 1000:
            raise ModelFileError(
                f"{classifier.path}: has {classifier.classes} classes; ImageNet's 1000 (or 1001 "
                "with background) are needed to name them"
            )
    _unique_names(found)
    if args.weights or not found:
        from mobilenet_v2.classifier import KerasClassifier

        size = getattr(args, "size", None) or 224
        found.insert(0, KerasClassifier(weights_arg(args.weights), args.alpha or 1.0, size))
    return found


def _unique_names(classifiers: list) -> None:
    """Each model by its file name; models that share one get as many parent folders as it
    takes to tell them apart (a/int8.tflite, b/int8.tflite). One file twice is refused."""
    paths = [Path(os.path.abspath(c.path)) for c in classifiers]  # links keep their names
    if len(set(paths)) < len(paths):
        raise UsageError("the same --model is given twice")
    for classifier, path in zip(classifiers, paths, strict=True):
        rivals = [p for p in paths if p.name == path.name and p != path]
        depth = 1
        while any(p.parts[-depth:] == path.parts[-depth:] for p in rivals):
            depth += 1
        classifier.name = str(Path(*path.parts[-depth:]))


def run_classify(args: argparse.Namespace) -> int:
    if args.model and args.weights:
        raise UsageError("give --model (LiteRT) or --weights (TF model), not both")
    images = list_images(args.inputs)  # fails before any model loads on an empty directory
    # With --model, LiteRT only: TensorFlow never loads.
    classifier = _classifiers(args, _model_paths(args))[0]
    prep = preprocessing_for(
        classifier, resize=args.resize, mean=args.input_mean, std=args.input_std
    )
    failures = 0
    short: list[Path] = []  # images with fewer than --top classes scoring above 0

    def load(path: Path) -> np.ndarray | MobileNetV2Error:
        try:
            return load_image(path, **prep)
        except MobileNetV2Error as exc:
            return exc

    many = len(images) > 1
    bar = tqdm(
        total=len(images), unit="img", file=sys.stderr, disable=len(images) <= args.batch_size
    )
    with decode_pool() as pool:
        for start in range(0, len(images), args.batch_size):
            batch = images[start : start + args.batch_size]
            loaded = list(pool.map(load, batch))
            good = [(p, x) for p, x in zip(batch, loaded, strict=True) if isinstance(x, np.ndarray)]
            for x in loaded:
                if isinstance(x, MobileNetV2Error):
                    failures += 1
                    tqdm.write(f"{args.prog}: error: {x}", file=sys.stderr)
            if good:
                scores = classifier.predict(np.stack([x for _, x in good]))
                for (path, _), top in zip(good, decode_predictions(scores, args.top), strict=True):
                    # A quantized output rounds every unlikely class to exactly 0; their order
                    # would be the class index (tench, goldfish, ...), so they are not listed.
                    shown = [row for row in top if row[2] > 0]
                    if len(shown) < len(top):
                        short.append(path)
                    _print_result(path, shown, args.json, many)
            bar.update(len(batch))
    bar.close()
    if short:
        step = getattr(classifier, "output_step", 0.0)
        where = str(short[0]) if len(short) == 1 else f"{len(short)} images"
        print(
            f"{args.prog}: note: {where}: fewer than {args.top} classes score above 0"
            + (f" (the model's output step is {step:.4g})" if step else "")
            + "; classes at 0 are tied and not listed",
            file=sys.stderr,
        )
    return 1 if failures else 0


def run_convert(args: argparse.Namespace) -> int:
    from mobilenet_v2.convert import convert_file

    if args.quantize != "int8":
        _refuse(
            args,
            ("--calibration-dir", "--calibration-size", "--seed", "--force"),
            "applies to --quantize int8 (calibration)",
        )
    start = time.perf_counter()
    io_type = args.io_type or ("int8" if args.quantize == "int8" else "float32")
    if io_type != "float32" and args.quantize != "int8":
        raise UsageError(f"--io-type {io_type} needs --quantize int8 (integer I/O)")
    path = convert_file(
        args.output,
        weights=weights_arg(args.weights),
        alpha=args.alpha,
        size=args.size,
        quantize=args.quantize,
        io_type=io_type,
        calibration_dir=args.calibration_dir,
        calibration_size=args.calibration_size or CALIBRATION_SIZE,
        seed=args.seed or 0,
        preprocessing={"resize": args.resize},
        force=args.force,
        warn=lambda message: tqdm.write(f"{args.prog}: warning: {message}", file=sys.stderr),
    )
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.quantize}, "
        f"{io_type} I/O) in {time.perf_counter() - start:.1f} s"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from mobilenet_v2 import evaluate
    from mobilenet_v2.machine import describe, machine_info

    models = _model_paths(args)  # flags first: before any image is listed or model loaded
    if args.limit is None:
        _refuse(args, ("--seed",), "draws the --limit sample; without --limit all images count")
    images = evaluate.labelled_images(args.directory, args.limit, args.seed or 0)
    classifiers = _classifiers(args, models)
    report = evaluate.evaluate(classifiers, images, args.batch_size, resize=args.resize)
    for message in report["skipped"]:
        print(f"{args.prog}: warning: skipped {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({**report, "machine": machine_info()}, indent=2))
    else:
        print(f"{evaluate.markdown(report)}\n\nMeasured on: {describe()}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from mobilenet_v2 import benchmark
    from mobilenet_v2.machine import describe, machine_info

    common = {"num_threads": args.num_threads, "runs": args.runs, "warmup": args.warmup}
    for model in args.models:
        if not Path(model).is_file():
            raise MobileNetV2Error(f"{model}: model file not found")
    specs = [{"kind": "tflite", "path": m, "xnnpack": args.xnnpack, **common} for m in args.models]
    if specs and not args.weights:
        _refuse_tf_model_flags(args)
    if not specs:
        _refuse_xnnpack(args, ".tflite models")
    if args.weights or not specs:
        tf_model = {"weights": weights_arg(args.weights), "alpha": args.alpha or 1.0}
        specs.insert(0, {"kind": "tf", **tf_model, "size": args.size or 224, **common})
    results = benchmark.benchmark(specs)
    if args.json:
        print(json.dumps({"machine": machine_info(), "results": results}, indent=2))
    else:
        print(f"{benchmark.markdown(results)}\n\nMeasured on: {describe()}")
    return 0


def _input_overrides(args: argparse.Namespace) -> dict:
    return {"resize": args.resize, "mean": args.input_mean, "std": args.input_std}


def run_dump(args: argparse.Namespace) -> int:
    from mobilenet_v2 import dump

    if args.model and args.weights:
        raise UsageError("give --model (TFLite) or --weights (TF model), not both")
    if args.engine == "reference" and not args.model:
        raise UsageError("--engine reference runs a quantized --model M.tflite")
    if args.engine == "reference" or not args.model:
        _refuse(args, ("--kernels",), "chooses LiteRT's kernels (--model, --engine litert)")
    common = {"fmt": args.format, "data_format": args.data_format, **_input_overrides(args)}
    if args.model:
        _refuse_tf_model_flags(args)
        kernels = "numpy" if args.engine == "reference" else args.kernels or "reference"
        out = dump.dump_tflite(args.model, args.image, args.output, kernels=kernels, **common)
    else:
        weights = weights_arg(args.weights)
        size = args.size or 224
        out = dump.dump_keras(weights, args.image, args.output, args.alpha or 1.0, size, **common)
    manifest = json.loads((out / dump.MANIFEST).read_text())
    files = sum(len(t["files"]) for t in manifest["tensors"])
    print(f"wrote {len(manifest['tensors'])} tensors ({files} files) and manifests to {out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from mobilenet_v2 import tensor_map
    from mobilenet_v2.outputs import write_atomic

    if args.model.lower().endswith(".tflite"):
        from mobilenet_v2.tflite_file import read_tflite

        _refuse_tf_model_flags(args)
        table = tensor_map.tflite_table(read_tflite(args.model))
    else:
        from mobilenet_v2.model import MobileNetV2

        size = args.size or 224
        model = MobileNetV2(
            alpha=args.alpha or 1.0, input_shape=(size, size, 3), weights=weights_arg(args.model)
        )
        table = tensor_map.keras_table(model, source=f"{model.name} ({args.model})")
    wrote = []
    if args.xlsx:
        wrote.append(write_atomic(args.xlsx, tensor_map.xlsx_bytes(table)))
    if args.csv:
        rows = tensor_map.tensor_rows(table)
        data = tensor_map.to_csv(rows, tensor_map.CSV_COLUMNS).encode()
        wrote.append(write_atomic(args.csv, data))
    if args.diagram:
        from mobilenet_v2.diagram import render

        wrote.append(write_atomic(args.diagram, render(table, Path(args.diagram).suffix)))
    if args.json:
        print(json.dumps(table.to_json(), indent=1))
    elif args.markdown or not wrote:
        print(tensor_map.markdown(table))
    totals = table.totals
    summary = (
        f"{table.source}: {totals['macs']:,} MACs ({totals['macs'] // 10**6} M), "
        f"{totals['weights']:,} kernel weights ({totals['weights'] / 1e6:.2f} M), "
        f"{totals['params']:,} parameters ({totals['params'] / 1e6:.2f} M)"
    )
    print(summary, file=sys.stderr if args.json else sys.stdout)
    for path in wrote:
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from mobilenet_v2 import compare
    from mobilenet_v2.outputs import check_output_dir

    check_output_dir(args.report)
    images = list_images(args.inputs)[: args.limit]
    report = compare.compare(
        images,
        args.model,
        weights_arg(args.weights),
        args.alpha,
        kernels=args.kernels,
        **_input_overrides(args),
    )
    out = compare.write_report(report, args.report)
    for line in compare.summary(report):
        print(line)
    worst = compare.worst_first(report)[0]
    print(f"worst layer: {worst['layer']} (SQNR {worst['sqnr_db']:.2f} dB)")
    print(f"wrote {out}/report.md, report.html, report.json and sqnr.png")
    return 0


def run_trace(args: argparse.Namespace) -> int:
    from mobilenet_v2.classifier import load_for
    from mobilenet_v2.reference import ReferenceInterpreter
    from mobilenet_v2.trace import find_tensor, nhwc_position, trace

    try:
        index = tuple(int(v) for v in args.index.split(","))
    except ValueError:
        raise MobileNetV2Error(
            f"--index {args.index!r}: expected integers like 0,5,10,12"
        ) from None
    reference = ReferenceInterpreter(args.model)
    tensor = find_tensor(reference, args.tensor)
    position = nhwc_position(reference.tensor(tensor).shape, index)
    x = load_for(reference, args.image, **_input_overrides(args))
    values = reference.run(reference.quantize_input(x[None]))
    print("\n".join(trace(reference, values, tensor, position)))
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


def respell(message: str, spellings: Mapping[str, str] | None) -> str:
    """`message` with this command's flags spelled as a wrapper script spells them."""
    for flag, spelled in (spellings or {}).items():
        message = re.sub(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", spelled, message)
    return message


def main(
    argv: Sequence[str] | None = None,
    prog: str = PROG,
    spellings: Mapping[str, str] | None = None,
) -> int:
    """Run one command. A wrapper script passes its own `prog` for the messages and, in
    `spellings`, its own names for our flags (`{"--calibration-dir": "--calibration_dir"}`),
    so that every hint names a flag the user can actually type."""
    args = build_parser(prog).parse_args(argv)
    args.prog = prog
    try:
        return args.run(args)
    except UsageError as exc:
        message = respell(str(exc), spellings)
        print(f"{prog} {args.command}: error: {message} (see --help)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a program killed by SIGPIPE does.
        _detach_stdout()
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 130
    except (MobileNetV2Error, OSError) as exc:
        # Ours, or the system's about a file the user named; an OSError naming no file is not.
        if not (isinstance(exc, MobileNetV2Error) or exc.filename):
            return _unexpected(prog, exc, args.debug)
        if args.debug:
            traceback.print_exception(exc)
        print(f"{prog}: error: {respell(_one_line(exc), spellings)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else is a bug, not the user's input
        return _unexpected(prog, exc, args.debug)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and not isinstance(exc, MobileNetV2Error):
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def _unexpected(prog: str, exc: BaseException, debug: bool) -> int:
    """A short line, and the traceback one flag away (`--debug`). Exit status 70 (EX_SOFTWARE)."""
    if debug:
        traceback.print_exception(exc)
    else:
        message = f"{type(exc).__name__}: {_one_line(exc)}"[:300]
        print(
            f"{prog}: internal error: {message} (a bug: run with --debug for the traceback)",
            file=sys.stderr,
        )
    return 70


def error(prog: str, message: str) -> int:
    """A wrapper's own one-line error, in the same form as main's; returns the exit status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 1


def _detach_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


if __name__ == "__main__":
    sys.exit(main())
