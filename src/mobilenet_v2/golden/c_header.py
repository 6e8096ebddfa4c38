"""C headers for hardware and microcontroller teams (`dump --format c`), written and read back:
one tensor per header (`tensor_header`), an umbrella header including them all, and the
reader `verify` uses for anyone's header with one tensor array (`read_c_header`). The literals
written (`c_values`) and the grammar that reads them back (`c_literal`, `parse_values`) sit
side by side, so that every value survives the round trip exactly.

Everything written here compiles as C11 and as C++11 with `-Wall -Werror`; the tests build it
with the system compiler and compare lengths and checksums with NumPy's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.golden.tensor_file import TensorFileError, TensorSpec, parse_numbers, wrong_size

# C11 and C++ keywords (and C23's new ones), and `main`: an identifier equal to one gets a
# prefix.
_KEYWORD_TEXT = """
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic
    _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false
    nullptr static_assert thread_local true typeof typeof_unqual asm catch class const_cast
    delete dynamic_cast explicit export friend mutable namespace new noexcept operator private
    protected public reinterpret_cast static_cast template this throw try typeid typename using
    virtual wchar_t char8_t char16_t char32_t concept consteval constinit co_await co_return
    co_yield requires and and_eq bitand bitor compl not not_eq or or_eq xor xor_eq main
"""

_KEYWORDS = frozenset(_KEYWORD_TEXT.split())

# NumPy dtype -> C element type. float16 has no portable C type: its IEEE bit patterns go
# out as uint16_t (documented in the header), bool as uint8_t 0/1.
C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "uint16": "uint16_t",
    "int32": "int32_t",
    "uint32": "uint32_t",
    "int64": "int64_t",
    "uint64": "uint64_t",
    "bool": "uint8_t",
    "float16": "uint16_t",
    "float32": "float",
    "float64": "double",
}

# What each tensor header defines besides NAME itself: kept free of other tensors' names.
_DERIVED = (
    "_H_",
    "_LEN",
    "_RANK",
    "_SHAPE",
    "_SCALE",
    "_SCALES",
    "_ZERO_POINT",
    "_ZERO_POINTS",
    "_QUANTIZED_DIMENSION",
)

_VALUES_PER_LINE = 16


def c_identifier(text: str, prefix: str = "t_") -> str:
    """`text` made a valid C and C++ identifier: other characters become `_`; a leading digit,
    a keyword or a reserved spelling (`_X`, `__x`) gets `prefix`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "_"
    if name[0].isdigit() or name in _KEYWORDS or re.match(r"_[A-Z_]|_$", name):
        name = prefix + name
    return name


def unique_identifiers(names: Iterable[str], prefix: str = "t_") -> list[str]:
    """One identifier per name, in order, none equal to another's or to another's derived
    names (`X_SHAPE`, ...): a clash adds `_2`, `_3`, ... (deterministic: first come first)."""
    taken: set[str] = set()
    out = []
    for name in names:
        base = c_identifier(name, prefix)
        ident, n = base, 1
        while {ident, *(ident + s for s in _DERIVED)} & taken:
            n += 1
            ident = f"{base}_{n}"
        taken.update({ident, *(ident + s for s in _DERIVED)})
        out.append(ident)
    return out


def _float_literal(value: float, digits: int, suffix: str) -> str:
    """A C literal that reads back as exactly `value` (`%.9g` for float, `%.17g` double)."""
    if np.isnan(value):
        return f"({'NAN' if suffix else '(double)NAN'})"
    if np.isinf(value):
        return f"({'-' if value < 0 else ''}INFINITY)"
    text = f"{value:.{digits}g}"
    if not any(c in text for c in ".e"):
        text += ".0"  # `1f` is no literal; `1.0f` is
    return text + suffix


