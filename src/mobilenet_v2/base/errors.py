"""Errors that the command line reports as one line, naming the file at fault."""

import re


class MobileNetV2Error(Exception):
    """A problem with the user's input (file, flag, weights): shown without a traceback."""


class ModelFileError(MobileNetV2Error, ValueError):
    """A model or weights file that is missing, corrupt, truncated or of the wrong kind."""


class WeightsError(ModelFileError):
    """Weights that do not fit the model (other width, class count, not a MobileNetV2)."""


class ImageError(MobileNetV2Error, ValueError):
    """An image that cannot be read: missing, empty, truncated, unsupported or too large."""


class DownloadError(MobileNetV2Error, OSError):
    """A download that failed (offline, server error); says how to do without it."""


class InvalidArgumentError(MobileNetV2Error, ValueError):
    """An argument the model cannot be built with (a ValueError, as Keras raises)."""


class MissingExtraError(MobileNetV2Error, ImportError):
    """A feature whose optional dependencies are not installed; names the extra to install."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line of plain text (libraries such as Ray colour theirs
    and append remote tracebacks), for the one-line errors that quote it."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return (text.strip().splitlines() or [type(exc).__name__])[0]
