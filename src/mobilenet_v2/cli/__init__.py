"""The `mobilenet-v2` command: `main` dispatches to one module per subcommand.

Errors in the user's input (files, flags, weights) are printed as one line naming the file,
with exit status 1; flags that cannot go together, exit status 2; anything unexpected is a bug:
a short line, exit status 70, and the traceback with --debug. Never a traceback otherwise.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from mobilenet_v2.base import __version__
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.cli import (
    benchmark,
    classify,
    compare,
    convert,
    dump,
    evaluate,
    export,
    inspect,
    trace,
    train,
    verify,
)
from mobilenet_v2.cli.parser import PROG, ArgumentParser, UsageError

COMMANDS = (
    classify,
    train,
    convert,
    export,
    evaluate,
    dump,
    verify,
    inspect,
    compare,
    trace,
    benchmark,
)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description="MobileNetV2 from TensorFlow low-level ops.")
    parser.add_argument(
        "--version", action="version", version=f"{prog} {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = command.add_parser(commands)
        sub.add_argument(
            "--debug", action="store_true", help="show the traceback of an unexpected error"
        )
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run one command; `prog` names the program in its messages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.prog = prog
    args.argv = argv  # as typed: what a golden set records to be made again
    return run_reporting(lambda: args.run(args), prog, args.debug, f"{prog} {args.command}")


def run_reporting(
    action: Callable[[], int], prog: str, debug: bool = False, usage_prog: str | None = None
) -> int:
    """`action()`'s exit status, its errors reported as every program of the package reports
    them: a UsageError as `usage_prog: error: ... (see --help)`, status 2; the user's input
    (ours, or the system's about a file the user named) as `prog: error: ...`, status 1; a
    closed pipe quietly; anything else as a bug (`_unexpected`). The seed scripts run their
    work through it too."""
    try:
        return action()
    except UsageError as exc:
        print(f"{usage_prog or prog}: error: {exc} (see --help)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a program killed by SIGPIPE does.
        _detach_stdout()
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 130
    except (MobileNetV2Error, OSError) as exc:
        # Ours, or the system's about a file the user named; an OSError naming no file is not.
        if not (isinstance(exc, MobileNetV2Error) or exc.filename):
            return _unexpected(prog, exc, debug)
        if debug:
            traceback.print_exception(exc)
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else is a bug, not the user's input
        return _unexpected(prog, exc, debug)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and not isinstance(exc, MobileNetV2Error):
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def _unexpected(prog: str, exc: BaseException, debug: bool) -> int:
    """A short line, and the traceback one flag away (`--debug`). Exit status 70 (EX_SOFTWARE)."""
    if debug:
        traceback.print_exception(exc)
    else:
        message = f"{type(exc).__name__}: {_one_line(exc)}"[:300]
        print(
            f"{prog}: internal error: {message} (a bug: run with --debug for the traceback)",
            file=sys.stderr,
        )
    return 70


def error(prog: str, message: str) -> int:
    """A wrapper's own one-line error, in the same form as main's; returns the exit status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 1


def _detach_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
