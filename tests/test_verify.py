"""`mobilenet-v2 verify`: a hardware team's tensors against our golden dump.

The golden dumps are of our INT8 model (the `int8_model` session fixture) and of the real
fixture model on grace_hopper; "their" tensors are our own files, copied and then broken in
the ways a kernel or a test bench breaks them: one wrong value, a transposed layer, a
rounding difference everywhere, another engine's kernels.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES, ROOT

from mobilenet_v2.cli import main
from mobilenet_v2.golden.dump import dump_tflite
from mobilenet_v2.golden.verify import verify

GRACE_HOPPER = IMAGES / "grace_hopper.bmp"
LAYER = "block_3_expand_relu"  # an activation in the middle of the network, 4-D, int8


@pytest.fixture(scope="module")
def golden(int8_model, tmp_path_factory):
    """The INT8 model's tensors, .npy, NCHW (our default layout)."""
    out = tmp_path_factory.mktemp("golden") / "nchw"
    return dump_tflite(int8_model, GRACE_HOPPER, out, fmt="npy")


@pytest.fixture(scope="module")
def golden_nhwc(int8_model, tmp_path_factory):
    """The same run written channel_last: TFLite's own NHWC / OHWI / 1HWC."""
    out = tmp_path_factory.mktemp("golden") / "nhwc"
    return dump_tflite(int8_model, GRACE_HOPPER, out, fmt="npy", data_format="channel_last")


def theirs_from(golden, tmp_path, name="theirs"):
    """Their directory: a copy of the golden files (the manifest left out, as theirs has
    none)."""
    out = tmp_path / name
    shutil.copytree(golden, out, ignore=shutil.ignore_patterns("manifest.*"))
    return out


def row(report, name):
    return next(r for r in report.results if r.name == name)


# --- Self-checks -----------------------------------------------------------------------------

# Every format and both layouts in the default run; the rest of the cross product is slow.
FORMAT_LAYOUTS = [
    ("txt", "channel_first"),
    ("npy", "channel_last"),
    ("bin", "channel_first"),
    ("hex", "channel_last"),
    ("c", "channel_first"),
]
SLOW_FORMAT_LAYOUTS = [
    pytest.param(fmt, layout, marks=pytest.mark.slow)
    for fmt in ("txt", "npy", "bin", "hex", "c")
    for layout in ("channel_first", "channel_last")
    if (fmt, layout) not in FORMAT_LAYOUTS
]


@pytest.mark.parametrize(("fmt", "data_format"), FORMAT_LAYOUTS + SLOW_FORMAT_LAYOUTS)
def test_a_dump_verifies_against_itself_with_zero_difference(
    fmt, data_format, golden, int8_model, tmp_path, capsys
):
    """Against itself, and against the .npy NCHW dump of the same run: the second reads the
    two sides with different readers, so a byte-order or parsing mistake would show."""
    dumped = dump_tflite(int8_model, GRACE_HOPPER, tmp_path / "g", fmt=fmt, data_format=data_format)
    written = [t for t in json.loads((dumped / "manifest.json").read_text())["tensors"]]
    written = [t for t in written if t["files"]]
    assert main(["verify", str(dumped), str(dumped), "--report", str(tmp_path / "r")]) == 0
    assert f"{len(written)} of {len(written)} tensors within tolerance" in capsys.readouterr().out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(report["tensors"]) == len(written) > 150
    assert all(r["exact"] == r["elements"] and r["max_diff"] == 0 for r in report["tensors"])
    assert report["layout"] == ("NCHW" if data_format == "channel_first" else "NHWC")
    across = verify(golden, dumped)
    assert across.passed and len(across.results) == len(written)


def test_a_rewritten_per_tensor_model_dumps_and_verifies(per_tensor_model, tmp_path, capsys):
    """`convert --per-tensor --equalize --absorb-bias --bias-correction` changes weights and
    biases only: its golden set dumps and verifies like any INT8 model's, and names the
    rewrites its model went through."""
    dumped = dump_tflite(per_tensor_model, GRACE_HOPPER, tmp_path / "g", fmt="npy")
    manifest = json.loads((dumped / "manifest.json").read_text())
    assert manifest["per_tensor"] is True
    assert manifest["steps"] == ["equalize", "absorb_bias", "bias_correction"]
    assert main(["verify", str(dumped), str(dumped)]) == 0
    assert "tensors within tolerance" in capsys.readouterr().out


