"""`mobilenet-v2 trace`: every integer step behind one output element of a quantized model."""

from __future__ import annotations

import argparse

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.cli.parser import UsageError, add_input_flags, input_overrides, print_notes


def element_index(text: str) -> tuple[int, ...]:
    """--index: comma-separated integers (an argparse type: a bad one is a usage error)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 0,5,10,12, got {text!r}"
        ) from None


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    trace = commands.add_parser(
        "trace",
        help="explain one output element of a quantized model",
        description="Every integer step behind one element, with the NumPy reference: input "
        "window and weights, accumulator, bias, multiplier, shift, rounding, zero point, clamp.",
    )
    trace.add_argument("model", metavar="MODEL.tflite", help="the model to run")
    trace.add_argument("image", metavar="IMAGE", help="the image to run it on")
    trace.add_argument("--tensor", required=True, help="tensor name, dump file name or index")
    trace.add_argument(
        "--index",
        required=True,
        type=element_index,
        help="n,c,h,w for 4-D tensors (as the NCHW dumps), else n,c",
    )
    add_input_flags(trace)
    return trace


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.analysis.trace import find_tensor, nhwc_position, trace
    from mobilenet_v2.inference.classifier import load_for
    from mobilenet_v2.reference.interpreter import ReferenceInterpreter

    reference = ReferenceInterpreter(args.model)
    print_notes(args, [reference])
    tensor = find_tensor(reference, args.tensor)
    try:
        position = nhwc_position(reference.tensor(tensor).shape, args.index)
    except MobileNetV2Error as exc:  # too few indices, or outside the tensor: a flag value
        raise UsageError(f"--index: {exc}") from None
    x = load_for(reference, args.image, **input_overrides(args))
    values = reference.run(reference.quantize_input(x[None]))
    print("\n".join(trace(reference, values, tensor, position)))
    return 0
