"""`mobilenet-v2 convert`: the TF model to TFLite (full-integer INT8 calibrated, float16,
dynamic-range or float32), its preprocessing recorded in the file."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tqdm import tqdm

from mobilenet_v2.base.calibration import CALIBRATION_SIZE, MIN_CALIBRATION_IMAGES
from mobilenet_v2.base.preprocess import RESIZE_MODES
from mobilenet_v2.cli.parser import (
    UsageError,
    input_size,
    non_negative_int,
    positive_int,
    refuse,
    weights_arg,
    width_multiplier,
)
from mobilenet_v2.lite.record import (
    INTEGER_QUANTIZATIONS,
    IO_TYPES,
    QUANTIZATIONS,
    STEPS,
    check_io_type,
    read_metadata,
)
from mobilenet_v2.lite.weight_grid import GridKept


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    convert = commands.add_parser(
        "convert",
        help="convert to TensorFlow Lite",
        description="Convert MobileNetV2 to TFLite; int8 = full-integer, calibrated (int16x8: "
        "with int16 activations). Weights from a quantized .tflite keep its quantization grid.",
    )
    convert.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="the .tflite file to write (required; written whole or not at all)",
    )
    convert.add_argument("--weights", default=None, help="as for classify")
    add_init_seed_flag(convert)
    convert.add_argument(
        "--alpha", type=width_multiplier, default=None, help="width (1.0; a trained model's own)"
    )
    convert.add_argument(
        "--size", type=input_size, default=None, help="input size (224; a trained model's own)"
    )
    add_conversion_flags(convert, quantize="int8")
    convert.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help="preprocessing recorded in the model and used for calibration (crop); "
        "mediapipe: calibrate for what MediaPipe Tasks feed the model",
    )
    return convert


def add_init_seed_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--init-seed",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="with --weights none: seeded random weights, the same for K on every run and "
        "platform, with non-trivial batch norm; recorded (0)",
    )


def init_seed(args: argparse.Namespace) -> int | None:
    """The seed of random weights (0 unless given); a seed for real weights is refused."""
    if weights_arg(args.weights) is not None:
        refuse(args, ("--init-seed",), "seeds random weights: it goes with --weights none")
        return None
    return args.init_seed or 0


def add_conversion_flags(parser: argparse.ArgumentParser, quantize: str | None) -> None:
    """How the TF model is converted: `convert`'s flags, which `dump` takes too (with
    `quantize=None`: no conversion unless --quantize is given)."""
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=quantize,
        help="weights and activations (int8). int16x8: int16 activations with int8 weights "
        "(A16W8: TFLite's 16x8 mode, for NPUs that run it, as Arm Ethos-U with Vela and "
        "Qualcomm's w8a16; close to float without retraining). LiteRT runs it with its built-in "
        "kernels: XNNPACK has no 16x8 path, so it is slower on CPUs than int8"
        if quantize
        else "convert the TF model first (as `convert` does), write it into DIR as "
        "model.tflite and dump it: a golden set with its model",
    )
    parser.add_argument(
        "--io-type",
        choices=IO_TYPES,
        default=None,
        help="input/output type (int8 for --quantize int8, int16 for int16x8, else float32). "
        "MediaPipe Tasks and most apps take uint8, not int8, input tensors: use --io-type uint8 "
        "for them",
    )
    parser.add_argument(
        "--per-tensor",
        action="store_true",
        help="int8 weights with one scale per tensor, not per output channel, for "
        "accelerators without per-channel support. Alone this leaves MobileNetV2 about 12%% "
        "top-1: use it with --equalize --bias-correction (README)",
    )
    rewrites = parser.add_argument_group(
        "rewrites of the float model before int8 conversion (Nagel et al., 2019; README)"
    )
    rewrites.add_argument(
        "--equalize",
        action="store_true",
        help="cross-layer equalization: rescale the channels of each pair of convolutions "
        "joined by an activation so their weight ranges match (the float model computes the "
        "same); what makes --per-tensor work. ReLU6 stays: channels it clips on the "
        "calibration images keep their scale",
    )
    rewrites.add_argument(
        "--relu",
        action="store_true",
        help="with --equalize: ReLU for the ReLU6 between those pairs, so that every channel "
        "is rescaled (the paper's choice; it cost the shared quantization-aware trained "
        "weights 18 points of float top-1)",
    )
    rewrites.add_argument(
        "--absorb-bias",
        action="store_true",
        help="high-bias absorption: move what a channel never goes below (mean - 3 std, on the "
        "calibration images) into the next 1x1 convolution's bias (no measured gain on the "
        "shared weights; README)",
    )
    rewrites.add_argument(
        "--bias-correction",
        action="store_true",
        help="subtract from each bias the mean error of its int8 weights on the calibration "
        "images (per tensor with --per-tensor, else per channel)",
    )
    parser.add_argument(
        "--calibration-dir",
        default=None,
        metavar="DIR",
        help="images to calibrate int8 and int16x8 on (default: imagenette2-160 val)",
    )
    parser.add_argument(
        "--calibration-size",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"images drawn from DIR ({CALIBRATION_SIZE}); with fewer readable ones a warning, "
        f"and below {MIN_CALIBRATION_IMAGES} a refusal unless --force",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="seeds this command's random choice: which --calibration-size images are drawn "
        "from the calibration directory (0; random weights are --init-seed's)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"calibrate on fewer than {MIN_CALIBRATION_IMAGES} images when DIR has no more",
    )


# What to do instead when the ImageNet weights cannot be downloaded, in the command's terms
# (`weights_arg`: the variable replaces the ImageNet weights).
WEIGHTS_HINT = (
    "pass --weights PATH (an .h5, .weights.h5, .keras or MobileNetV2 .tflite) or set "
    "$MOBILENET_V2_WEIGHTS to one"
)

# Each rewrite's flag, by its step (as the model's record names it).
REWRITE_FLAGS = {"--" + step.replace("_", "-"): step for step in STEPS}

# The flags of add_conversion_flags beside --quantize.
CONVERSION_FLAGS = (
    "--io-type",
    "--per-tensor",
    *REWRITE_FLAGS,
    "--calibration-dir",
    "--calibration-size",
    "--seed",
    "--force",
)


def conversion_options(args: argparse.Namespace) -> dict[str, Any]:
    """`convert_file`'s keyword arguments from the flags of `add_conversion_flags`, after
    refusing those that the chosen quantization ignores."""
    if args.quantize not in INTEGER_QUANTIZATIONS:
        refuse(
            args,
            ("--calibration-dir", "--calibration-size", "--seed", "--force"),
            "applies to --quantize int8 and int16x8 (calibration)",
        )
    if args.quantize != "int8":
        refuse(args, ("--per-tensor",), "applies to --quantize int8")
        refuse(args, tuple(REWRITE_FLAGS), "prepares the model for --quantize int8")
    steps = [step for flag, step in REWRITE_FLAGS.items() if getattr(args, step)]
    if "relu" in steps and "equalize" not in steps:
        raise UsageError("--relu prepares --equalize (every channel rescaled); alone it only "
                         "changes the model")  # fmt: skip
    io_type = args.io_type or INTEGER_QUANTIZATIONS.get(args.quantize, ("float32",))[0]
    try:
        check_io_type(args.quantize, io_type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.per_tensor and "equalize" not in steps:
        print(
            f"{args.prog}: warning: per-tensor weights without --equalize leave MobileNetV2 "
            "about 12% top-1 (README)",
            file=sys.stderr,
        )
    return {
        # None: a trained model's own width and size, else 1.0 and 224 (`convert_file`).
        "alpha": args.alpha,
        "size": args.size,
        "quantize": args.quantize,
        "io_type": io_type,
        "calibration_dir": args.calibration_dir,
        "calibration_size": args.calibration_size or CALIBRATION_SIZE,
        "seed": args.seed or 0,
        "preprocessing": {"resize": args.resize or "crop"},
        "force": args.force,
        "per_tensor": args.per_tensor,
        "steps": steps,
        "init_seed": init_seed(args),
        "weights_hint": WEIGHTS_HINT,
        "warn": lambda message: tqdm.write(f"{args.prog}: warning: {message}", file=sys.stderr),
    }


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.tf.convert import convert_file

    options = conversion_options(args)
    start = time.perf_counter()
    path = convert_file(args.output, weights_arg(args.weights), **options)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
        f"{'float32' if args.quantize == 'none' else args.quantize}"
        f"{' per-tensor' if args.per_tensor else ''}"
        f"{''.join(f' {flag}' for flag, step in REWRITE_FLAGS.items() if step in options['steps'])}"
        ", "
        f"{options['io_type']} I/O) in {time.perf_counter() - start:.1f} s"
    )
    kept = (read_metadata(path.read_bytes()) or {}).get("weight_grid")
    if kept:
        print(GridKept(**kept).summary())
    return 0
