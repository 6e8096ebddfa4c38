"""Golden tensors for hardware teams: `dump --format bin|hex|c` and `export --c-array`.

The bin and hex files of the fixture model are read back and compared with its npy dump; the
C headers and the model's C array are built with the system C compiler (and C++ compiler)
into small programs that print each array's length and checksum, compared with NumPy's.
Without `cc` those tests skip (CI installs build-essential).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from conftest import FIXTURE_TFLITE, IMAGES

import mobilenet_v2
from mobilenet_v2.cli import main
from mobilenet_v2.golden.c_header import tensor_header, unique_identifiers
from mobilenet_v2.golden.formats import format_hex

GRACE_HOPPER = IMAGES / "grace_hopper.bmp"
CC = shutil.which("cc")
CXX = shutil.which("c++")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler `cc` (install build-essential)")
SOURCE = str(Path(mobilenet_v2.__file__).resolve().parents[1])

# Length and a position-weighted checksum, sum((i + 1) * v) mod 2**64, of one array: integers
# by value, floats by bit pattern (so that any changed or moved value shows).
CHECK = r"""
#define CHECK_INT(name) do { uint64_t s = 0; size_t n = sizeof(name) / sizeof(name[0]); \
    for (size_t i = 0; i < n; ++i) s += (uint64_t)(int64_t)name[i] * (uint64_t)(i + 1); \
    printf("%s %zu %llu\n", #name, n, (unsigned long long)s); } while (0)
#define CHECK_FLOAT(name) do { uint64_t s = 0; size_t n = sizeof(name) / sizeof(name[0]); \
    for (size_t i = 0; i < n; ++i) { uint32_t b; memcpy(&b, &name[i], 4); \
    s += (uint64_t)b * (uint64_t)(i + 1); } \
    printf("%s %zu %llu\n", #name, n, (unsigned long long)s); } while (0)
"""


def checksum(array: np.ndarray) -> int:
    flat = array.reshape(-1)
    if array.dtype.kind == "f":
        values = flat.view(f"u{array.dtype.itemsize}").astype(np.uint64)
    else:
        values = flat.astype(np.int64).view(np.uint64)
    return int((values * np.arange(1, flat.size + 1, dtype=np.uint64)).sum())


def build_and_run(directory: Path, main_c: str, *sources: str, flags=()) -> list[str]:
    (directory / "main.c").write_text(main_c)
    program = directory / "prog"
    command = [CC, "-std=c11", "-Wall", "-Wextra", "-Werror", *flags, "-I", str(directory)]
    build = subprocess.run(
        [*command, "-o", str(program), str(directory / "main.c"), *sources],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def tiny_model(tensor_buffer: int = 0, custom_op: bytes | None = None) -> bytes:
    """A real, valid `.tflite` of 308 bytes that LiteRT runs: sum = a + b, float32 [1, 2].
    `tensor_buffer`: the buffer the sum's tensor names (0: none; 1 and up point past the
    model's one buffer, a damage only LiteRT's loader catches). `custom_op`: the op is that
    custom op instead, whose kernel LiteRT lacks (a microcontroller build brings its own)."""

    def tensor(name: bytes, buffer: int = 0) -> schema.TensorT:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 2], schema.TensorType.FLOAT32, buffer
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    if custom_op is not None:
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = custom_op
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    graph = schema.SubGraphT()
    graph.tensors = [tensor(b"a"), tensor(b"b"), tensor(b"sum", tensor_buffer)]
    graph.inputs, graph.outputs, graph.operators = [0, 1], [2], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> dict[str, Path]:
    """The fixture (uint8) model on grace_hopper in four formats, through the command."""
    root = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in ("npy", "bin", "hex", "c"):
        out[fmt] = root / fmt
        args = ["dump", str(GRACE_HOPPER), "--model", str(FIXTURE_TFLITE), "--format", fmt]
        assert main([*args, "--output", str(out[fmt])]) == 0
    return out


# --- bin and hex ------------------------------------------------------------------------------


@pytest.mark.shared
def test_bin_and_hex_files_hold_the_npy_dump_exactly(dumps):
    npy, bins, hexes = (manifest(dumps[f])["tensors"] for f in ("npy", "bin", "hex"))
    checked = 0
    for e_npy, e_bin, e_hex in zip(npy, bins, hexes, strict=True):
        assert e_npy["index"] == e_bin["index"] == e_hex["index"]
        if not e_npy["files"]:
            assert not e_bin["files"] and not e_hex["files"]
            continue
        expected = np.load(dumps["npy"] / e_npy["files"][0])
        for entry in (e_bin, e_hex):  # what a test bench reads them with
            assert entry["byte_order"] == "little" and entry["dtype"] == expected.dtype.name
            assert entry["element_size"] == expected.dtype.itemsize
            assert entry["written_shape"] == list(expected.shape)
            assert entry["scales"] == e_npy["scales"]
            assert entry["zero_points"] == e_npy["zero_points"]
        dtype = np.dtype(e_bin["dtype"]).newbyteorder("<")
        raw = np.fromfile(dumps["bin"] / e_bin["files"][0], dtype=dtype)
        assert np.array_equal(raw.reshape(e_bin["written_shape"]), expected), e_bin["name"]
        lines = (dumps["hex"] / e_hex["files"][0]).read_text().splitlines()
        assert all(len(line) == 2 * e_hex["element_size"] for line in lines)
        unsigned = np.array([int(line, 16) for line in lines], f"<u{e_hex['element_size']}")
        assert np.array_equal(unsigned.view(dtype).reshape(expected.shape), expected)
        checked += 1
    assert checked == 174  # every tensor with values (4 are kernels' scratch)
    assert "$readmemh" in manifest(dumps["hex"])["file_formats"]["hex"]


def test_hex_is_twos_complement_two_digits_per_byte():
    assert format_hex(np.array([-1, 0, 1, -128, 127], np.int8)) == "ff\n00\n01\n80\n7f\n"
    assert format_hex(np.array([[-1], [2]], np.int32)) == "ffffffff\n00000002\n"
    assert format_hex(np.array([200], np.uint8)) == "c8\n"
    assert format_hex(np.array([-2], np.int16)) == "fffe\n"
    assert format_hex(np.array([1.0, -0.0], np.float32)) == "3f800000\n80000000\n"
    assert format_hex(np.array([1.0], np.float16)) == "3c00\n"


# --- C headers --------------------------------------------------------------------------------


# The default run compiles the headers of the first block and the classifier: every kind of
# tensor (uint8 input, activations, per-channel weights, int32 biases, the output) in 3 MB;
# the whole 46 MB set (about 30 s for gcc on 2 cores) under `-m slow`.
SAMPLE_TENSORS = ("input", "Conv1", "expanded_conv", "Logits", "predictions", "Mobilenet")


@pytest.mark.shared
@needs_cc
@pytest.mark.parametrize(
    "everything", [pytest.param(False, id="sample"), pytest.param(True, marks=pytest.mark.slow)]
)
def test_c_headers_compile_and_hold_every_tensor(everything, dumps, tmp_path):
    directory = dumps["c"]
    data = manifest(directory)
    entries = [e for e in data["tensors"] if e["files"]]
    assert data["files"] == ["tensors.h"] and len(entries) == 174
    names = [e["c_name"] for e in entries]
    assert len(set(names)) == len(names)
    assert {f"{e['files'][0]}" for e in entries} == {p.name for p in directory.glob("*.h")} - {
        "tensors.h"
    }
    if not everything:
        entries = [e for e in entries if e["files"][0].startswith(SAMPLE_TENSORS)]
        kinds = {(e["kind"], e["dtype"], len(e["scales"]) > 1) for e in entries}
        assert len(entries) < 30 and len(kinds) >= 5, kinds
    checks = [
        f"    CHECK_{'FLOAT' if e['dtype'] == 'float32' else 'INT'}({e['c_name']});"
        for e in entries
    ]
    include = (
        ['#include "tensors.h"'] if everything else [f'#include "{e["files"][0]}"' for e in entries]
    )
    program = "\n".join(
        [
            "#include <stdint.h>",
            "#include <stdio.h>",
            "#include <string.h>",
            *include,
            CHECK,
            "int main(void) {",
            *checks,
            "    return 0;",
            "}",
            "",
        ]
    )
    shutil.copytree(directory, tmp_path / "c")
    printed = build_and_run(tmp_path / "c", program)
    expected = []
    npy = {e["index"]: e for e in manifest(dumps["npy"])["tensors"]}
    for e in entries:
        array = np.load(dumps["npy"] / npy[e["index"]]["files"][0])
        expected.append(f"{e['c_name']} {array.size} {checksum(array)}")
    assert printed == expected


@needs_cc
def test_c_headers_are_exact_for_every_dtype_and_name(tmp_path):
    """Odd names (a clash, a digit, a keyword, a hostile comment) and every dtype, edge values
    included, compiled and dumped byte by byte: the C arrays are the NumPy arrays' bytes."""
    arrays = {
        "a.b": np.array([[-128, 127], [0, -1]], np.int8),
        "a_b": np.array([0, 255], np.uint8),
        "1st": np.array([-(2**31), 2**31 - 1], np.int32),
        "int": np.array([-(2**63), 2**63 - 1], np.int64),
        "*/ x ??/": np.array([-32768, 7], np.int16),
        "floats": np.array([1.0, -0.0, 0.1, 3.4028235e38, 1e-45, np.inf, -np.inf], np.float32),
        "not_a_number": np.array([np.nan], np.float32),  # `nan` is math.h's function
        "doubles": np.array([0.1, 1.0, 2.0**-1074], np.float64),
        "half": np.array([1.0, -2.5, 65504.0], np.float16),
        "flags": np.array([True, False]),
        "scalar": np.array(3, np.int32),
    }
    names = unique_identifiers(arrays)
    assert names[:4] == ["a_b", "a_b_2", "t_1st", "t_int"]
    includes, dumps = [], []
    for i, (ident, (name, array)) in enumerate(zip(names, arrays.items(), strict=True)):
        entry = {"name": name, "index": i, "kind": "weight", "written_layout": "NCHW"}
        if name == "a.b":  # per channel along axis 0
            entry |= {"scales": [0.5, 0.25], "zero_points": [0, 1]}
            entry["written_quantized_dimension"] = 0
        elif name == "a_b":
            entry |= {"scales": [0.1], "zero_points": [128]}
        (tmp_path / f"h{i}.h").write_text(tensor_header(ident, array, entry))
        includes.append(f'#include "h{i}.h"')
        dumps.append(f"    DUMP({ident});")
    program = "\n".join(
        [
            "#include <stdio.h>",
            *includes,
            "#define DUMP(x) do { const unsigned char *p = (const unsigned char *)x; \\",
            '    printf("%s %d ", #x, (int)x##_LEN); \\',
            '    for (size_t i = 0; i < sizeof(x); ++i) printf("%02x", p[i]); \\',
            '    printf("\\n"); } while (0)',
            "int main(void) {",
            *dumps,
            '    printf("%d %.9g %d %d %d\\n", a_b_2_ZERO_POINT, (double)a_b_2_SCALE, '
            "a_b_ZERO_POINTS[1], a_b_QUANTIZED_DIMENSION, a_b_SHAPE[1]);",
            "    return 0;",
            "}",
            "",
        ]
    )
    printed = build_and_run(tmp_path, program)
    expected = [
        f"{ident} {array.size} {np.atleast_1d(array).astype(array.dtype.newbyteorder('<')).tobytes().hex()}"  # noqa: E501
        for ident, array in zip(names, arrays.values(), strict=True)
    ]
    assert printed[:-1] == expected
    assert printed[-1] == "128 0.100000001 1 0 2"


# --- export --c-array -------------------------------------------------------------------------


@pytest.mark.shared
@needs_cc
def test_c_array_compiles_as_c_and_cpp_aligned_with_the_models_bytes(tmp_path, capsys):
    out = tmp_path / "mobilenet_v2_1.0_224_quant.cc"
    assert main(["export", "--c-array", str(out), "--model", str(FIXTURE_TFLITE)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, out.with_suffix(".h").name]
    ident = "mobilenet_v2_1_0_224_quant"  # the file's stem made a C identifier
    program = "\n".join(
        [
            "#include <stdint.h>",
            "#include <stdio.h>",
            f'#include "{out.with_suffix(".h").name}"',
            "int main(void) {",
            "    uint64_t s = 0;",
            f"    for (unsigned int i = 0; i < {ident}_len; ++i)",
            f"        s += (uint64_t){ident}[i] * (uint64_t)(i + 1);",
            f'    printf("%u %llu %d\\n", {ident}_len, (unsigned long long)s, '
            f"(int)((uintptr_t){ident} % 16));",
            "    return 0;",
            "}",
            "",
        ]
    )
    raw = np.frombuffer(FIXTURE_TFLITE.read_bytes(), np.uint8)
    expected = [f"{raw.size} {checksum(raw)} 0"]  # length, checksum, address mod 16
    assert build_and_run(tmp_path, program, "-x", "c", str(out)) == expected
    if CXX is None:
        return
    # As TensorFlow Lite Micro builds it: the array compiled as C++, linked with C code.
    build = subprocess.run(
        [CXX, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-c", str(out), "-o", "model.o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    for command in (
        [CC, "-std=c11", "-c", "main.c", "-o", "main.o"],
        [CXX, "main.o", "model.o", "-o", "prog_cpp"],
    ):
        subprocess.run(command, cwd=tmp_path, check=True, timeout=120)
    run = subprocess.run([str(tmp_path / "prog_cpp")], capture_output=True, text=True)
    assert run.stdout.splitlines() == expected


def test_c_array_never_imports_tensorflow(tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(tiny_model())
    code = (
        "import sys\n"
        "from mobilenet_v2.cli import main\n"
        f"rc = main(['export', '--c-array', {str(tmp_path / 'm.cc')!r}, '--model', "
        f"{str(model)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "sys.exit(rc or (3 if heavy else 0))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SOURCE, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    text = (tmp_path / "m.cc").read_text()
    assert "alignas(16) const unsigned char m[] = {" in text
    assert f"const unsigned int m_len = {len(tiny_model())};" in text
    assert "extern const unsigned char m[];" in (tmp_path / "m.h").read_text()


def refusal_of_another_command(model: Path, capsys) -> str:
    """What `inspect` (our flatbuffer reader) says about `model`, after exit status 1."""
    assert main(["inspect", str(model)]) == 1
    return capsys.readouterr().err


@pytest.mark.shared
def test_c_array_refuses_a_truncated_model_as_the_other_commands_do(tmp_path, capsys):
    """The first 100 kB of the real model: every command calls it corrupt or truncated, and
    a microcontroller build must not embed it. Exit 1, the same one line, nothing written."""
    model = tmp_path / "cut.tflite"
    model.write_bytes(FIXTURE_TFLITE.read_bytes()[:100_000])
    expected = refusal_of_another_command(model, capsys)
    assert f"{model}: corrupt or truncated TFLite model" in expected
    assert main(["export", "--c-array", str(tmp_path / "m.cc"), "--model", str(model)]) == 1
    assert capsys.readouterr().err == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tflite"]


@pytest.mark.parametrize(
    "damage",
    [
        *(pytest.param(tiny_model()[:keep], id=f"cut to {keep} bytes") for keep in (300, 100, 12)),
        # A tensor naming a buffer the model lacks: our reader reads past it (it has no data
        # to give), LiteRT's loader refuses the file.
        pytest.param(tiny_model(tensor_buffer=7), id="buffer out of range"),
    ],
)
def test_c_array_refuses_a_damaged_small_model(damage, tmp_path, capsys):
    model = tmp_path / "bad.tflite"
    model.write_bytes(damage)
    assert main(["export", "--c-array", str(tmp_path / "m.cc"), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    # A cut file: the one line every command gives; else LiteRT's reason in parentheses.
    assert err.startswith(f"mobilenet-v2: error: {model}: corrupt or truncated TFLite model")
    assert err.count("\n") == 1 and "unpack_from" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]


def test_c_array_exports_a_model_whose_custom_op_litert_lacks(tmp_path, capsys):
    """An op LiteRT has no kernel for is no damage: TFLite Micro builds bring their own."""
    model = tmp_path / "custom.tflite"
    model.write_bytes(tiny_model(custom_op=b"MyKernel"))
    assert main(["export", "--c-array", str(tmp_path / "m.cc"), "--model", str(model)]) == 0
    assert f"const unsigned int m_len = {model.stat().st_size};" in (tmp_path / "m.cc").read_text()


# --- refusals ---------------------------------------------------------------------------------


def test_unknown_format_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dump", "x.bmp", "--output", str(tmp_path / "d"), "--format", "xml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--format" in err and "'xml'" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_model", "model file not found"),
        ("not_tflite", "not a valid TFLite model"),
        ("no_parent", "does not exist"),
        ("output_is_dir", "is a directory"),
        ("header_is_dir", "is a directory"),
    ],
)
def test_c_array_bad_input_is_one_line_and_writes_nothing(case, message, tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x20\x00\x00\x00TFL3" + bytes(8))
    out = tmp_path / "model.cc"
    if case == "missing_model":
        model = tmp_path / "missing.tflite"
    elif case == "not_tflite":
        model.write_text("not a model at all")
    elif case == "no_parent":
        out = tmp_path / "no" / "such" / "model.cc"
    elif case == "output_is_dir":
        out.mkdir()
    elif case == "header_is_dir":
        (tmp_path / "model.h").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", "--c-array", str(out), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    named = model if case in ("missing_model", "not_tflite") else out.parent
    assert str(named.name) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--weights", "none"], "--weights applies to --saved-model"),
        (["--top", "3"], "--top applies to --saved-model"),
        (["--force"], "--force applies to --saved-model"),
        ([], "--c-array needs --model"),
    ],
)
def test_c_array_refuses_saved_model_flags(extra, message, tmp_path, capsys):
    model = [] if not extra else ["--model", str(tmp_path / "m.tflite")]
    assert main(["export", "--c-array", str(tmp_path / "m.cc"), *model, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_saved_model_refuses_model_and_c_array_refuses_a_header_name(tmp_path, capsys):
    args = ["export", "--saved-model", str(tmp_path / "sm"), "--model", "m.tflite"]
    assert main(args) == 2
    assert "--model applies to --c-array" in capsys.readouterr().err
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x20\x00\x00\x00TFL3" + bytes(8))
    assert main(["export", "--c-array", str(tmp_path / "m.h"), "--model", str(model)]) == 1
    assert "give a C or C++ source name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


@pytest.mark.shared
def test_a_later_dump_removes_the_earlier_headers(tmp_path):
    """The umbrella header is listed in the manifest's `files`, so a later dump of another
    format into the same directory removes it with the tensors' headers."""
    out = tmp_path / "d"
    for fmt, replace in (("c", []), ("bin", ["--replace"])):
        args = ["dump", str(GRACE_HOPPER), "--model", str(FIXTURE_TFLITE), "--format", fmt]
        assert main([*args, "--output", str(out), *replace]) == 0
    assert not list(out.glob("*.h"))
    files = {f for e in manifest(out)["tensors"] for f in e["files"]}
    assert {p.name for p in out.iterdir()} == files | {"manifest.json", "manifest.csv"}
