"""`mobilenet-v2 export`: the model in a form other software serves.

Each form is one flag of a required, mutually exclusive group (one mode per run), and one
function here: `--saved-model DIR`, a TensorFlow SavedModel for TF Serving, Vertex AI or
Beam; `--c-array FILE --model M.tflite`, a .tflite as a C array for microcontrollers
(TensorFlow Lite Micro), which never loads TensorFlow. The model flags default to None so
that each mode can refuse the ones it would ignore (`parser.refuse`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mobilenet_v2.base.outputs import SAVED_MODEL_FILE, check_new_directory
from mobilenet_v2.base.preprocess import BICUBIC_RESIZE_MODES
from mobilenet_v2.base.trained import model_spec
from mobilenet_v2.cli.parser import (
    UsageError,
    input_size,
    positive_int,
    refuse,
    weights_arg,
    width_multiplier,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    export = commands.add_parser(
        "export",
        help="export for serving (TensorFlow SavedModel) or microcontrollers (C array)",
        description="Export MobileNetV2 for serving. --saved-model: a TensorFlow SavedModel "
        "whose serving_default signature takes encoded images (JPEG, PNG, GIF, BMP bytes) "
        "and does the classify preprocessing in the graph; serving_preprocessed takes "
        "float32 [batch, size, size, 3]. Both return the top-k class_ids, synsets, names and "
        "scores. --c-array: a .tflite model (--model) as a 16-byte aligned C array with its "
        "length, and a header beside it, as TensorFlow Lite Micro loads models.",
    )
    mode = export.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--saved-model",
        metavar="DIR",
        help="write a SavedModel to DIR (a new or empty directory; written whole, atomically)",
    )
    mode.add_argument(
        "--c-array",
        metavar="FILE",
        help="write --model as a C/C++ source FILE (model.cc: `alignas(16) const unsigned char "
        "model[]`, `model_len`) and FILE's .h beside it",
    )
    export.add_argument(
        "--model", default=None, metavar="M.tflite", help="the .tflite model (--c-array)"
    )
    export.add_argument("--weights", default=None, help="as for classify")
    export.add_argument("--alpha", type=width_multiplier, default=None, help="width (1.0)")
    export.add_argument("--size", type=input_size, default=None, help="input size (224)")
    export.add_argument(
        "--top",
        type=positive_int,
        default=None,
        metavar="K",
        help="classes per image (5, or all of fewer)",
    )
    export.add_argument(
        "--resize",
        choices=BICUBIC_RESIZE_MODES,  # what the graph reproduces
        default=None,
        help="the preprocessing built into serving_default, as for classify (crop)",
    )
    export.add_argument(
        "--replace",
        action="store_true",
        help="replace DIR when it holds an earlier SavedModel (other non-empty directories "
        "are never replaced); without it, a non-empty DIR is refused",
    )
    # The README's earlier spelling: --force is convert's (calibrate on fewer images).
    export.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    return export


def run(args: argparse.Namespace) -> int:
    if args.c_array is not None:
        return c_array(args)
    args.replace = args.replace or args.force  # --force: --replace's earlier spelling
    return saved_model(args)


# What --c-array would ignore: it copies a finished .tflite, it builds no model.
_SAVED_MODEL_FLAGS = ("--weights", "--alpha", "--size", "--top", "--resize", "--replace", "--force")


def c_array(args: argparse.Namespace) -> int:
    """The bytes of --model, unchanged, as C source, once our reader and LiteRT accept the
    file (no TensorFlow)."""
    from mobilenet_v2.golden.model_array import write_model_array

    refuse(args, _SAVED_MODEL_FLAGS, "applies to --saved-model (--c-array copies --model as is)")
    if not args.model:
        raise UsageError("--c-array needs --model M.tflite")
    source, header = write_model_array(args.model, args.c_array)
    size = source.stat().st_size / 1e6
    print(f"wrote {source} ({size:.1f} MB of C source) and {header} from {args.model}")
    return 0


def saved_model(args: argparse.Namespace) -> int:
    refuse(args, ("--model",), "applies to --c-array (--saved-model builds from --weights)")
    weights = weights_arg(args.weights)
    spec = model_spec(weights, args.alpha, args.size)  # a trained model's own by default
    top = min(5, spec.classes) if args.top is None else args.top  # as classify ranks
    if top > spec.classes:
        raise UsageError(f"--top {top}: the model has {spec.classes} classes")
    # Before TensorFlow loads: a path that cannot be written fails in a fraction of a second.
    check_new_directory(args.saved_model, args.replace, SAVED_MODEL_FILE)
    from mobilenet_v2.tf.saved_model import export_saved_model

    start = time.perf_counter()
    path = export_saved_model(
        args.saved_model,
        weights=weights,
        alpha=spec.alpha,
        size=spec.size,
        top=top,
        preprocessing={"resize": args.resize} if args.resize else None,
        force=args.replace,
    )
    megabytes = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6
    print(
        f"wrote {path} (SavedModel, {megabytes:.1f} MB; signatures serving_default: image "
        f"bytes, serving_preprocessed: float32 images; top {top}) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0
