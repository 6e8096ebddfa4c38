"""`export --c-array`: a `.tflite` file as an aligned C byte array, the way TensorFlow Lite
Micro's examples embed a model (`xxd -i` style, plus `alignas(16)`), and its header.

What is written compiles as C11 and as C++11 with `-Wall -Werror`; the tests build it with
the system compiler and compare lengths and checksums with NumPy's.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.outputs import check_writable, write_atomic
from mobilenet_v2.golden.c_header import c_identifier, initializer_lines

_BYTES_PER_LINE = 12  # as xxd -i


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
            initializer_lines(tokens, _BYTES_PER_LINE),
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


def check_model(raw: bytes, path: str | os.PathLike) -> None:
    """Refuse bytes that the other commands would call a corrupt or truncated model, with
    their message, before a microcontroller build embeds them: our flatbuffer reader (every
    table and index in range, buffers inside the file), then LiteRT allocating it, unless
    the model holds an op LiteRT has no kernel for (a custom op, or a builtin newer than
    this LiteRT): such a model is built for TFLite Micro's own kernels, not a damaged file,
    and the microcontroller is what runs it."""
    from mobilenet_v2.lite.tflite_file import parse_tflite

    model = parse_tflite(raw, path)
    if not any(_needs_own_kernel(op.opcode) for op in model.operators):
        _check_litert_loads(raw, path)


def _needs_own_kernel(opcode: str) -> bool:
    """`CUSTOM:<name>`, or `OP_<n>` for a builtin code this LiteRT's schema does not name."""
    return opcode.startswith(("CUSTOM:", "OP_"))


def _check_litert_loads(raw: bytes, path: str | os.PathLike) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from mobilenet_v2.base.quiet import silenced_stderr
    from mobilenet_v2.lite.tflite_file import litert_load_error

    try:
        with silenced_stderr():  # LiteRT logs its delegates and errors on stderr
            interpreter = Interpreter(
                model_content=raw,
                num_threads=1,
                # The plain kernels: allocating is the check, no delegate need prepare the graph.
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:  # how LiteRT reports files it cannot load
        raise litert_load_error(raw, path, exc) from exc


def write_model_array(model: str | os.PathLike, output: str | os.PathLike) -> tuple[Path, Path]:
    """Write the `.tflite` file `model` as `output` (`model_array_source`, the array named
    after the file's stem) and its header beside it, each atomically; both or neither. A
    model the other commands would refuse (`check_model`) is refused, nothing written."""
    from mobilenet_v2.lite.tflite_file import read_model_bytes

    source, header = c_array_paths(output)
    for path in (source, header):  # before reading the model: fail fast, write nothing
        check_writable(path)
    raw = read_model_bytes(model)  # a missing or non-TFLite file: one line naming it
    check_model(raw, model)
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
