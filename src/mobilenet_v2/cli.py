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
from mobilenet_v2.dump import FORMATS
from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import RESIZE_MODES, list_images, load_image
from mobilenet_v2.tensor_map import DATA_FORMATS
from mobilenet_v2.tflite_file import IO_TYPES, QUANTIZATIONS

PROG = "mobilenet-v2"
LITERT_KERNELS = ("reference", "optimized")


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


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    """Preprocessing overrides; unset, each model's own (recorded) preprocessing applies."""
    parser.add_argument("--resize", choices=RESIZE_MODES, default=None)
    parser.add_argument("--input-mean", type=float, default=None)
    parser.add_argument("--input-std", type=float, default=None)


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
    dump.add_argument("--alpha", type=float, default=1.0)
    dump.add_argument("--size", type=_positive_int, default=None, help="TF model input (224)")
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
        default="reference",
        help="LiteRT kernels: reference (golden arithmetic) or optimized (the default ones)",
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
    inspect.add_argument("--alpha", type=float, default=1.0, help="TF model width (1.0)")
    inspect.add_argument("--size", type=_positive_int, default=224, help="TF model input (224)")
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
    compare.add_argument("--alpha", type=float, default=1.0)
    compare.add_argument("--report", required=True, metavar="DIR")
    compare.add_argument("--kernels", choices=LITERT_KERNELS, default="reference")
    compare.add_argument("--limit", type=_positive_int, default=None, metavar="N")
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


def _input_overrides(args: argparse.Namespace) -> dict:
    return {"resize": args.resize, "mean": args.input_mean, "std": args.input_std}


def run_dump(args: argparse.Namespace) -> int:
    from mobilenet_v2 import dump

    if args.model and args.weights:
        raise MobileNetV2Error("dump: give --model (TFLite) or --weights (TF model), not both")
    if args.engine == "reference" and not args.model:
        raise MobileNetV2Error("dump: --engine reference runs a quantized --model M.tflite")
    common = {"fmt": args.format, "data_format": args.data_format, **_input_overrides(args)}
    if args.model:
        kernels = "numpy" if args.engine == "reference" else args.kernels
        out = dump.dump_tflite(args.model, args.image, args.output, kernels=kernels, **common)
    else:
        weights = args.weights or default_weights()
        size = args.size or 224
        out = dump.dump_keras(weights, args.image, args.output, args.alpha, size, **common)
    manifest = json.loads((out / dump.MANIFEST).read_text())
    files = sum(len(t["files"]) for t in manifest["tensors"])
    print(f"wrote {len(manifest['tensors'])} tensors ({files} files) and manifests to {out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from mobilenet_v2 import tensor_map
    from mobilenet_v2.outputs import write_atomic

    if args.model.lower().endswith(".tflite"):
        from mobilenet_v2.tflite_file import read_tflite

        table = tensor_map.tflite_table(read_tflite(args.model))
    else:
        from mobilenet_v2.model import MobileNetV2

        weights = None if args.model == "none" else args.model
        model = MobileNetV2(
            alpha=args.alpha, input_shape=(args.size, args.size, 3), weights=weights
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
        args.weights or default_weights(),
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