def test_channel_last_tensors_verify_against_a_channel_first_dump(golden, golden_nhwc):
    """Their whole set in NHWC (TFLite's order): `auto` finds it from the shapes and values
    and passes; declared NCHW, every activation with spatial extent is a layout mismatch."""
    report = verify(golden, golden_nhwc)
    assert report.passed and report.layout == "NHWC"
    assert row(report, LAYER).layout == "NHWC"
    assert row(report, "block_1_expand.folded_kernel").layout == "OHWI"  # weights follow
    declared = verify(golden, golden_nhwc, layout="NCHW")
    assert not declared.passed
    first = declared.first_divergence
    assert first.status == "layout" and first.layout != first.expected_layout


# --- Injected faults -------------------------------------------------------------------------


def test_one_wrong_value_is_the_first_divergence_with_its_index(golden, tmp_path, capsys):
    theirs = theirs_from(golden, tmp_path)
    values = np.load(theirs / f"{LAYER}.npy")  # NCHW as written
    n, c, h, w = 0, 17, 5, 9
    values[n, c, h, w] ^= 0x10  # one flipped bit
    np.save(theirs / f"{LAYER}.npy", values)

    report = verify(golden, theirs)
    first = report.first_divergence
    assert first.name == LAYER and first.beyond == 1 and first.max_diff == 16
    assert first.first["nchw"] == [n, c, h, w]
    assert [r.name for r in report.results if not r.passed] == [LAYER]  # later ones are ours

    assert main(["verify", str(golden), str(theirs)]) == 1
    out = capsys.readouterr().out
    assert "<- first divergence" in out and "n=0, c=17, h=5, w=9" in out
    # The printed trace command explains exactly that element of the golden tensor.
    command = next(line for line in out.splitlines() if "explain it:" in line)
    argv = shlex.split(command.split("explain it: ", 1)[1])
    assert argv[:2] == ["mobilenet-v2", "trace"]
    assert main(argv[1:]) == 0
    trace = capsys.readouterr().out
    expected = np.load(golden / f"{LAYER}.npy")[n, c, h, w]
    assert f"= {expected} (matches the tensor)" in trace


@pytest.mark.parametrize(
    ("fmt", "layout"), [("npy", "NHWC"), ("bin", "NHWC"), ("bin", "NCWH"), ("bin", "NWHC")]
)
def test_one_layer_stored_transposed_in_an_nchw_set_is_a_layout_mismatch(
    fmt, layout, golden, tmp_path
):
    """With npy the shape already tells; a raw .bin has no shape, so the values must (the
    layer is square: NCWH has NCHW's shape)."""
    theirs = theirs_from(golden, tmp_path)
    values = np.load(theirs / f"{LAYER}.npy")
    transposed = np.ascontiguousarray(values.transpose(["NCHW".index(a) for a in layout]))
    if fmt == "npy":
        np.save(theirs / f"{LAYER}.npy", transposed)
    else:
        (theirs / f"{LAYER}.npy").unlink()
        (theirs / f"{LAYER}.bin").write_bytes(transposed.tobytes())
    report = verify(golden, theirs)
    assert report.layout == "NCHW"  # the rest of the set says so
    bad = row(report, LAYER)
    assert (bad.status, bad.layout, bad.expected_layout) == ("layout", layout, "NCHW")
    assert bad.beyond == 0  # reported as a transpose, not as garbage values
    assert report.first_divergence is bad


def test_off_by_one_everywhere_in_one_layer_is_counted_in_lsb(golden, tmp_path, capsys):
    """As a kernel that rounds differently would do (docs/reference.md)."""
    theirs = theirs_from(golden, tmp_path)
    values = np.load(theirs / f"{LAYER}.npy")
    off = np.where(values < 127, values + 1, values - 1).astype(values.dtype)
    np.save(theirs / f"{LAYER}.npy", off)
    report = verify(golden, theirs)
    bad = report.first_divergence
    assert bad.name == LAYER and bad.status == "differs"
    assert (bad.beyond, bad.max_diff, bad.mean_diff, bad.exact) == (values.size, 1, 1, 0)
    assert main(["verify", str(golden), str(theirs), "--tolerance", "1"]) == 0
    assert "(1 LSB," in capsys.readouterr().out


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="measured on x86 (AMD EPYC, Intel Xeon); other CPUs' optimized kernels differ elsewhere",
)
def test_optimized_kernels_first_diverge_where_docs_reference_says(tmp_path):
    """docs/reference.md: LiteRT's optimized kernels first differ from the reference kernels
    at op 2, the first 1x1 projection, by one step (measured on AMD EPYC and Intel Xeon;
    the optimized 1x1 convolution rounds differently, the two ops before it agree)."""
    assert "first differ at op 2" in " ".join((ROOT / "docs" / "reference.md").read_text().split())
    reference = dump_tflite(FIXTURE_TFLITE, GRACE_HOPPER, tmp_path / "ref", fmt="npy")
    optimized = dump_tflite(
        FIXTURE_TFLITE, GRACE_HOPPER, tmp_path / "opt", fmt="npy", kernels="optimized"
    )
    first = verify(reference, optimized).first_divergence
    assert (first.name, first.op) == ("expanded_conv_project_BN", "2 CONV_2D")
    assert first.max_diff == 1 and 0 < first.beyond < first.elements // 100


