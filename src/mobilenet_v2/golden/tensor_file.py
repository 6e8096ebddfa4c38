"""What every tensor file format shares when read: the tensor a file should hold
(`TensorSpec`: formats without a dtype or shape take its), the error for a file that is not
it, and NumPy's fast path for numbers in text."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error


class TensorFileError(MobileNetV2Error):
    """A tensor file or golden set that cannot be read as what it should be: no manifest, a
    file of the wrong size, a value outside its dtype, ..."""


class TensorSpec(NamedTuple):
    """The tensor a file is read as: its name (for errors), written shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


def read_error(exc: BaseException) -> str:
    """Why a file could not be read, in one short line."""
    return getattr(exc, "strerror", None) or " ".join(str(exc).split())[:120]


def wrong_size(path: Path, spec: TensorSpec, found: str) -> TensorFileError:
    size = int(np.prod(spec.shape))
    return TensorFileError(
        f"{path}: {found}, but tensor {spec.name} {list(spec.shape)} {spec.dtype} has "
        f"{size} values ({size * spec.dtype.itemsize} bytes)"
    )


def wide_type(dtype: Any) -> type:
    """What values of `dtype` are parsed as before the exact cast: float64 for floats,
    uint64 for uint64 (whose upper half int64 cannot hold), else int64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.float64
    return np.uint64 if dtype == np.uint64 else np.int64


def parse_numbers(text: str, dtype: np.dtype, sep: str = " ") -> np.ndarray | None:
    """Numbers separated by `sep` (" ": any whitespace) as int64 or float64 (by `dtype`'s
    kind), with NumPy's C parser; None where it stops early (a `1.5` among integers, a C
    spelling such as `1.5f`), for the caller's slower path."""
    wide = wide_type(dtype)
    if wide == np.uint64 and "-" in text:
        return None  # NumPy would wrap a negative value; the slower path refuses it
    if not text.strip():
        return np.zeros(0, wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "could not be read to its end": not all numbers
        try:
            return np.fromstring(text, dtype=wide, sep=sep)
        except (ValueError, DeprecationWarning):
            return None
