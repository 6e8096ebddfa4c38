"""`mobilenet-v2 evaluate`: top-1/top-5 of models side by side on a labelled directory."""

from __future__ import annotations

import argparse
import json
import sys

from mobilenet_v2.cli.parser import (
    add_engine_flags,
    add_model_flags,
    check_engine_flags,
    load_classifiers,
    model_paths,
    non_negative_int,
    positive_int,
    refuse,
)
from mobilenet_v2.preprocess import RESIZE_MODES


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    evaluate = commands.add_parser(
        "evaluate",
        help="top-1/top-5 of models side by side",
        description="Accuracy on a labelled directory (synset in file or folder names).",
    )
    evaluate.add_argument("directory", metavar="DIR|URL")
    add_model_flags(evaluate, several=True)
    evaluate.add_argument("--resize", choices=RESIZE_MODES, default=None)
    evaluate.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="a class-balanced sample of N images, drawn with --seed (all)",
    )
    evaluate.add_argument(
        "--seed", type=non_negative_int, default=None, metavar="K", help="--limit's draw (0)"
    )
    add_engine_flags(evaluate)
    evaluate.add_argument("--json", action="store_true")
    return evaluate


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis import evaluate
    from mobilenet_v2.machine import describe, machine_info

    models = model_paths(args)  # flags first: before any image is listed or model loaded
    check_engine_flags(args)
    if args.limit is None:
        refuse(args, ("--seed",), "draws the --limit sample; without --limit all images count")
    images = evaluate.labelled_images(args.directory, args.limit, args.seed or 0)
    classifiers = load_classifiers(args, models)
    report = evaluate.evaluate(
        classifiers,
        images,
        args.batch_size,
        engine=args.engine,
        ray_address=args.ray_address,
        workers=args.workers,
        draft=args.draft,
        resize=args.resize,
    )
    for message in report["skipped"]:
        print(f"{args.prog}: warning: skipped {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({**report, "machine": machine_info()}, indent=2))
    else:
        print(f"{evaluate.markdown(report)}\n\nMeasured on: {describe()}")
    return 0