# --- Their own spellings of the formats ------------------------------------------------------


def test_hand_written_files_in_each_format(golden, tmp_path):
    """Files a test bench writes, not ours: a C array without our macros, a plain list of
    numbers, $readmemh hex with comments, a headerless .bin given with --tensor."""
    name = "block_1_project.folded_bias"  # int32, 24 values
    values = np.load(golden / f"{name}.npy")
    files = {
        "c": "/* from our RTL */\nconst int32_t bias[] = {"
        + ", ".join(str(v) if v != -(2**31) else "(-2147483647 - 1)" for v in values.tolist())
        + ",};\n",
        "txt": "# from our RTL simulation\n" + "\n".join(map(str, values)) + "\n",
        "hex": "// bias\n" + "\n".join(f"{int(v) & 0xFFFFFFFF:x}" for v in values) + "\n",
    }
    for fmt, text in files.items():
        path = tmp_path / f"mine.{fmt}"
        path.write_text(text)
        report = verify(golden, path, fmt=fmt, tensor=name)
        assert report.passed and row(report, name).exact == values.size, fmt
    # Multi-dimensional, qualifiers and attributes, hex bit patterns (two's complement)
    path = tmp_path / "mine2.h"
    rows = ", ".join(
        "{" + ", ".join(f"0x{int(v) & 0xFFFFFFFF:08x}" for v in r) + "}"
        for r in values.reshape(4, -1)
    )
    path.write_text(f"int32_t const bias[4][6] __attribute__((aligned(16))) = {{{rows}}};\n")
    assert verify(golden, path, tensor=name).passed
    path = tmp_path / "dump_0042.raw"
    path.write_bytes(values.astype("<i4").tobytes())
    assert verify(golden, path, fmt="bin", tensor=name).passed