def c_values(array: np.ndarray) -> list[str]:
    """Every value of `array` (C order) as a C literal of its `C_TYPES` element type."""
    flat = array.reshape(-1)
    name = array.dtype.name
    if name == "float32":
        return [_float_literal(v, 9, "f") for v in flat.tolist()]
    if name == "float64":
        return [_float_literal(v, 17, "") for v in flat.tolist()]
    if name == "float16":
        flat = flat.view(np.uint16)
    elif name == "bool":
        flat = flat.astype(np.uint8)
    elif name not in C_TYPES:
        raise ValueError(f"no C type for {array.dtype}")
    if name in ("int64", "uint64"):  # INT64_C / UINT64_C: a literal that fits on any target
        macro = "INT64_C" if name == "int64" else "UINT64_C"
        low = f"(-{macro}({2**63 - 1}) - 1)"  # the one value with no literal of its own
        return [f"{macro}({v})" if v != -(2**63) else low for v in flat.tolist()]
    if name == "int32":  # -2147483648 is `-` applied to a literal too big for int
        return [str(v) if v != -(2**31) else "(-2147483647 - 1)" for v in flat.tolist()]
    return [str(v) for v in flat.tolist()]


def _comment(text: str) -> str:
    """A tensor's name, safe inside `/* */`: JSON-quoted (ASCII, no newline), with no `*/`
    to end the comment early and no `??` trigraph."""
    return json.dumps(text).replace("*/", "*\\/").replace("??", "?\\?")


def initializer_lines(tokens: Sequence[str], per_line: int) -> str:
    """Tokens as the lines of a C initializer, `per_line` to a line, indented."""
    return ",\n".join(
        "    " + ", ".join(tokens[i : i + per_line]) for i in range(0, len(tokens), per_line)
    )


def tensor_header(ident: str, array: np.ndarray, entry: dict[str, Any]) -> str:
    """One tensor as a header: `static const <type> NAME[N]`, `NAME_LEN`, `NAME_RANK`,
    `NAME_SHAPE[]` (as written, in the dump's layout) and, for a quantized tensor,
    `NAME_SCALE` / `NAME_ZERO_POINT`, or `NAME_SCALES[]` / `NAME_ZERO_POINTS[]` and
    `NAME_QUANTIZED_DIMENSION` when per channel. `static`: a header, included anywhere."""
    guard = f"{ident}_H_"
    ctype = C_TYPES[array.dtype.name]
    shape = list(array.shape)
    lines = [
        f"/* Tensor {_comment(entry['name'])} (index {entry['index']}, {entry['kind']}), "
        "written by mobilenet-v2 dump --format c. */",
        f"/* dtype {array.dtype.name}, shape {shape}, layout "
        f"{entry.get('written_layout') or 'as stored'}, C order. */",
    ]
    if array.dtype.name == "float16":
        lines.append("/* float16: IEEE 754 half-precision bit patterns, as uint16_t. */")
    lines += [
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
    ]
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        lines.append("#include <math.h>")
    lines += ["", f"#define {ident}_LEN {array.size}", f"#define {ident}_RANK {len(shape)}"]
    if shape:  # C has no empty arrays: a scalar has rank 0 and no _SHAPE
        lines.append(f"static const int32_t {ident}_SHAPE[] = {{{', '.join(map(str, shape))}}};")
    scales, zero_points = entry.get("scales") or [], entry.get("zero_points") or []
    if len(scales) == 1:
        lines.append(f"static const float {ident}_SCALE = {_float_literal(scales[0], 9, 'f')};")
        lines.append(f"static const int32_t {ident}_ZERO_POINT = {int(zero_points[0])};")
    elif len(scales) > 1:
        qdim = entry.get("written_quantized_dimension", 0)
        text = ", ".join(_float_literal(s, 9, "f") for s in scales)
        lines.append(f"#define {ident}_QUANTIZED_DIMENSION {qdim}")
        lines.append(f"static const float {ident}_SCALES[] = {{{text}}};")
        text = ", ".join(str(int(z)) for z in zero_points)
        lines.append(f"static const int32_t {ident}_ZERO_POINTS[] = {{{text}}};")
    if array.size:
        lines += [
            f"static const {ctype} {ident}[{array.size}] = {{",
            initializer_lines(c_values(array), _VALUES_PER_LINE),
            "};",
        ]
    else:
        lines.append(f"/* {ident}: no values (C has no empty arrays). */")
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def umbrella_header(name: str, headers: Sequence[str]) -> str:
    """One header that includes every tensor header, in manifest order."""
    guard = c_identifier(name.replace(".", "_")) + "_"
    includes = [f'#include "{h}"' for h in headers]
    return "\n".join(
        [
            "/* Every tensor of the dump; see manifest.json for names and layouts. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            *includes,
            "",
            f"#endif /* {guard} */",
            "",
        ]
    )


