"""C source for hardware and microcontroller teams: tensors as C headers (`dump --format c`)
and a `.tflite` file as an aligned byte array (`export --c-array`), the way TensorFlow Lite
Micro's examples embed a model (`xxd -i` style, plus `alignas(16)`).

Everything written here compiles as C11 and as C++11 with `-Wall -Werror`; the tests build it
with the system compiler and compare lengths and checksums with NumPy's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.outputs import check_writable, write_atomic

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
_BYTES_PER_LINE = 12  # as xxd -i


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


def _lines(tokens: Sequence[str], per_line: int) -> str:
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
            _lines(c_values(array), _VALUES_PER_LINE),
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


def model_array_source(raw: bytes, ident: str, header_name: str) -> str:
    """The bytes as TFLite Micro embeds a model: `alignas(16) const unsigned char NAME[]` and
    `const unsigned int NAME_len`; compiles as C11 (`<stdalign.h>`) and as C++11."""
    table = [f"0x{b:02x}" for b in range(256)]
    tokens = [table[b] for b in raw]
    return "\n".join(
        [
            "/* Written by mobilenet-v2 export --c-array: a .tflite flatbuffer, 16-byte aligned",
            "   as TensorFlow Lite Micro requires (tflite::GetModel reads it in place). */",
            f'#include "{header_name}"',
            "",
            "#ifndef __cplusplus",
            "#include <stdalign.h> /* C11: alignas; a keyword in C++11 and C23 */",
            "#endif",
            "",
            f"alignas(16) const unsigned char {ident}[] = {{",
            _lines(tokens, _BYTES_PER_LINE),
            "};",
            f"const unsigned int {ident}_len = {len(raw)};",
            "",
        ]
    )


def model_array_header(ident: str, size: int) -> str:
    """The declarations of `model_array_source`; `extern "C"` so that C and C++ link alike."""
    guard = f"{ident.upper()}_H_"
    return "\n".join(
        [
            f"/* A .tflite model of {size} bytes, written by mobilenet-v2 export --c-array. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "#ifdef __cplusplus",
            'extern "C" {',
            "#endif",
            "",
            f"extern const unsigned char {ident}[];",
            f"extern const unsigned int {ident}_len;",
            "",
            "#ifdef __cplusplus",
            "}",
            "#endif",
            "",
            f"#endif /* {guard} */",
            "",
        ]
    )


def c_array_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """`model.cc` -> (`model.cc`, `model.h`): the source and the header beside it."""
    source = Path(output)
    header = source.with_suffix(".h")
    if header == source or source.name.startswith("."):
        raise MobileNetV2Error(f"{source}: give a C or C++ source name (model.cc, model.c)")
    return source, header


def write_model_array(model: str | os.PathLike, output: str | os.PathLike) -> tuple[Path, Path]:
    """Write the `.tflite` file `model` as `output` (`model_array_source`, the array named
    after the file's stem) and its header beside it, each atomically; both or neither."""
    from mobilenet_v2.lite.tflite_file import read_model_bytes

    source, header = c_array_paths(output)
    for path in (source, header):  # before reading the model: fail fast, write nothing
        check_writable(path)
    raw = read_model_bytes(model)  # a missing or non-TFLite file: one line naming it
    ident = c_identifier(source.stem, prefix="g_")
    existed = header.exists()
    write_atomic(header, model_array_header(ident, len(raw)).encode())
    try:
        write_atomic(source, model_array_source(raw, ident, header.name).encode())
    except BaseException:
        if not existed:  # never a header without its source
            header.unlink(missing_ok=True)
        raise
    return source, header
