#!/usr/bin/env python3
"""The seed's TensorFlow inference program: top-5 ImageNet classes of one image.

    python tf_inference.py -i IMAGE [--input_mean 127.5] [--input_std 127.5] [--weights W]

A thin wrapper over `mobilenet-v2 classify` with the seed's flags and its preprocessing
(the whole image resized to 224x224, no crop).
"""

import os
import sys

from mobilenet_v2.cli import main
from mobilenet_v2.cli.parser import ArgumentParser, pixel_mean, pixel_std

PROG = "tf_inference.py"

if __name__ == "__main__":
    # `bazel run` starts programs in their runfiles; paths on the command line are the caller's.
    os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY", "."))
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True, help="image to classify")
    parser.add_argument("--input_mean", type=pixel_mean, default=127.5)
    parser.add_argument("--input_std", type=pixel_std, default=127.5)
    parser.add_argument(
        "--weights", default=None, help="weights file (.h5, .keras, .tflite) or 'none'"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    args = parser.parse_args()
    argv = ["classify", args.image, "--resize", "stretch", "--top", "5"]
    argv += ["--input-mean", str(args.input_mean), "--input-std", str(args.input_std)]
    if args.weights:
        argv += ["--weights", args.weights]
    if args.debug:
        argv.append("--debug")
    sys.exit(main(argv, prog=PROG))
