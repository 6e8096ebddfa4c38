"""What the subcommands share: the parser with one-line errors, argument types, the model and
preprocessing flags, and the checks that refuse flags the chosen engine would ignore."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.preprocess import RESIZE_MODES, check_normalization
from mobilenet_v2.inference.models import SameModelTwiceError, load_models, model_notes

PROG = "mobilenet-v2"
LITERT_KERNELS = ("reference", "optimized")
MAX_THREADS = 256
# Bounds of --alpha and --size, so that a mistyped value gets a one-line error rather than a
# process killed for memory (or, for a huge alpha, channel counts TensorFlow cannot hold).
# The float model's dump keeps about 1.6 kB per input pixel at alpha 1 (2048: 6.5 GB), and
# its weights grow with alpha squared (10: 1.4 GB); the paper's table ends at 1.4 and 224.
MAX_ALPHA = 10.0
MAX_SIZE = 2048


def default_weights() -> str:
    return os.environ.get("MOBILENET_V2_WEIGHTS") or "imagenet"


def weights_arg(value: str | None) -> str | None:
    """--weights as the model takes it: unset or `imagenet` = $MOBILENET_V2_WEIGHTS, else
    imagenet (the variable replaces the ImageNet weights, named or not); `none` (any case,
    also in the variable) = random initialization, as `weights=None` in Python. A file
    literally named `none` is `./none`."""
    if not value or value == "imagenet":
        value = default_weights()
    return None if value.lower() == "none" else value


def _int_at_least(minimum: int, name: str) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        wanted = f"must be an integer >= {minimum}, got {text}"
        try:
            value = int(text)
        except ValueError:  # argparse would say "invalid <function name> value"
            raise argparse.ArgumentTypeError(wanted) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(wanted)
        return value

    parse.__name__ = name  # what a traceback or a debugger shows
    return parse


positive_int = _int_at_least(1, "positive_int")


def thread_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_THREADS:  # LiteRT cannot start that many threads (it crashes trying)
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {text}")
    return value


non_negative_int = _int_at_least(0, "non_negative_int")


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:  # argparse would say "invalid <function name> value"
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def stall_seconds(text: str) -> float:
    """--stall-timeout: a positive number of seconds, at most a week."""
    value = positive_float(text)
    if value > 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be at most a week (604800 s), got {text}")
    return value


def width_multiplier(text: str) -> float:
    """--alpha: a positive number up to MAX_ALPHA."""
    value = positive_float(text)
    if value > MAX_ALPHA:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ALPHA:g}, got {text}")
    return value


def input_size(text: str) -> int:
    """--size: a positive integer up to MAX_SIZE (the model itself refuses below 32)."""
    value = positive_int(text)
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SIZE}, got {text}")
    return value


def pixel_mean(text: str) -> float:
    value = finite_float(text)
    try:
        check_normalization(value, 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a pixel value in [0, 255], got {text}") from None
    return value


def pixel_std(text: str) -> float:
    value = finite_float(text)
    try:
        check_normalization(127.5, value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive number that float32 can divide by, got {text}"
        ) from None
    return value


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """Preprocessing overrides; unset, each model's own (recorded) preprocessing applies."""
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="crop: the central 87.5%% square, then resize (ImageNet evaluation); stretch: "
        "the whole image, aspect ratio ignored; mediapipe: the whole image as MediaPipe "
        "Tasks resize it (bilinear, no antialiasing) (default: what a .tflite model records, "
        "else crop)",
    )
    parser.add_argument(
        "--input-mean",
        type=pixel_mean,
        default=None,
        metavar="M",
        help="input = (pixel - M) / S (default: our record in the model; else, for an "
        "8-bit input, its exact pixel grid (the fixture's: 128); else the model's standard "
        "metadata; else 127.5)",
    )
    parser.add_argument(
        "--input-std",
        type=pixel_std,
        default=None,
        metavar="S",
        help="a positive number (default: our record in the model; else 1/scale of an "
        "8-bit input; else the model's standard metadata; else 127.5)",
    )


