"""`mobilenet-v2 compare`: float vs INT8, layer by layer, as a report."""

from __future__ import annotations

import argparse
import sys

from mobilenet_v2.base.preprocess import list_images
from mobilenet_v2.cli.parser import (
    LITERT_KERNELS,
    add_input_flags,
    input_overrides,
    non_negative_int,
    positive_int,
    refuse,
    weights_arg,
    width_multiplier,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    compare = commands.add_parser(
        "compare",
        help="float vs INT8, layer by layer",
        description="For each layer: cosine similarity, SQNR, max and mean absolute error "
        "of the dequantized INT8 output against the float model, over the images given.",
    )
    compare.add_argument(
        "inputs", nargs="+", metavar="IMAGE|DIR", help="images, or directories of images"
    )
    compare.add_argument(
        "--model",
        required=True,
        metavar="INT8.tflite",
        help="the quantized model to compare with the float TF model (required)",
    )
    compare.add_argument("--weights", default=None, help="float weights (as classify)")
    compare.add_argument(
        "--alpha", type=width_multiplier, default=None, help="TF model (1.0; a trained model's own)"
    )
    compare.add_argument(
        "--report",
        required=True,
        metavar="DIR",
        help="where report.md, report.html, report.json and sqnr.png go (required)",
    )
    compare.add_argument(
        "--kernels",
        choices=LITERT_KERNELS,
        default="reference",
        help="LiteRT's kernels for the INT8 model: reference (golden arithmetic) or optimized "
        "(the default built-in ones) (default: reference)",
    )
    compare.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="a sample of N images, class-balanced where file names carry synsets, drawn "
        "with --seed (all)",
    )
    compare.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="seeds this command's random choice: which images the --limit sample draws (0)",
    )
    add_input_flags(compare)
    return compare


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis.evaluate import balanced_sample, label_of
    from mobilenet_v2.base.outputs import check_output_dir
    from mobilenet_v2.golden import compare

    if args.limit is None:
        refuse(args, ("--seed",), "draws the --limit sample; without --limit all images count")
    check_output_dir(args.report)
    images = list_images(args.inputs)
    if args.limit:  # unlabelled images form one class of their own
        labelled = [(path, label_of(path)) for path in images]
        images = [path for path, _ in balanced_sample(labelled, args.limit, args.seed or 0)]
    report = compare.compare(
        images,
        args.model,
        weights_arg(args.weights),
        args.alpha,
        kernels=args.kernels,
        **input_overrides(args),
    )
    for note in report["metadata_notes"]:
        print(f"{args.prog}: note: {note}", file=sys.stderr)
    out = compare.write_report(report, args.report)
    for line in compare.summary(report):
        print(line)
    worst = compare.worst_first(report)[0]
    print(f"worst layer: {worst['layer']} (SQNR {worst['sqnr_db']:.2f} dB)")
    print(f"wrote {out}/report.md, report.html, report.json and sqnr.png")
    return 0
