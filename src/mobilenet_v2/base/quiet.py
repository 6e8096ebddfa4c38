"""Silence native (C++) output that TensorFlow and LiteRT write straight to fd 1 or 2."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced_fd(fd: int) -> Iterator[None]:
    """Point file descriptor `fd` at /dev/null for the duration of the block.

    Python-level exceptions are unaffected: they are raised after the descriptor is restored.
    """
    try:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real descriptor (embedded interpreters): nothing to do
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def silenced_stderr() -> contextlib.AbstractContextManager[None]:
    return silenced_fd(2)


def silenced_stdout() -> contextlib.AbstractContextManager[None]:
    return silenced_fd(1)
