"""`mobilenet-v2 export`: the model in a form other software serves.

Each form is one flag of a required, mutually exclusive group (one mode per run), and one
function here: `--saved-model DIR`, a TensorFlow SavedModel for TF Serving, Vertex AI or
Beam. Another form (say `--c-array FILE --model M.tflite`, a .tflite as a C array for
microcontrollers) is one more flag in the group and one more function; the model flags
default to None so that such a mode can refuse the ones it would ignore (`parser.refuse`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mobilenet_v2.cli.parser import UsageError, positive_float, positive_int, weights_arg
from mobilenet_v2.labels import imagenet_classes
from mobilenet_v2.outputs import SAVED_MODEL_FILE, check_new_directory
from mobilenet_v2.preprocess import BICUBIC_RESIZE_MODES


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    export = commands.add_parser(
        "export",
        help="export for serving (TensorFlow SavedModel)",
        description="Export MobileNetV2 for serving. --saved-model: a TensorFlow SavedModel "
        "whose serving_default signature takes encoded images (JPEG, PNG, GIF, BMP bytes) "
        "and does the classify preprocessing in the graph; serving_preprocessed takes "
        "float32 [batch, size, size, 3]. Both return the top-k class_ids, synsets, names and "
        "scores.",
    )
    mode = export.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--saved-model",
        metavar="DIR",
        help="write a SavedModel to DIR (a new or empty directory; written whole, atomically)",
    )
    export.add_argument("--weights", default=None, help="as for classify")
    export.add_argument("--alpha", type=positive_float, default=None, help="width (1.0)")
    export.add_argument("--size", type=positive_int, default=None, help="input size (224)")
    export.add_argument(
        "--top", type=positive_int, default=None, metavar="K", help="classes per image (5)"
    )
    export.add_argument(
        "--resize",
        choices=BICUBIC_RESIZE_MODES,  # what the graph reproduces
        default=None,
        help="the preprocessing built into serving_default, as for classify (crop)",
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="replace DIR when it holds an earlier SavedModel (other non-empty directories "
        "are never replaced)",
    )
    return export


def run(args: argparse.Namespace) -> int:
    return saved_model(args)


def saved_model(args: argparse.Namespace) -> int:
    top = 5 if args.top is None else args.top
    classes = len(imagenet_classes())
    if top > classes:
        raise UsageError(f"--top {top}: the model has {classes} classes")
    # Before TensorFlow loads: a path that cannot be written fails in a fraction of a second.
    check_new_directory(args.saved_model, args.force, SAVED_MODEL_FILE)
    from mobilenet_v2.tf.saved_model import export_saved_model

    start = time.perf_counter()
    path = export_saved_model(
        args.saved_model,
        weights=weights_arg(args.weights),
        alpha=args.alpha or 1.0,
        size=args.size or 224,
        top=top,
        preprocessing={"resize": args.resize} if args.resize else None,
        force=args.force,
    )
    megabytes = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6
    print(
        f"wrote {path} (SavedModel, {megabytes:.1f} MB; signatures serving_default: image "
        f"bytes, serving_preprocessed: float32 images; top {top}) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0