def add_model_flags(parser: argparse.ArgumentParser, several: bool = False) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        help="TF model weights: 'imagenet' (official Keras file, downloaded once; "
        "$MOBILENET_V2_WEIGHTS, when set, names the file that replaces it), an "
        ".h5/.weights.h5/.keras file, a MobileNetV2 .tflite, or 'none' (random "
        "initialization) (default: imagenet)",
    )
    parser.add_argument(
        "--alpha", type=width_multiplier, default=None, help="TF model width multiplier (1.0)"
    )
    parser.add_argument(
        "--model",
        action="append" if several else "store",
        default=None,
        metavar="M.tflite",
        help="run a TFLite model with LiteRT (no TensorFlow)"
        + (" (repeatable)" if several else ""),
    )
    parser.add_argument(
        "--num-threads",
        type=thread_count,
        default=None,
        help="LiteRT threads (default: classify and evaluate use every CPU, one per Ray "
        "worker with --engine ray; elsewhere LiteRT's default)",
    )
    parser.add_argument(
        "--xnnpack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="LiteRT's XNNPACK delegate (default: on; off = TFLite's built-in kernels). "
        "int16x8 models always run on the built-in kernels: XNNPACK has no 16x8 path",
    )


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    """Where the work runs: this process, or Ray Data (local, or a cluster)."""
    parser.add_argument(
        "--engine",
        choices=("default", "ray"),
        default="default",
        help="default: this process, decoding the next batch while the current one is "
        "classified; ray: Ray Data (a local Ray that starts and stops itself, or the cluster "
        "at --ray-address), one inference worker per CPU (default: default)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="with --engine ray: the cluster to run on, as `ray start --head` prints it "
        "(default: $RAY_ADDRESS, else a local Ray)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --engine ray: at most N inference workers, each holding one CPU, "
        "loading the model once, and reading, decoding and classifying its batches, the "
        "model on one thread unless --num-threads says otherwise (default: one per CPU of "
        "the cluster)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=stall_seconds,
        default=None,
        metavar="SECONDS",
        help="with --engine ray: end the job, exit 1, when no batch finishes for this long "
        "(a cluster busy with other jobs, a node gone; default: 300)",
    )

    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        metavar="B",
        help="images per batch (default: 32; 128 with --engine ray, where every batch costs "
        "a scheduling round)",
    )
    parser.add_argument(
        "--draft",
        action="store_true",
        help="decode JPEGs at least twice as large as the crop needs at 1/2, 1/4 or 1/8 "
        "scale (libjpeg's DCT scaling): 2.5x faster on 2000 x 1500 photos (Intel Xeon), but "
        "top-1 changes on about 1.2%% of them (docs/benchmarks.md), so off by default",
    )


def check_engine_flags(args: argparse.Namespace) -> None:
    """Refuse what the chosen engine would ignore; settle the engine's batch size."""
    if args.engine != "ray":
        refuse(args, ("--ray-address", "--workers", "--stall-timeout"), "applies to --engine ray")
    if args.batch_size is None:
        from mobilenet_v2.inference.batches import default_batch_size

        args.batch_size = default_batch_size(args.engine)


class UsageError(MobileNetV2Error):
    """Flags that cannot go together: reported like argparse's own errors, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog command: error: argument --x: why (see --help)`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def refuse(args: argparse.Namespace, flags: Sequence[str], reason: str) -> None:
    """One-line error for a flag the user set that the chosen engine or mode would ignore."""
    for flag in flags:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None and value is not False:  # 0 is a value the user typed
            raise UsageError(f"{flag} {reason}")


def refuse_tf_model_flags(args: argparse.Namespace) -> None:
    """--alpha/--size shape the TF model; a .tflite model fixes both in its file."""
    refuse(
        args,
        ("--alpha", "--size"),
        "sets the TF model (--weights); a .tflite model's width and input size are fixed "
        "in the file",
    )


def refuse_xnnpack(args: argparse.Namespace, where: str) -> None:
    if args.xnnpack is not None:  # True, or False for --no-xnnpack: both typed by the user
        raise UsageError(f"{'--xnnpack' if args.xnnpack else '--no-xnnpack'} applies to {where}")


def model_paths(args: argparse.Namespace) -> list[str]:
    """The --model paths (one or several), after refusing flags no chosen engine uses."""
    models = args.model if isinstance(args.model, list) else [args.model] if args.model else []
    if models and not args.weights:
        refuse_tf_model_flags(args)
    if not models:
        refuse(args, ("--num-threads",), "applies to LiteRT (--model)")
        refuse_xnnpack(args, "LiteRT (--model)")
    return models


def load_classifiers(args: argparse.Namespace, models: list[str]) -> list:
    """The TFLite `models` (from `model_paths`), else (or also, with --weights) the TF model,
    as `mobilenet_v2.inference.models.load_models` loads them; its notes printed."""
    try:
        return load_models(
            models,
            tf_weights=weights_arg(args.weights),
            tf_model=bool(args.weights),
            alpha=args.alpha,
            size=getattr(args, "size", None),
            num_threads=args.num_threads,
            xnnpack=args.xnnpack,
            engine=getattr(args, "engine", ""),
            note=lambda note: print_note(args, note),
        )
    except SameModelTwiceError as exc:
        raise UsageError(str(exc)) from None


def print_notes(args: argparse.Namespace, models: list) -> None:
    """What reading the models' metadata found worth saying (defaults used, labels ignored)."""
    for note in model_notes(models):
        print_note(args, note)


def print_note(args: argparse.Namespace, note: str) -> None:
    print(f"{args.prog}: note: {note}", file=sys.stderr)


def input_overrides(args: argparse.Namespace) -> dict:
    return {"resize": args.resize, "mean": args.input_mean, "std": args.input_std}
