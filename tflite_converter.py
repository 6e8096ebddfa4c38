#!/usr/bin/env python3
"""The seed's converter: MobileNetV2 1.0/224 to a calibrated full-integer INT8 TFLite model.

    python tflite_converter.py --save_to DIR [--weights W] [--calibration_dir DIR]
                               [--calibration_size N] [--force]

Writes DIR/mobilenet_v2_1.0_224_int8.tflite (DIR is created if missing; its parent must
exist). A thin wrapper over `mobilenet_v2.tf.convert.convert_file`, as `mobilenet-v2 convert`
runs it, with the seed's flags.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from mobilenet_v2.base.calibration import CALIBRATION_SIZE
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.outputs import check_output_dir
from mobilenet_v2.cli import error, run_reporting
from mobilenet_v2.cli.convert import WEIGHTS_HINT  # the same --weights flag
from mobilenet_v2.cli.parser import ArgumentParser, positive_int, weights_arg

PROG = "tflite_converter.py"
# Our int8 model: not the TF-hosted uint8 mobilenet_v2_1.0_224_quant.tflite, a different file.
MODEL_NAME = "mobilenet_v2_1.0_224_int8.tflite"
CALIBRATION_HINT = "pass --calibration_dir DIR with your own images"


def warn(message: str) -> None:
    tqdm.write(f"{PROG}: warning: {message}", file=sys.stderr)


def convert(args: argparse.Namespace, output: Path) -> int:
    from mobilenet_v2.tf.convert import convert_file  # TensorFlow loads here

    weights = weights_arg(args.weights)  # unset: $MOBILENET_V2_WEIGHTS, else imagenet
    start = time.perf_counter()
    path = convert_file(
        output,
        weights,
        calibration_dir=args.calibration_dir,
        calibration_size=args.calibration_size or CALIBRATION_SIZE,
        preprocessing={"resize": "crop"},
        force=args.force,
        warn=warn,
        init_seed=None if weights is not None else 0,
        calibration_hint=CALIBRATION_HINT,
        size_flag="--calibration_size",
        weights_hint=WEIGHTS_HINT,
    )
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.1f} MB, int8, int8 I/O) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    # `bazel run` starts programs in their runfiles; paths on the command line are the caller's.
    os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY", "."))
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--save_to", default="models", help="output directory (models)")
    parser.add_argument(
        "--weights", default=None, help="weights file (.h5, .keras, .tflite) or 'none'"
    )
    parser.add_argument("--calibration_dir", default=None, help="calibration images")
    parser.add_argument(
        "--calibration_size", type=positive_int, default=None, help="images drawn (256)"
    )
    parser.add_argument(
        "--force", action="store_true", help="calibrate on fewer than 32 images if need be"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    args = parser.parse_args()
    save_to = Path(args.save_to)
    try:
        check_output_dir(save_to)  # before any work: the same rule as `mobilenet-v2 dump`
    except MobileNetV2Error as exc:
        sys.exit(error(PROG, str(exc)))
    created = not save_to.exists()
    save_to.mkdir(exist_ok=True)
    status = run_reporting(lambda: convert(args, save_to / MODEL_NAME), PROG, args.debug)
    if status and created and not any(save_to.iterdir()):
        save_to.rmdir()  # leave nothing behind that this run made
    sys.exit(status)
