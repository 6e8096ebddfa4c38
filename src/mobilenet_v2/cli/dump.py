"""`mobilenet-v2 dump`: every tensor of one inference, the golden reference files; with
--quantize, the TF model converted first and put into the set (a configuration's INT8
golden set in one command)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mobilenet_v2.analysis.tensor_map import DATA_FORMATS
from mobilenet_v2.cli.convert import (
    CONVERSION_FLAGS,
    add_conversion_flags,
    add_init_seed_flag,
    conversion_options,
    init_seed,
)
from mobilenet_v2.cli.parser import (
    LITERT_KERNELS,
    PROG,
    UsageError,
    add_input_flags,
    input_overrides,
    input_size,
    refuse,
    refuse_tf_model_flags,
    weights_arg,
    width_multiplier,
)
from mobilenet_v2.golden.dump import FORMATS
from mobilenet_v2.lite.record import INTEGER_QUANTIZATIONS

INTERPRETERS = ("litert", "reference")


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    dump = commands.add_parser(
        "dump",
        help="write every tensor of one inference (golden reference)",
        description="Every tensor of one run: TFLite (--model, all interpreter tensors) or the "
        "float TF model (every layer output and weight), as text and/or .npy, or for test "
        "benches as raw little-endian .bin, $readmemh .hex or C headers, with manifest.json "
        "and manifest.csv. With --quantize, the TF model is converted first (as `convert` "
        "does) and the set holds the model too (model.tflite).",
    )
    dump.add_argument("image", metavar="IMAGE", help="the one image to run")
    dump.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="a new or empty directory (required; written at the end; an error leaves it as it "
        "was)",
    )
    dump.add_argument(
        "--replace",
        action="store_true",
        help="replace DIR's earlier golden set (a folder with manifest.json; its files go), "
        "or write the set into a non-empty DIR beside the files it holds; without it, a "
        "non-empty DIR is refused: golden data is never overwritten by surprise (--force "
        "is --quantize's, for calibration)",
    )
    dump.add_argument("--model", default=None, metavar="M.tflite", help="dump a TFLite model")
    dump.add_argument("--weights", default=None, help="dump the float TF model (as classify)")
    add_init_seed_flag(dump)
    dump.add_argument("--alpha", type=width_multiplier, default=None, help="TF model (1.0)")
    dump.add_argument("--size", type=input_size, default=None, help="TF model input (224)")
    add_conversion_flags(dump, quantize=None)
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
        "channel_last: TFLite's NHWC, OHWI, 1HWC (default: channel_first)",
    )
    dump.add_argument(
        "--kernels",
        choices=LITERT_KERNELS,
        default=None,
        help="LiteRT kernels: reference (golden arithmetic, the default) or optimized",
    )
    dump.add_argument(
        "--interpreter",
        choices=INTERPRETERS,
        default="litert",
        help="what runs the .tflite model: litert: LiteRT's interpreter (its kernels: "
        "--kernels); reference: the NumPy integer reference (mobilenet_v2.reference, "
        "bit-exact with LiteRT's reference kernels) (default: litert)",
    )
    # The README's earlier spelling; --engine is classify's and evaluate's (default|ray).
    dump.add_argument(
        "--engine",
        dest="interpreter",
        choices=INTERPRETERS,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    add_input_flags(dump)
    return dump


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.golden import dump

    converts = args.quantize is not None
    if args.model and args.weights:
        raise UsageError("give --model (TFLite) or --weights (TF model), not both")
    if args.model and converts:
        raise UsageError("--quantize converts the TF model (--weights); --model is converted")
    if args.interpreter == "reference" and args.quantize not in (None, *INTEGER_QUANTIZATIONS):
        raise UsageError("--interpreter reference runs integer models: --quantize int8 or int16x8")
    if args.interpreter == "reference" and not (args.model or converts):
        raise UsageError("--interpreter reference runs a quantized --model M.tflite")
    if args.interpreter == "reference" or not (args.model or converts):
        refuse(args, ("--kernels",), "chooses LiteRT's kernels (--model, --interpreter litert)")
    if not converts:
        refuse(args, CONVERSION_FLAGS, "applies to --quantize (convert the TF model first)")
    # The exact command, as `mobilenet-v2` takes it (a wrapper script passes us its own
    # translation of what the user typed: this is the command that makes the set again).
    command = [PROG, *getattr(args, "argv", ())]
    common = {
        "replace": args.replace,
        "fmt": args.format,
        "data_format": args.data_format,
        "command": command,
        **input_overrides(args),
    }
    kernels = "numpy" if args.interpreter == "reference" else args.kernels or "reference"
    if args.model:
        refuse_tf_model_flags(args)
        refuse(args, ("--init-seed",), "seeds random weights: it goes with --weights none")
        out = dump.dump_tflite(args.model, args.image, args.output, kernels=kernels, **common)
    elif converts:
        out = _convert_and_dump(args, kernels, common)
    else:
        seed = init_seed(args)
        weights = weights_arg(args.weights)
        out = dump.dump_keras(
            weights, args.image, args.output, args.alpha, args.size, init_seed=seed, **common
        )
    manifest = json.loads((out / dump.MANIFEST).read_text())
    for note in manifest.get("metadata_notes", ()):
        print(f"{args.prog}: note: {note}", file=sys.stderr)
    files = sum(len(t["files"]) for t in manifest["tensors"])
    model = f", {dump.MODEL_FILE}" if converts else ""
    print(f"wrote {len(manifest['tensors'])} tensors ({files} files){model} and manifests to {out}")
    return 0


def _convert_and_dump(args: argparse.Namespace, kernels: str, common: dict) -> Path:
    """Convert as `convert` does, then dump that model into a set that includes it: the
    conversion goes to a temporary file, and the set is written whole or not at all."""
    from mobilenet_v2.golden import dump
    from mobilenet_v2.tf.convert import convert_file

    options = conversion_options(args)
    dump.check_dump_output(args.output, args.replace)  # before the slow conversion, not after
    with tempfile.TemporaryDirectory(prefix="mobilenet-v2-dump.") as tmp:
        model = convert_file(Path(tmp) / dump.MODEL_FILE, weights_arg(args.weights), **options)
        return dump.dump_tflite(
            model, args.image, args.output, kernels=kernels, include_model=True, **common
        )
