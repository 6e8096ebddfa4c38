"""`mobilenet-v2 verify`: someone's layer outputs against a golden dump, first divergence
first; exit 0 when every tensor is within the tolerance, 1 otherwise (a test for their CI)."""

from __future__ import annotations

import argparse

from mobilenet_v2.cli.parser import non_negative_float, non_negative_int


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mobilenet_v2.golden.verify import DEFAULT_FLOAT_TOLERANCE, FORMATS, LAYOUTS

    verify = commands.add_parser(
        "verify",
        help="check your layer outputs against a golden dump",
        description="Compare tensors named like a dump's files (a directory of them, any "
        "subset, or one file with --tensor) with the golden dump: layout (transposes "
        "recognised), exact matches, max and mean |difference| in LSB (integer tensors) or "
        "relative (float), the first differing element with its n,c,h,w index and the trace "
        "command that explains it, in execution order with the first diverging layer "
        "marked. Exit status 0 when all are within the tolerance, 1 otherwise.",
    )
    verify.add_argument("golden", metavar="GOLDEN_DIR", help="a directory `dump` wrote")
    verify.add_argument("theirs", metavar="THEIRS", help="a directory of tensors, or one file")
    verify.add_argument(
        "--tensor", default=None, metavar="NAME", help="which tensor a single THEIRS file is"
    )
    verify.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="the layout of THEIRS's activations (weights follow: NCHW with OIHW and C1HW, "
        "NHWC with OHWI and 1HWC); auto: whichever most of their tensors are in (default: auto)",
    )
    verify.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="how THEIRS's files are written (auto: by extension .txt .npy .bin .hex .h); "
        "bin, hex and headerless txt take dtype and size from the golden tensor",
    )
    verify.add_argument(
        "--tolerance",
        type=non_negative_int,
        default=0,
        metavar="LSB",
        help="allowed |difference| of integer tensors in quantization steps (0)",
    )
    verify.add_argument(
        "--float-tolerance",
        type=non_negative_float,
        default=DEFAULT_FLOAT_TOLERANCE,
        metavar="R",
        help="allowed |difference| of float tensors relative to the tensor's largest "
        f"magnitude ({DEFAULT_FLOAT_TOLERANCE:g})",
    )
    verify.add_argument("--report", default=None, metavar="DIR", help="also write report.md/json")
    return verify


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.base.outputs import check_output_dir, markdown_table
    from mobilenet_v2.golden.verify import verify
    from mobilenet_v2.golden.verify_report import HEADERS, summary, table_rows, write_report

    if args.report:
        check_output_dir(args.report)  # before reading anything
    report = verify(
        args.golden,
        args.theirs,
        layout=args.layout,
        fmt=args.format,
        tolerance=args.tolerance,
        float_tolerance=args.float_tolerance,
        tensor=args.tensor,
    )
    print(markdown_table(HEADERS, table_rows(report), text_columns=4))
    print()
    print("\n".join(summary(report)))
    if args.report:
        print(f"wrote {write_report(report, args.report)}/report.md and report.json")
    return 0 if report.passed else 1
