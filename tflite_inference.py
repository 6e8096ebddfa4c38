#!/usr/bin/env python3
"""The seed's TFLite inference program: top-5 ImageNet classes of one image with LiteRT.

    python tflite_inference.py -i IMAGE [--input_mean M] [--input_std S] [--model M.tflite]

Loads the model that `tflite_converter.py` saved (never reconverts) and feeds it the
preprocessing recorded inside it; the flags override. No TensorFlow is imported.
"""

import argparse
import sys
from pathlib import Path

from mobilenet_v2.cli import main

DEFAULT_MODEL = Path("models") / "mobilenet_v2_1.0_224_quant.tflite"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True, help="image to classify")
    parser.add_argument("--input_mean", type=float, default=None)
    parser.add_argument("--input_std", type=float, default=None)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help=f"({DEFAULT_MODEL})")
    parser.add_argument("--num_threads", type=int, default=None)
    args = parser.parse_args()
    if not Path(args.model).is_file():
        print(
            f"tflite_inference.py: error: {args.model}: model not found; make it with "
            "`python tflite_converter.py --save_to models` or pass --model M.tflite",
            file=sys.stderr,
        )
        sys.exit(1)
    # The seed resizes the whole image (no crop), as tf_inference.py does.
    argv = ["classify", args.image, "--model", args.model, "--top", "5", "--resize", "stretch"]
    for flag, value in [
        ("--input-mean", args.input_mean),
        ("--input-std", args.input_std),
        ("--num-threads", args.num_threads),
    ]:
        if value is not None:
            argv += [flag, str(value)]
    sys.exit(main(argv))
