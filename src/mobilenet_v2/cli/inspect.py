"""`mobilenet-v2 inspect`: the layers-to-tensor map, MACs, parameters and a diagram."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobilenet_v2.analysis.diagram import DIAGRAM_FORMATS
from mobilenet_v2.cli.parser import (
    UsageError,
    input_size,
    refuse_tf_model_flags,
    weights_arg,
    width_multiplier,
)

DIAGRAM_SUFFIXES = tuple(DIAGRAM_FORMATS)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    inspect = commands.add_parser(
        "inspect",
        help="layers-to-tensor map, MACs, parameters, diagram",
        description="Per op (TFLite) or layer (TF model): Keras layer, tensors with shapes, "
        "dtypes and quantization, MACs and parameter counts; totals.",
    )
    inspect.add_argument(
        "model", metavar="MODEL", help="a .tflite, a weights file, 'imagenet' or 'none'"
    )
    inspect.add_argument(
        "--alpha", type=width_multiplier, default=None, help="TF model width (1.0)"
    )
    inspect.add_argument("--size", type=input_size, default=None, help="TF model input (224)")
    inspect.add_argument("--xlsx", metavar="PATH.xlsx", help="write the map as an Excel workbook")
    inspect.add_argument("--csv", metavar="PATH.csv", help="write one row per op and tensor")
    inspect.add_argument(
        "--diagram",
        metavar="PATH",
        help=f"draw the network; the suffix picks the format ({', '.join(DIAGRAM_SUFFIXES)})",
    )
    inspect.add_argument("--markdown", action="store_true", help="print the table (default)")
    inspect.add_argument(
        "--json", action="store_true", help="print the map as JSON (not with --markdown)"
    )
    return inspect


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output whose name promises another format than it would
    hold, and two formats for standard output."""
    if args.json and args.markdown:
        raise UsageError("--json and --markdown both print the map; choose one")
    for flag, path, suffixes in (
        ("--xlsx", args.xlsx, (".xlsx",)),
        ("--csv", args.csv, (".csv",)),
        ("--diagram", args.diagram, DIAGRAM_SUFFIXES),
    ):
        if path is not None and Path(path).suffix.lower() not in suffixes:
            raise UsageError(f"{flag} {path}: the file name must end in {' or '.join(suffixes)}")


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis import tensor_map, tensor_map_formats
    from mobilenet_v2.base.outputs import check_writable, write_atomic

    check_outputs(args)
    for path in (args.xlsx, args.csv, args.diagram):
        if path is not None:
            check_writable(path)

    if args.model.lower().endswith(".tflite"):
        from mobilenet_v2.lite.tflite_file import read_tflite

        refuse_tf_model_flags(args)
        table = tensor_map.tflite_table(read_tflite(args.model))
    else:
        from mobilenet_v2.base.trained import model_spec
        from mobilenet_v2.tf.model import MobileNetV2

        weights = weights_arg(args.model)
        spec = model_spec(weights, args.alpha, args.size)  # a trained model's own by default
        model = MobileNetV2(
            alpha=spec.alpha,
            input_shape=(spec.size, spec.size, 3),
            weights=weights,
            classes=spec.classes,
        )
        table = tensor_map.keras_table(model, source=f"{model.name} ({args.model})")
    wrote = []
    if args.xlsx:
        wrote.append(write_atomic(args.xlsx, tensor_map_formats.xlsx_bytes(table)))
    if args.csv:
        rows = tensor_map_formats.tensor_rows(table)
        data = tensor_map_formats.to_csv(rows, tensor_map_formats.CSV_COLUMNS).encode()
        wrote.append(write_atomic(args.csv, data))
    if args.diagram:
        from mobilenet_v2.analysis.diagram import render

        wrote.append(write_atomic(args.diagram, render(table, Path(args.diagram).suffix)))
    if args.json:
        print(json.dumps(table.to_json(), indent=1))
    elif args.markdown or not wrote:
        print(tensor_map_formats.markdown(table))
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
