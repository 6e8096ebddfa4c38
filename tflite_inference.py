#!/usr/bin/env python3
"""The seed's TFLite inference program: top-5 ImageNet classes of one image with LiteRT.

(Fewer than five rows when a quantized model scores the rest exactly 0: tied classes are not
listed in class-index order; a note on stderr says so.)

    python tflite_inference.py -i IMAGE [--input_mean M] [--input_std S] [--model M.tflite]
                               [--save_to DIR [--data_format channel_first|channel_last]
                                [--replace]]

Loads the model that `tflite_converter.py` saved (never reconverts) and feeds it the
preprocessing recorded inside it; the flags override. No TensorFlow is imported.
--save_to DIR also writes every interpreter tensor of this image as golden reference files
(`mobilenet-v2 dump`: text with headers, manifest.json, manifest.csv) into DIR; a golden set
already there is replaced only with --replace, and that is checked before any work.
"""

import os
import sys
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.cli import error, main
from mobilenet_v2.cli.parser import ArgumentParser, pixel_mean, pixel_std, thread_count
from mobilenet_v2.golden.dump import check_dump_output

PROG = "tflite_inference.py"
DEFAULT_MODEL = Path("models") / "mobilenet_v2_1.0_224_int8.tflite"

if __name__ == "__main__":
    # `bazel run` starts programs in their runfiles; paths on the command line are the caller's.
    os.chdir(os.environ.get("BUILD_WORKING_DIRECTORY", "."))
    parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True, help="image to classify")
    parser.add_argument("--input_mean", type=pixel_mean, default=None)
    parser.add_argument("--input_std", type=pixel_std, default=None)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help=f"({DEFAULT_MODEL})")
    parser.add_argument("--num_threads", type=thread_count, default=None)
    parser.add_argument("--save_to", default=None, metavar="DIR", help="dump every tensor here")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="with --save_to: replace the golden set already in DIR (never replaced otherwise)",
    )
    parser.add_argument(
        "--data_format",
        choices=("channel_first", "channel_last"),
        default="channel_first",
        help="layout of dumped 4-D tensors: NCHW (channel_first) or NHWC",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    args = parser.parse_args()
    if not Path(args.model).is_file():
        sys.exit(
            error(
                PROG,
                f"{args.model}: model not found; convert one with `python tflite_converter.py "
                "--save_to models --weights W --calibration_dir DIR`, or pass --model M.tflite",
            )
        )
    if args.replace and not args.save_to:
        parser.error("argument --replace: applies to --save_to")
    if args.save_to:
        try:
            check_dump_output(args.save_to, args.replace)  # before classifying, not after
        except MobileNetV2Error as exc:
            sys.exit(error(PROG, str(exc)))
    # The seed resizes the whole image (no crop), as tf_inference.py does.
    overrides = ["--resize", "stretch"]
    for flag, value in [("--input-mean", args.input_mean), ("--input-std", args.input_std)]:
        if value is not None:
            overrides += [flag, str(value)]
    argv = ["classify", args.image, "--model", args.model, "--top", "5", *overrides]
    if args.num_threads is not None:
        argv += ["--num-threads", str(args.num_threads)]
    debug = ["--debug"] if args.debug else []
    argv += debug
    status = main(argv, prog=PROG)
    if status == 0 and args.save_to:
        dump = ["dump", args.image, "--model", args.model, "--output", args.save_to]
        dump += ["--data-format", args.data_format, *overrides, *debug]
        dump += ["--replace"] if args.replace else []
        status = main(dump, prog=PROG)
    sys.exit(status)
