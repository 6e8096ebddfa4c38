"""The tensor file formats, each writer beside the reader `verify` uses for it: `txt` (our
text, `# key: <JSON>` header lines then the values; headerless lists of numbers too), `npy`,
`bin` (raw little-endian values), `hex` (`$readmemh`: one two's-complement value per line)
and `c` (C headers, `c_header`). `write_file` and `read_file` choose by format; a format
without a dtype or shape (bin, hex, a plain list of numbers) is read as the `TensorSpec` it
should hold.

Text files give integers as integers and floats with enough significant digits to round-trip
exactly (float32: 9); `.bin` and `.hex` hold each value's little-endian bytes, C order of the
written shape.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.golden.c_header import parse_values, read_c_header, write_c_header
from mobilenet_v2.golden.tensor_file import (
    TensorFileError,
    TensorSpec,
    parse_numbers,
    read_error,
    wrong_size,
)

# What each file kind holds, recorded in the manifest (`file_formats`) for whoever reads it.
FILE_FORMATS = {
    "txt": "text: '# key: <JSON>' header lines, then the values, one innermost row per line",
    "npy": "NumPy .npy (np.load)",
    "bin": "raw values, C order of written_shape, byte_order, element_size bytes each",
    "hex": "one value per line, C order: two's-complement hex (floats: IEEE 754 bit "
    "pattern), 2 * element_size digits, no prefix (Verilog $readmemh)",
    "h": "C header: static const array NAME[NAME_LEN], NAME_SHAPE, NAME_SCALE(S), "
    "NAME_ZERO_POINT(S); float16 as uint16_t bit patterns; c_name is NAME",
}
# The formats `read_file` reads: `verify --format`, less its `auto`.
READ_FORMATS = ("txt", "npy", "bin", "hex", "c")
# File extension -> format; a tensor with several files is read from the first in this order
# (a `--format both` dump has .txt and .npy: the .npy is exact and quick to read).
EXTENSIONS = {".npy": "npy", ".bin": "bin", ".txt": "txt", ".hex": "hex", ".h": "c"}
# Significant digits that give each float back exactly.
_FLOAT_FORMATS = {"float16": "%.5g", "float32": "%.9g", "float64": "%.17g"}


class DumpedTensor(NamedTuple):
    """A dump file's exact array and its metadata (text header or manifest entry)."""

    array: np.ndarray
    meta: dict[str, Any]


# --- txt -------------------------------------------------------------------------------------


def txt_header(entry: dict[str, Any]) -> str:
    """The `# key: <JSON>` lines that open a text file: the manifest entry's fields as
    written (shape, layout, quantized dimension), beside the engine's originals."""
    note = f"{entry['written_layout'] or 'as stored'}"
    if entry["transpose"]:
        note = (
            f"{entry['written_layout']}: np.transpose(x, {tuple(entry['transpose'])}) of the "
            f"engine's {entry['layout']} tensor {entry['shape']}"
        )
    fields = {
        "name": entry["name"],
        "type": entry["dtype"],
        "index": entry["index"],
        "shape": entry["written_shape"],
        "layout": entry["written_layout"],
        "layout_note": note,
        "original_shape": entry["shape"],
        "original_layout": entry["layout"],
        "transpose": entry["transpose"],
        "kind": entry["kind"],
        "op": entry["op"],
        "keras_layer": entry["keras_layer"],
        "scales": entry["scales"],
        "zero_points": entry["zero_points"],
        "quantized_dimension": entry["written_quantized_dimension"],
        "original_quantized_dimension": entry["quantized_dimension"],
    }
    return "".join(f"# {k}: {json.dumps(v)}\n" for k, v in fields.items())


def format_values(array: np.ndarray) -> str:
    """All values, C order, one line per innermost row; exact for every dtype."""
    if array.size == 0:
        return ""
    rows = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
    fmt = _FLOAT_FORMATS.get(array.dtype.name, "%d")
    if array.dtype.kind == "f" and array.dtype.name not in _FLOAT_FORMATS:
        raise ValueError(f"cannot write {array.dtype} exactly as text")
    buffer = io.StringIO()
    np.savetxt(buffer, rows.astype(np.int64) if array.dtype.kind == "b" else rows, fmt=fmt)
    return buffer.getvalue()


def write_txt(path: Path, array: np.ndarray, entry: dict[str, Any]) -> None:
    path.write_text(txt_header(entry) + format_values(array))


def parse_tensor_text(text: str, path: str | os.PathLike) -> DumpedTensor:
    """A text dump file's contents (`# key: <JSON>` header, then the values) as its exact
    array and header; `path` names the file in errors."""
    meta: dict[str, Any] = {}
    lines = text.split("\n")
    body = 0
    for body, line in enumerate(lines):
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            raise MobileNetV2Error(
                f"{path}: not a tensor dump file (line {body + 1} is no '# key: <JSON>')"
            ) from None
    else:
        body = len(lines)
    try:
        dtype = np.dtype(meta["type"])
        shape = tuple(meta["shape"])
        values = _text_values("\n".join(lines[body:]), dtype)
        return DumpedTensor(values.reshape(shape), meta)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: out of dtype
        raise MobileNetV2Error(f"{path}: not a tensor dump file ({exc})") from None


def _text_values(text: str, dtype: np.dtype) -> np.ndarray:
    """Whitespace-separated numbers as `dtype`, exactly."""
    values = parse_numbers(text, dtype)
    if values is None:
        numbers = text.split()
        values = np.array(numbers if dtype.kind == "f" else [int(n) for n in numbers], dtype)
    if dtype.kind in "iu" and values.size:  # no silent wrap: 300 is no int8 44
        info = np.iinfo(dtype)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise ValueError(f"value {bad} is outside {dtype} [{info.min}, {info.max}]")
    return values.astype(dtype)


