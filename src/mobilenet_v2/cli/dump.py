"""`mobilenet-v2 dump`: every tensor of one inference, the golden reference files."""

from __future__ import annotations

import argparse
import json
import sys

from mobilenet_v2.analysis.dump import FORMATS
from mobilenet_v2.analysis.tensor_map import DATA_FORMATS
from mobilenet_v2.cli.parser import (
    LITERT_KERNELS,
    UsageError,
    add_input_flags,
    input_overrides,
    positive_float,
    positive_int,
    refuse,
    refuse_tf_model_flags,
    weights_arg,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    dump = commands.add_parser(
        "dump",
        help="write every tensor of one inference (golden reference)",
        description="Every tensor of one run: TFLite (--model, all interpreter tensors) or the "
        "float TF model (every layer output and weight), as text and/or .npy, or for test "
        "benches as raw little-endian .bin, $readmemh .hex or C headers, with manifest.json "
        "and manifest.csv.",
    )
    dump.add_argument("image", metavar="IMAGE")
    dump.add_argument("--output", required=True, metavar="DIR")
    dump.add_argument("--model", default=None, metavar="M.tflite", help="dump a TFLite model")
    dump.add_argument("--weights", default=None, help="dump the float TF model (as classify)")
    dump.add_argument("--alpha", type=positive_float, default=None, help="TF model (1.0)")
    dump.add_argument("--size", type=positive_int, default=None, help="TF model input (224)")
    dump.add_argument(
        "--format",
        choices=FORMATS,
        default="txt",
        help="txt (default), npy, both (txt and npy); bin: raw little-endian values; hex: one "
        "two's-complement hex value per line ($readmemh); c: a header per tensor and "
        "tensors.h including them all",
    )
    dump.add_argument(
        "--data-format",
        choices=DATA_FORMATS,
        default="channel_first",
        help="channel_first: activations NCHW, conv weights OIHW, depthwise C1HW; "
        "channel_last: TFLite's NHWC, OHWI, 1HWC",
    )
    dump.add_argument(
        "--kernels",
        choices=LITERT_KERNELS,
        default=None,
        help="LiteRT kernels: reference (golden arithmetic, the default) or optimized",
    )
    dump.add_argument(
        "--engine",
        choices=("litert", "reference"),
        default="litert",
        help="litert: LiteRT's interpreter; reference: the NumPy integer reference "
        "(mobilenet_v2.reference, bit-exact with LiteRT's reference kernels)",
    )
    add_input_flags(dump)
    return dump


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis import dump

    if args.model and args.weights:
        raise UsageError("give --model (TFLite) or --weights (TF model), not both")
    if args.engine == "reference" and not args.model:
        raise UsageError("--engine reference runs a quantized --model M.tflite")
    if args.engine == "reference" or not args.model:
        refuse(args, ("--kernels",), "chooses LiteRT's kernels (--model, --engine litert)")
    common = {"fmt": args.format, "data_format": args.data_format, **input_overrides(args)}
    if args.model:
        refuse_tf_model_flags(args)
        kernels = "numpy" if args.engine == "reference" else args.kernels or "reference"
        out = dump.dump_tflite(args.model, args.image, args.output, kernels=kernels, **common)
    else:
        weights = weights_arg(args.weights)
        size = args.size or 224
        out = dump.dump_keras(weights, args.image, args.output, args.alpha or 1.0, size, **common)
    manifest = json.loads((out / dump.MANIFEST).read_text())
    for note in manifest.get("metadata_notes", ()):
        print(f"{args.prog}: note: {note}", file=sys.stderr)
    files = sum(len(t["files"]) for t in manifest["tensors"])
    print(f"wrote {len(manifest['tensors'])} tensors ({files} files) and manifests to {out}")
    return 0
