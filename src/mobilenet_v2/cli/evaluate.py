"""`mobilenet-v2 evaluate`: top-1/top-5 of models side by side on a labelled directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.preprocess import RESIZE_MODES
from mobilenet_v2.base.sources import is_url
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


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    evaluate = commands.add_parser(
        "evaluate",
        help="top-1/top-5 of models side by side",
        description="Accuracy on a labelled directory: synsets in file or folder names, or, "
        "for a model trained on your classes, one sub-folder per class named as its labels.",
    )
    evaluate.add_argument(
        "directory",
        metavar="DIR|URL",
        help="labelled images: synsets in file or folder names, or a sub-folder per class",
    )
    add_model_flags(evaluate, several=True)
    evaluate.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="crop: the central 87.5%% square, then resize (ImageNet evaluation); stretch: "
        "the whole image, aspect ratio ignored; mediapipe: the whole image as MediaPipe "
        "Tasks resize it (default: what each .tflite model records, else crop)",
    )
    evaluate.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="a class-balanced sample of N images, drawn with --seed (all)",
    )
    evaluate.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="seeds this command's random choice: which images the --limit sample draws (0)",
    )
    add_engine_flags(evaluate)
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print the report and the machine as JSON (default: a Markdown table)",
    )
    return evaluate


def own_labels(classifiers: list) -> tuple[str, ...] | None:
    """The classes of models trained on a user's classes (the same for all of them), or None
    for ImageNet models, whose images are labelled by synsets."""
    found = set()
    for c in classifiers:
        labels = getattr(c, "labels", None)
        # ImageNet's (no labels, or its 1000 names: `train` refuses 1000 classes of its own)
        found.add(None if labels is None or len(labels) == 1000 else tuple(labels))
    if len(found) > 1:
        raise MobileNetV2Error("the models name different classes: evaluate them separately")
    return found.pop()


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis import evaluate
    from mobilenet_v2.base.machine import describe, machine_info

    models = model_paths(args)  # flags first: before any image is listed or model loaded
    check_engine_flags(args)
    if args.limit is None:
        refuse(args, ("--seed",), "draws the --limit sample; without --limit all images count")
    if not is_url(args.directory) and not Path(args.directory).is_dir():  # before any model
        evaluate.labelled_images(args.directory)  # says what is wrong with it
    classifiers = load_classifiers(args, models)
    labels = own_labels(classifiers)
    if labels is None:
        images = evaluate.labelled_images(args.directory, args.limit, args.seed or 0)
    else:
        images = evaluate.folder_labelled_images(args.directory, labels, args.limit, args.seed or 0)
    report = evaluate.evaluate(
        classifiers,
        images,
        args.batch_size,
        engine=args.engine,
        ray_address=args.ray_address,
        workers=args.workers,
        stall_timeout=args.stall_timeout,
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
