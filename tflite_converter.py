#!/usr/bin/env python3
"""The seed's converter: MobileNetV2 1.0/224 to a calibrated full-integer INT8 TFLite model.

    python tflite_converter.py --save_to DIR [--weights W] [--calibration_dir DIR]

Writes DIR/mobilenet_v2_1.0_224_quant.tflite. A thin wrapper over `mobilenet-v2 convert`.
"""

import argparse
import os
import sys
from pathlib import Path

from mobilenet_v2.cli import main

MODEL_NAME = "mobilenet_v2_1.0_224_quant.tflite"

if __name__ == "__main__":
    # `bazel run` starts programs in their runfiles; paths on the command line are the caller's.
    os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY", "."))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save_to", default="models", help="output directory (models)")
    parser.add_argument("--weights", default=None, help="weights file (.h5, .keras, .tflite)")
    parser.add_argument("--calibration_dir", default=None, help="calibration images")
    args = parser.parse_args()
    Path(args.save_to).mkdir(parents=True, exist_ok=True)
    argv = ["convert", "--output", str(Path(args.save_to) / MODEL_NAME)]
    if args.weights:
        argv += ["--weights", args.weights]
    if args.calibration_dir:
        argv += ["--calibration-dir", args.calibration_dir]
    sys.exit(main(argv))
