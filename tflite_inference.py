#!/usr/bin/env python3
"""The seed's TFLite inference program: top-5 ImageNet classes of one image with LiteRT.

    python tflite_inference.py -i IMAGE [--input_mean M] [--input_std S] [--model M.tflite]
                               [--save_to DIR [--data_format channel_first|channel_last]]

Loads the model that `tflite_converter.py` saved (never reconverts) and feeds it the
preprocessing recorded inside it; the flags override. No TensorFlow is imported.
--save_to DIR also writes every interpreter tensor of this image as golden reference files
(`mobilenet-v2 dump`: text with headers, manifest.json, manifest.csv) into DIR.
"""

import argparse
import os
import sys
from pathlib import Path

from mobilenet_v2.cli import main

DEFAULT_MODEL = Path("models") / "mobilenet_v2_1.0_224_quant.tflite"

if __name__ == "__main__":
    # `bazel run` starts programs in their runfiles; paths on the command line are the caller's.
    os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY", "."))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True, help="image to classify")
    parser.add_argument("--input_mean", type=float, default=None)
    parser.add_argument("--input_std", type=float, default=None)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help=f"({DEFAULT_MODEL})")
    parser.add_argument("--num_threads", type=int, default=None)
    parser.add_argument("--save_to", default=None, metavar="DIR", help="dump every tensor here")
    parser.add_argument(
        "--data_format",
        choices=("channel_first", "channel_last"),
        default="channel_first",
        help="layout of dumped 4-D tensors: NCHW (channel_first) or NHWC",
    )
    args = parser.parse_args()
    if not Path(args.model).is_file():
        print(
            f"tflite_inference.py: error: {args.model}: model not found; make it with "
            "`python tflite_converter.py --save_to models` or pass --model M.tflite",
            file=sys.stderr,
        )
        sys.exit(1)
    # The seed resizes the whole image (no crop), as tf_inference.py does.
    overrides = ["--resize", "stretch"]
    for flag, value in [("--input-mean", args.input_mean), ("--input-std", args.input_std)]:
        if value is not None:
            overrides += [flag, str(value)]
    argv = ["classify", args.image, "--model", args.model, "--top", "5", *overrides]
    if args.num_threads is not None:
        argv += ["--num-threads", str(args.num_threads)]
    status = main(argv)
    if status == 0 and args.save_to:
        dump = ["dump", args.image, "--model", args.model, "--output", args.save_to]
        status = main([*dump, "--data-format", args.data_format, *overrides])
    sys.exit(status)