def read_txt(path: Path, text: str, spec: TensorSpec) -> tuple[np.ndarray, tuple | None]:
    """Our text format (its header gives dtype and shape), or any list of numbers."""
    head = [line for line in text.split("\n", 40) if line.startswith("# ")]
    if any(h.startswith("# type: ") for h in head) and any(
        h.startswith("# shape: ") for h in head
    ):  # our own text format: its header has dtype and shape
        array = parse_tensor_text(text, path).array  # already read: not again
        return array, tuple(array.shape)
    text = "\n".join(line.split("#")[0] for line in text.splitlines())  # comments
    return parse_values(path, text, spec), None


# --- npy -------------------------------------------------------------------------------------


def write_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


# --- bin -------------------------------------------------------------------------------------


def little_endian(array: np.ndarray) -> np.ndarray:
    """The same values stored little-endian (a no-op on the usual hosts)."""
    return array.astype(array.dtype.newbyteorder("<"), copy=False)


def write_bin(path: Path, array: np.ndarray) -> None:
    path.write_bytes(little_endian(array).tobytes())


def read_bin(path: Path, spec: TensorSpec) -> np.ndarray:
    data = path.read_bytes()
    if len(data) != int(np.prod(spec.shape)) * spec.dtype.itemsize:
        raise wrong_size(path, spec, f"{len(data)} bytes")
    return np.frombuffer(data, spec.dtype.newbyteorder("<")).astype(spec.dtype)


# --- hex -------------------------------------------------------------------------------------


def format_hex(array: np.ndarray) -> str:
    """All values, C order, one per line: the little-endian bytes read as one unsigned number,
    i.e. two's complement for integers and the IEEE 754 bit pattern for floats, zero-padded
    to two hex digits per byte (what Verilog's `$readmemh` reads into a register that wide)."""
    size = array.dtype.itemsize
    flat = little_endian(np.ascontiguousarray(array)).reshape(-1).view(f"<u{size}")
    if size == 1:  # the common case (int8, uint8): a table instead of a format per value
        table = [f"{v:02x}" for v in range(256)]
        lines = [table[v] for v in flat.tolist()]
    else:
        pattern = f"{{:0{2 * size}x}}"
        lines = [pattern.format(v) for v in flat.tolist()]
    return "".join(line + "\n" for line in lines)


def write_hex(path: Path, array: np.ndarray) -> None:
    path.write_text(format_hex(array))


def read_hex(path: Path, text: str, spec: TensorSpec) -> np.ndarray:
    """One value per line, two's complement (floats: IEEE 754 bits), as `$readmemh` reads:
    `//` and `/* */` comments, `_` separators and a `0x` prefix allowed; `@address` lines
    are not (the golden tensor is one contiguous block)."""
    size = spec.dtype.itemsize
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    tokens = text.replace("_", "").split()
    if any(t.startswith("@") for t in tokens):
        raise TensorFileError(f"{path}: @address lines are not supported: one value per line")
    if len(tokens) != int(np.prod(spec.shape)):
        raise wrong_size(path, spec, f"{len(tokens)} values")
    digits = "".join(tokens)
    if len(digits) == 2 * size * len(tokens):  # ours: every value zero-padded to its width
        try:
            data = bytes.fromhex(digits)  # all at once: each value's big-endian bytes
            return np.frombuffer(data, f">u{size}").astype(f"<u{size}").view(spec.dtype)
        except ValueError:
            pass
    try:
        values = [int(t, 16) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", t))
        raise TensorFileError(f"{path}: {bad!r} is not a hex value") from None
    if values and max(values) >= 1 << (8 * size):
        wide = next(t for t, v in zip(tokens, values, strict=True) if v >= 1 << (8 * size))
        raise TensorFileError(f"{path}: {wide!r} is wider than {size} byte(s) ({spec.dtype})")
    return np.array(values, dtype=f"<u{size}").view(spec.dtype)


# --- Any format ------------------------------------------------------------------------------


def write_file(path: Path, kind: str, array: np.ndarray, entry: dict[str, Any]) -> None:
    """`array` as file kind `kind` (a `FILE_FORMATS` key); `entry` is its manifest entry,
    whose fields the text and C headers repeat."""
    if kind == "txt":
        write_txt(path, array, entry)
    elif kind == "npy":
        write_npy(path, array)
    elif kind == "bin":
        write_bin(path, array)
    elif kind == "hex":
        write_hex(path, array)
    elif kind == "h":
        write_c_header(path, array, entry)
    else:
        raise ValueError(f"unknown file kind {kind!r}")


def read_file(path: Path, fmt: str, spec: TensorSpec) -> tuple[np.ndarray, tuple | None]:
    """The values of `path` read as `fmt` (a `READ_FORMATS` name), and their shape where the
    file says it (npy, our text files, our C headers; else None, and the array is flat).
    Formats without a dtype take the spec's; a file with the wrong number of values is an
    error."""
    try:
        if fmt == "npy":
            array = read_npy(path)
            return array, tuple(array.shape)
        if fmt == "bin":
            return read_bin(path, spec), None
        text = path.read_text()
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise TensorFileError(f"{path}: cannot read as {fmt} ({read_error(exc)})") from None
    if fmt == "txt":
        return read_txt(path, text, spec)
    if fmt == "hex":
        return read_hex(path, text, spec), None
    if fmt == "c":
        return read_c_header(path, text, spec)
    raise TensorFileError(f"{path}: unknown format {fmt!r} (give one of {', '.join(READ_FORMATS)})")
