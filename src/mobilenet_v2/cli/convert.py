"""`mobilenet-v2 convert`: the TF model to TFLite (full-integer INT8 calibrated, float16,
dynamic-range or float32), its preprocessing recorded in the file."""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from mobilenet_v2.calibration import CALIBRATION_SIZE, MIN_CALIBRATION_IMAGES
from mobilenet_v2.cli.parser import (
    UsageError,
    non_negative_int,
    positive_float,
    positive_int,
    refuse,
    weights_arg,
)
from mobilenet_v2.lite.tflite_file import IO_TYPES, QUANTIZATIONS
from mobilenet_v2.preprocess import RESIZE_MODES


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    convert = commands.add_parser(
        "convert",
        help="convert to TensorFlow Lite",
        description="Convert MobileNetV2 to TFLite; int8 = full-integer, calibrated.",
    )
    convert.add_argument("--output", required=True, metavar="PATH")
    convert.add_argument("--weights", default=None, help="as for classify")
    convert.add_argument(
        "--alpha", type=positive_float, default=None, help="width (1.0; a trained model's own)"
    )
    convert.add_argument(
        "--size", type=positive_int, default=None, help="input size (224; a trained model's own)"
    )
    convert.add_argument(
        "--quantize", choices=QUANTIZATIONS, default="int8", help="weights and activations (int8)"
    )
    convert.add_argument(
        "--io-type",
        choices=IO_TYPES,
        default=None,
        help="input/output type (int8 for --quantize int8, else float32). MediaPipe Tasks "
        "and most apps take uint8, not int8, input tensors: use --io-type uint8 for them",
    )
    convert.add_argument(
        "--per-tensor",
        action="store_true",
        help="int8 weights with one scale per tensor, not per output channel, for "
        "accelerators without per-channel support. Post-training, this leaves MobileNetV2 "
        "about 12%% top-1 (README): such targets need quantization-aware trained weights",
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
        "--seed", type=non_negative_int, default=None, metavar="K", help="calibration draw (0)"
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
        help="preprocessing recorded in the model and used for calibration (crop); "
        "mediapipe: calibrate for what MediaPipe Tasks feed the model",
    )
    return convert


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.tf.convert import convert_file

    if args.quantize != "int8":
        refuse(
            args,
            ("--calibration-dir", "--calibration-size", "--seed", "--force", "--per-tensor"),
            "applies to --quantize int8 (calibration)",
        )
    start = time.perf_counter()
    io_type = args.io_type or ("int8" if args.quantize == "int8" else "float32")
    if io_type != "float32" and args.quantize != "int8":
        raise UsageError(f"--io-type {io_type} needs --quantize int8 (integer I/O)")
    if args.per_tensor:
        print(
            f"{args.prog}: warning: post-training per-tensor weights leave MobileNetV2 about "
            "12% top-1 (README): per-tensor targets need quantization-aware trained weights",
            file=sys.stderr,
        )
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
        per_tensor=args.per_tensor,
        warn=lambda message: tqdm.write(f"{args.prog}: warning: {message}", file=sys.stderr),
    )
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
        f"{'float32' if args.quantize == 'none' else args.quantize}"
        f"{' per-tensor' if args.per_tensor else ''}, "
        f"{io_type} I/O) in {time.perf_counter() - start:.1f} s"
    )
    return 0