def write_c_header(path: Path, array: np.ndarray, entry: dict[str, Any]) -> None:
    """`array` as `tensor_header` writes it, named by the entry's `c_name`."""
    path.write_text(tensor_header(entry["c_name"], array, entry))


# --- Reading ---------------------------------------------------------------------------------


_C_NAMES = {c: name for name, c in reversed(C_TYPES.items())}  # int8_t -> int8, uint16_t ->..

# The initializer runs to the last `}` before its `;` (greedy over `[^;]`: a lazy `.*?`
# is ten times slower on a megabyte of numbers; comments, which may hold `;`, are gone).
_C_ARRAY = re.compile(r"(\w+)\s+(\w+)\s*((?:\[[^\]]*\]\s*)+)=\s*\{([^;]*)\}\s*;", re.S)

# What may stand around a declaration without changing its values. Each alternative starts
# with a literal, which the regex engine finds fast in megabytes of numbers (a leading `\b`
# tried at every number made this the reader's slowest step); the word boundary before a
# match is checked in `_without_qualifiers`.
_C_QUALIFIERS = re.compile(
    r"(?:static|const|volatile|extern|constexpr)\b|alignas\s*\([^)]*\)"
    r"|__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)|__declspec\s*\([^)]*\)",
    re.S,
)


def _without_qualifiers(text: str) -> str:
    def blank(match: re.Match) -> str:
        before = text[match.start() - 1] if match.start() else " "
        return match.group() if before.isalnum() or before == "_" else " "

    return _C_QUALIFIERS.sub(blank, text)


def read_c_header(path: Path, text: str, spec: TensorSpec) -> tuple[np.ndarray, tuple | None]:
    """A C header with one tensor: its array (the one that is not NAME_SHAPE, NAME_SCALES or
    NAME_ZERO_POINTS), in its own C type, and NAME_SHAPE where there is one."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    text = _without_qualifiers(text)
    arrays = {name: (ctype, _flat_values(body)) for ctype, name, _, body in _C_ARRAY.findall(text)}
    names = [n for n in arrays if not n.endswith(("_SHAPE", "_SCALES", "_ZERO_POINTS"))]
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise TensorFileError(f"{path}: expected one tensor array in the header, found {found}")
    name = names[0]
    ctype, body = arrays[name]
    if ctype not in _C_NAMES:
        raise TensorFileError(
            f"{path}: array {name} has type {ctype!r}; expected one of "
            f"{', '.join(sorted(_C_NAMES))}"
        )
    dtype = np.dtype(_C_NAMES[ctype])
    if ctype == "uint16_t" and spec.dtype == np.float16:
        dtype = np.dtype(np.uint16)  # float16 travels as its bit patterns
    same_width = dtype.itemsize == spec.dtype.itemsize and dtype != spec.dtype
    if same_width and {dtype.kind, spec.dtype.kind} == {"i", "u"}:
        # uint8_t bytes for an int8 tensor (or the reverse): a test bench's two's-complement
        # bytes, read as the tensor's type, as .bin and .hex files are
        dtype, view = np.dtype(dtype), spec.dtype
    else:
        view = None
    array = parse_values(path, body, spec, dtype, sep=",")
    if view is not None:
        array = array.view(view)
    if dtype == np.uint16 and spec.dtype == np.float16:
        array = array.view(np.float16)
    shape = None
    if f"{name}_SHAPE" in arrays:
        dims = [int(c_literal(d), 0) for d in arrays[f"{name}_SHAPE"][1].split(",") if d.strip()]
        shape = tuple(dims) if int(np.prod(dims)) == array.size else None
    return array, shape


# An octal integer literal (`017`, `-0377u`): not after a word character, a point or an
# exponent's sign (`1e-05` is a float), and not followed by what makes it a decimal float.
# The leading 0 comes first and the lookbehinds after it, so that the engine searches for
# a literal (ten times faster on a large initializer).
_OCTAL = re.compile(r"0(?<![\w.]0)(?<![eE][-+]0)([0-7]+)(?=[uUlL]*(?![\w.]))")


def _flat_values(body: str) -> str:
    """An initializer's values, comma-separated, without its braces: `{{1, 2,}, {3, 4,},}`
    (a comma before a closing brace is legal C) -> `1, 2 , 3, 4`; octal literals as the
    decimal numbers C reads them as (`010` is 8), never NumPy's decimal 10."""
    if "}" in body:  # nested braces
        body = re.sub(r",\s*\}", " }", body + "}")[:-1]  # + "}": the outer one, cut by _C_ARRAY
    else:
        body = body.rstrip().removesuffix(",")
    body = _OCTAL.sub(lambda m: str(int(m.group(1), 8)), body)
    return body.replace("{", " ").replace("}", " ")


