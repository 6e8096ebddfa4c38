#!/usr/bin/env python3
"""The seed's converter: MobileNetV2 1.0/224 to a calibrated full-integer INT8 TFLite model.

    python tflite_converter.py --save_to DIR [--weights W] [--calibration_dir DIR]
                               [--calibration_size N] [--force]

Writes DIR/mobilenet_v2_1.0_224_int8.tflite (DIR is created if missing; its parent must
exist). A thin wrapper over `mobilenet-v2 convert`.
"""

import os
import sys
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.outputs import check_output_dir
from mobilenet_v2.cli import error, main
from mobilenet_v2.cli.parser import ArgumentParser, positive_int

PROG = "tflite_converter.py"
# Our int8 model: not the TF-hosted uint8 mobilenet_v2_1.0_224_quant.tflite, a different file.
MODEL_NAME = "mobilenet_v2_1.0_224_int8.tflite"
SPELLINGS = {"--calibration-dir": "--calibration_dir", "--calibration-size": "--calibration_size"}

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
    argv = ["convert", "--output", str(save_to / MODEL_NAME)]
    for flag, value in [
        ("--weights", args.weights),
        ("--calibration-dir", args.calibration_dir),
        ("--calibration-size", args.calibration_size),
    ]:
        if value is not None:
            argv += [flag, str(value)]
    if args.force:
        argv.append("--force")
    if args.debug:
        argv.append("--debug")
    status = main(argv, prog=PROG, spellings=SPELLINGS)
    if status and created and not any(save_to.iterdir()):
        save_to.rmdir()  # leave nothing behind that this run made
    sys.exit(status)