def test_float_tensors_are_compared_relative_to_their_magnitude(
    int8_float_io_model, tmp_path, capsys
):
    golden = dump_tflite(int8_float_io_model, GRACE_HOPPER, tmp_path / "g", fmt="npy")
    theirs = theirs_from(golden, tmp_path)
    name = next(p.stem for p in theirs.glob("*.npy") if np.load(p).dtype == np.float32)
    values = np.load(theirs / f"{name}.npy")
    worst = float(np.abs(values).max())
    nudged = values.copy()
    nudged.flat[0] += np.float32(worst * 1e-6)  # float32 rounding of another summation order
    np.save(theirs / f"{name}.npy", nudged)
    close = row(verify(golden, theirs), name)
    assert close.passed and close.unit == "relative" and 0 < close.max_diff < 1e-5
    nudged.flat[0] += np.float32(worst * 1e-3)
    np.save(theirs / f"{name}.npy", nudged)
    far = row(verify(golden, theirs), name)
    assert far.status == "differs" and far.beyond == 1 and far.max_diff > 1e-4
    nudged.flat[1] = np.nan  # a NaN is infinitely far, and the report stays strict JSON
    np.save(theirs / f"{name}.npy", nudged)
    assert main(["verify", str(golden), str(theirs), "--report", str(tmp_path / "r")]) == 1
    text = (tmp_path / "r" / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    nan_row = next(r for r in data["tensors"] if r["name"] == name)
    assert nan_row["max_diff"] == "inf" and nan_row["beyond"] == 2


def test_report_directory(golden, tmp_path, capsys):
    theirs = theirs_from(golden, tmp_path)
    values = np.load(theirs / f"{LAYER}.npy")
    values[0, 0, 0, 0] = values[0, 0, 0, 0] + 1 if values[0, 0, 0, 0] < 127 else 0
    np.save(theirs / f"{LAYER}.npy", values)
    (theirs / "notes.npy").write_bytes((theirs / f"{LAYER}.npy").read_bytes())
    (theirs / "Conv1_relu.npy").unlink()
    report_dir = tmp_path / "report"
    assert main(["verify", str(golden), str(theirs), "--report", str(report_dir)]) == 1
    data = json.loads((report_dir / "report.json").read_text())
    assert data["passed"] is False and data["first_divergence"] == LAYER
    assert data["missing"] == ["Conv1_relu"] and data["ignored"] == ["notes.npy"]
    markdown = (report_dir / "report.md").read_text()
    assert "first divergence: block_3_expand_relu" in markdown and "| tensor" in markdown


# --- Bad input -------------------------------------------------------------------------------


def _bad(tmp_path, golden, case):
    theirs = theirs_from(golden, tmp_path)
    if case == "no_manifest":
        return [str(theirs), str(theirs)]
    if case == "wrong_size":
        (theirs / f"{LAYER}.npy").unlink()
        (theirs / f"{LAYER}.bin").write_bytes(b"\0" * 1000)
        return [str(golden), str(theirs)]
    if case == "unknown_format":
        path = tmp_path / "layer.dat"
        path.write_bytes(b"\0" * 16)
        return [str(golden), str(path), "--tensor", LAYER]
    if case == "nothing_matches":
        other = tmp_path / "other"
        other.mkdir()
        (other / "conv_0_out.npy").write_bytes((theirs / f"{LAYER}.npy").read_bytes())
        return [str(golden), str(other)]
    if case == "unknown_tensor":
        return [str(golden), str(theirs / f"{LAYER}.npy"), "--tensor", "block_3_expand_rel"]
    if case == "not_npy":
        (theirs / f"{LAYER}.npy").write_text("1 2 3\n")
        return [str(golden), str(theirs)]
    if case == "empty_npy":
        (theirs / f"{LAYER}.npy").write_bytes(b"")
        return [str(golden), str(theirs)]
    if case == "out_of_range":  # an int8 layer holding 300: an unsaturated accumulator
        values = np.load(theirs / f"{LAYER}.npy").astype(np.int64)
        values[0, 1, 2, 3] = 300
        (theirs / f"{LAYER}.txt").write_text(" ".join(map(str, values.reshape(-1).tolist())))
        (theirs / f"{LAYER}.npy").unlink()
        return [str(golden), str(theirs)]
    if case == "two_files":
        (theirs / f"{LAYER}.bin").write_bytes(np.load(theirs / f"{LAYER}.npy").tobytes())
        return [str(golden), str(theirs)]
    if case == "index_named":  # "3" is a tensor index: a file must be named by its stem
        (theirs / "3.npy").write_bytes((theirs / f"{LAYER}.npy").read_bytes())
        return [str(golden), str(theirs / "3.npy")]
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_manifest", "no manifest.json, so not a dump directory"),
        ("wrong_size", "1000 bytes, but tensor block_3_expand_relu [1, 144, 56, 56] int8 has"),
        ("unknown_format", "cannot tell the format from the extension '.dat'"),
        ("nothing_matches", "no file is named like a tensor of"),
        ("unknown_tensor", "no tensor named 'block_3_expand_rel' (did you mean"),
        ("not_npy", "cannot read as npy"),
        ("empty_npy", "cannot read as npy"),
        ("out_of_range", "value 300 is outside int8 [-128, 127]"),
        ("two_files", "block_3_expand_relu.bin and block_3_expand_relu.npy are both tensor"),
        ("index_named", "no tensor of"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(case, message, golden, tmp_path, capsys):
    argv = _bad(tmp_path, golden, case)
    report = tmp_path / "report"
    assert main(["verify", *argv, "--report", str(report)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert "Traceback" not in captured.err and not report.exists()


def test_a_dump_of_another_preprocessing_is_named_as_the_cause(golden, int8_model, tmp_path):
    """THEIRS made by `dump --resize stretch` (as tflite_inference.py --save_to does): the
    input already differs, and the report says why before anyone debugs a kernel."""
    theirs = dump_tflite(int8_model, GRACE_HOPPER, tmp_path / "s", fmt="npy", resize="stretch")
    report = verify(golden, theirs)
    assert report.first_divergence.name == "input_layer"
    assert any("another preprocessing" in note for note in report.notes)


def test_unsigned_bytes_for_a_signed_tensor_are_read_as_twos_complement(golden, tmp_path):
    """A test bench's `uint8_t` dump of an int8 layer: the same bytes, so the same values."""
    values = np.load(golden / f"{LAYER}.npy")
    path = tmp_path / f"{LAYER}.h"
    text = ", ".join(str(v) for v in values.reshape(-1).view(np.uint8).tolist())
    path.write_text(f"const uint8_t out[{values.size}] = {{{text}}};\n")
    assert verify(golden, path).passed