def c_literal(token: str) -> str:
    """A C literal as Python reads it: `1.5f`, `INT64_C(-3)`, `(-2147483647 - 1)`, `(NAN)`."""
    token = token.strip()
    token = re.sub(r"U?INT64_C\(([^)]*)\)", r"\1", token).strip("() ")
    if m := re.fullmatch(r"(-?\w+)\s*-\s*1", token):
        return str(int(m.group(1), 0) - 1)
    token = {"NAN": "nan", "INFINITY": "inf", "-INFINITY": "-inf"}.get(token, token)
    if re.fullmatch(r"[-+]?[\d.]+(?:[eE][-+]?\d+)?[fF]", token):
        token = token[:-1]
    # An integer suffix: after a decimal digit, or after any digit of a hex literal (0xFFu).
    if re.fullmatch(r"[-+]?0[xX][0-9A-Fa-f]+[uUlL]+", token):
        return token.rstrip("uUlL")
    return re.sub(r"(?<=\d)[uUlL]+$", "", token)


def parse_values(
    path: Path, text: str, spec: TensorSpec, dtype: Any = None, sep: str = " "
) -> np.ndarray:
    """Numbers separated by `sep` (" ": any whitespace) as `dtype` (the spec's by
    default): NumPy's C parser first, then one by one for C spellings (`INT64_C(...)`,
    `(NAN)`, `1.5f`) and hex literals. An integer outside `dtype`'s range is an error, not
    a silent wrap: an unsaturated accumulator is what such a value usually means."""
    dtype = np.dtype(dtype or spec.dtype)
    text = text.strip().rstrip(sep.strip() or " ")  # a trailing comma
    values = parse_numbers(text, dtype, sep)
    hex_literals = False
    if values is None:
        tokens = text.split(sep) if sep.strip() else text.split()
        try:
            literals = [c_literal(t) for t in tokens]
            if dtype.kind == "f":
                values = np.array(literals, dtype=np.float64)
            else:
                numbers = [int(t, 0) for t in literals]
                hex_literals = any(t.lstrip("-").lower().startswith("0x") for t in literals)
                exact = hex_literals or dtype == np.uint64  # beyond int64: Python's integers
                values = np.array(numbers, dtype=object if exact else np.int64)
        except (ValueError, OverflowError):
            raise TensorFileError(f"{path}: not a list of {dtype} values") from None
    if values.size != int(np.prod(spec.shape)):
        raise wrong_size(path, spec, f"{values.size} values")
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        low, high = int(values.min()), int(values.max())
        if hex_literals and low >= 0 and high < 1 << info.bits:
            # 0xffffc3d1 for an int32: a bit pattern, two's complement as in C
            return np.array(values.tolist(), np.uint64).astype(f"u{dtype.itemsize}").view(dtype)
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise TensorFileError(
                f"{path}: value {bad} is outside {dtype} [{info.min}, {info.max}] "
                "(an unsaturated result?)"
            )
    return values.astype(dtype)
