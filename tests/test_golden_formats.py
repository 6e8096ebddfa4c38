"""Every golden file format gives back exactly what it wrote.

A tiny NHWC activation of each dtype a dump writes goes through `write_dump` in each format
(txt, npy, bin, hex, c) and each data format (NCHW: channel_first, NHWC: channel_last), and
comes back through the reader `verify` uses (`formats.read_file`, with the golden set's own
manifest from `load_golden`) bit for bit: same dtype, same values (-0.0, subnormals and the
integer extremes included), in the written layout; npy, txt and C headers also keep the shape.
Needs no ../shared data and no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from mobilenet_v2.analysis.tensor_map import ModelTable, TensorInfo
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.golden.c_header import C_TYPES
from mobilenet_v2.golden.dump import write_dump
from mobilenet_v2.golden.formats import READ_FORMATS, read_file
from mobilenet_v2.golden.manifest import load_golden, read_tensor
from mobilenet_v2.golden.tensor_file import TensorFileError, TensorSpec

SHAPE = (1, 2, 3, 4)  # NHWC, every axis of a different size: a transpose cannot hide
# Every dtype a tensor file can hold (the C element types cover them all); bool has no C type
# of its own (see the last test).
DTYPES = [name for name in C_TYPES if name != "bool"]
# --data-format -> the layout an NHWC activation is written in.
WRITTEN_LAYOUT = {"channel_first": "NCHW", "channel_last": "NHWC"}
# The file each format writes for a tensor.
SUFFIX = {"txt": ".txt", "npy": ".npy", "bin": ".bin", "hex": ".hex", "c": ".h"}
KEEPS_SHAPE = {"txt", "npy", "c"}


def cases(formats) -> list:
    """(dtype, format) pairs."""
    return [
        pytest.param(dtype, fmt, id=f"{dtype}-{fmt}")
        for dtype in DTYPES
        for fmt in formats
    ]


def sample(dtype: str) -> np.ndarray:
    """Values that a lossy format would get wrong: the extremes, -0.0, a subnormal, 1/3."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    size = int(np.prod(SHAPE))
    if dt.kind == "b":
        return (np.arange(size) % 3 == 0).reshape(SHAPE)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        edges = np.array([info.min, info.max, 0, info.max // 2], dt)
        rest = rng.integers(info.min, info.max, size - edges.size, dtype=dt, endpoint=True)
    else:
        info = np.finfo(dt)
        edges = np.array([info.max, -info.max, info.smallest_subnormal, -0.0, 1 / 3], dt)
        rest = (rng.standard_normal(size - edges.size) * 100).astype(dt)
    return np.concatenate([edges, rest]).reshape(SHAPE)


def dump_one(directory, array: np.ndarray, fmt: str, data_format: str):
    """A golden set of one NHWC activation, as `dump` writes it; its tensor as verify sees it."""
    info = TensorInfo(
        index=0,
        name="x",
        kind="activation",
        shape=array.shape,
        dtype=array.dtype.name,
        layout="NHWC",
        file_name="x",
    )
    table = ModelTable(source="test", engine="tflite", tensors={0: info}, ops=[])
    write_dump(directory, table, {0: array}, {}, fmt, data_format)
    return load_golden(directory).tensors["x"]


def as_written(array: np.ndarray, data_format: str) -> np.ndarray:
    layout = WRITTEN_LAYOUT[data_format]
    return np.transpose(array, ["NHWC".index(axis) for axis in layout])


def test_the_formats_under_test_are_all_that_verify_reads():
    assert sorted(SUFFIX) == sorted(READ_FORMATS)


@pytest.mark.parametrize("data_format", sorted(WRITTEN_LAYOUT))
@pytest.mark.parametrize(("dtype", "fmt"), cases(READ_FORMATS))
def test_a_written_tensor_reads_back_bit_for_bit(tmp_path, dtype, fmt, data_format):
    array = sample(dtype)
    tensor = dump_one(tmp_path / "dump", array, fmt, data_format)
    expected = as_written(array, data_format)
    assert tensor.path.suffix == SUFFIX[fmt]
    assert tensor.layout == WRITTEN_LAYOUT[data_format]
    assert tensor.shape == expected.shape

    values, shape = read_file(tensor.path, fmt, tensor.spec)

    assert values.dtype == expected.dtype
    assert values.reshape(tensor.shape).tobytes() == np.ascontiguousarray(expected).tobytes()
    assert shape == (expected.shape if fmt in KEEPS_SHAPE else None)


@pytest.mark.parametrize("data_format", sorted(WRITTEN_LAYOUT))
@pytest.mark.parametrize(("dtype", "fmt"), cases(["txt", "npy"]))
def test_read_tensor_gives_back_the_array_and_its_written_layout(tmp_path, dtype, fmt, data_format):
    """The documented reader of a dump's own files: the array as written, and its header."""
    array = sample(dtype)
    tensor = dump_one(tmp_path / "dump", array, fmt, data_format)
    expected = np.ascontiguousarray(as_written(array, data_format))

    got, meta = read_tensor(tensor.path)

    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    assert meta["layout" if fmt == "txt" else "written_layout"] == WRITTEN_LAYOUT[data_format]


@pytest.mark.parametrize("fmt", ["txt", "npy", "bin", "hex"])
def test_a_bool_tensor_reads_back_as_bool(tmp_path, fmt):
    array = sample("bool")
    tensor = dump_one(tmp_path / "dump", array, fmt, "channel_last")

    values, _ = read_file(tensor.path, fmt, tensor.spec)

    assert values.dtype == np.bool_
    np.testing.assert_array_equal(values.reshape(SHAPE), array)


def test_a_bool_tensor_in_a_c_header_reads_back_as_its_uint8_values(tmp_path):
    """C has no bool: the header holds `uint8_t` 0/1, and that is what comes back."""
    array = sample("bool")
    tensor = dump_one(tmp_path / "dump", array, "c", "channel_last")

    values, shape = read_file(tensor.path, "c", tensor.spec)

    assert values.dtype == np.uint8 and shape == SHAPE
    np.testing.assert_array_equal(values.reshape(SHAPE), array.astype(np.uint8))


# --- C headers written by hand or by other tools: every legal C initializer reads -------------

HAND_SPEC = TensorSpec("x", (2, 3), np.dtype(np.uint8))


def read_hand_written(tmp_path, text: str) -> tuple[np.ndarray, tuple | None]:
    header = tmp_path / "x.h"
    header.write_text(text)
    return read_file(header, "c", HAND_SPEC)


@pytest.mark.parametrize(
    "literal", ["0xFFu", "0xffU", "0xFFul", "0XFFLLU", "255u", "255UL"], ids=str
)
def test_an_integer_suffix_after_any_literal_is_ignored(tmp_path, literal):
    values, _ = read_hand_written(
        tmp_path, f"const uint8_t x[2][3] = {{{{{literal}, 2, 3}}, {{4, 5, 6}}}};\n"
    )
    np.testing.assert_array_equal(values, [255, 2, 3, 4, 5, 6])


def test_octal_literals_read_as_c_reads_them(tmp_path):
    """`010` is 8 in C: a zero-padded value must not come back as decimal 10."""
    values, _ = read_hand_written(
        tmp_path, "const uint8_t x[2][3] = {{010, 0377u, 0}, {00, 7, 10}};\n"
    )
    np.testing.assert_array_equal(values, [8, 255, 0, 0, 7, 10])


def test_float_exponents_with_leading_zeros_are_not_octal(tmp_path):
    header = tmp_path / "x.h"
    header.write_text("const float x[2][3] = {{1e-010, 2.5e+07f, 0.0}, {0.5, 1E-05, 10.010}};\n")
    values, _ = read_file(header, "c", TensorSpec("x", (2, 3), np.dtype(np.float32)))
    expected = np.array([1e-10, 2.5e7, 0.0, 0.5, 1e-5, 10.01], np.float32)
    np.testing.assert_array_equal(values, expected)


def test_trailing_commas_in_an_initializer_add_no_values(tmp_path):
    values, shape = read_hand_written(
        tmp_path,
        "const uint8_t x[2][3] = {{1,2,3,},{4,5,6,},};\nconst uint32_t x_SHAPE[2] = {2u, 3u,};\n",
    )
    np.testing.assert_array_equal(values, [1, 2, 3, 4, 5, 6])
    assert shape == (2, 3)


def test_an_empty_field_between_values_is_refused_not_read_as_zero(tmp_path):
    with pytest.raises(TensorFileError, match=r"x\.h: not a list of uint8 values"):
        read_hand_written(tmp_path, "const uint8_t x[2][3] = {1,2,,3,4,5};\n")


@pytest.mark.parametrize("fmt", ["txt", "c"])
def test_a_negative_value_for_a_uint64_tensor_is_refused_not_wrapped(tmp_path, fmt):
    spec = TensorSpec("x", (2,), np.dtype(np.uint64))
    path = tmp_path / ("x.txt" if fmt == "txt" else "x.h")
    path.write_text("1 -1\n" if fmt == "txt" else "const uint64_t x[2] = {1, -1};\n")
    with pytest.raises(TensorFileError, match="value -1 is outside uint64"):
        read_file(path, fmt, spec)


def test_our_text_format_refuses_a_value_its_type_cannot_hold(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text('# type: "uint64"\n# shape: [2]\n1 -1\n')
    message = r"x\.txt: not a tensor dump file \(Python integer -1 out of bounds"
    with pytest.raises(MobileNetV2Error, match=message):
        read_tensor(path)


def test_our_text_format_refuses_an_integer_outside_its_type_not_wrapping_it(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text('# type: "int8"\n# shape: [2]\n1 300\n')
    with pytest.raises(MobileNetV2Error, match=r"value 300 is outside int8 \[-128, 127\]"):
        read_tensor(path)
