"""16-bit activations, 8-bit weights (A16W8, `convert --quantize int16x8`, issue 27): the
graph TFLite's 16x8 mode makes, its accuracy, the NumPy reference bit-exact against LiteRT's
reference kernels, and golden sets in every format. One shared conversion (`int16x8_model`:
the fixture weights, float32 I/O, 64 calibration images)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES
from test_c_export import CHECK, build_and_run, checksum, needs_cc
from test_reference import REAL_IMAGES, mismatches

from mobilenet_v2.cli import main
from mobilenet_v2.golden.dump import dump_tflite
from mobilenet_v2.golden.verify import verify
from mobilenet_v2.lite.model_metadata import read_standard_metadata
from mobilenet_v2.lite.record import read_metadata
from mobilenet_v2.lite.tflite_file import read_tflite
from mobilenet_v2.reference import ReferenceInterpreter, UnsupportedOpError

pytestmark = pytest.mark.shared

OPS_16X8 = {
    "QUANTIZE",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ADD",
    "MEAN",
    "FULLY_CONNECTED",
    "SOFTMAX",
    "DEQUANTIZE",
}
GRACE_HOPPER = IMAGES / "grace_hopper.bmp"


def test_activations_are_int16_with_zero_point_0_weights_int8_biases_int64(int16x8_model):
    tfl = read_tflite(int16x8_model)
    assert {op.opcode for op in tfl.operators} == OPS_16X8
    for op in tfl.operators:
        if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for index in (op.inputs[0], *op.outputs):
            tensor = tfl.tensors[index]
            assert tensor.type_name == "INT16" and tensor.zero_points.tolist() == [0], op
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weights, bias = tfl.tensors[op.inputs[1]], tfl.tensors[op.inputs[2]]
            assert weights.type_name == "INT8" and bias.type_name == "INT64"
            assert weights.scales.size == bias.scales.size > 1  # per output channel
    assert tfl.tensors[tfl.inputs[0]].type_name == "FLOAT32"


def test_the_model_and_its_metadata_say_what_it_is(int16x8_model):
    raw = int16x8_model.read_bytes()
    record = read_metadata(raw)
    assert record["quantize"] == "int16x8" and record["io_type"] == "float32"
    assert record["weight_grid"]["exact"] == 17_993  # as the INT8 model (test_weight_grid)
    description = read_standard_metadata(raw, int16x8_model).description
    assert "int16 activations and int8 weights (A16W8, TFLite's 16x8 mode)" in description
    assert "weights on their source's quantization grid" in description


def test_the_reference_is_bit_exact_on_twenty_real_images(int16x8_model):
    """Every element of every op output, against LiteRT's reference kernels: int64
    accumulators, 16-bit requantization multipliers, the int16 ADD and MEAN, the table
    softmax, QUANTIZE to and DEQUANTIZE from int16."""
    counts = mismatches(int16x8_model, REAL_IMAGES)
    assert {key.split()[1] for key in counts} == OPS_16X8
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.parametrize(
    "tensor, index, expected",
    [
        ("Conv1_relu", "0,3,50,60", ["int64 accumulator", "16-bit multiplier", "halves up"]),
        ("block_2_add", "0,3,4,5", ["<< 15", "sum ="]),
        ("predictions_logits", "0,652", ["int64 accumulator", "effective scale"]),
        ("predictions", "0,652", ["exp table entry", "reciprocal by table"]),
    ],
)
def test_trace_explains_one_element_in_16x8_steps(int16x8_model, capsys, tensor, index, expected):
    image = str(GRACE_HOPPER)
    assert main(["trace", str(int16x8_model), image, "--tensor", tensor, "--index", index]) == 0
    out = capsys.readouterr().out
    assert "(matches the tensor)" in out
    for text in expected:
        assert text in out


# --- Accuracy --------------------------------------------------------------------------------

HELD_OUT = 50  # LiteRT runs 16x8 on its reference kernels (0.22 s an image, any thread count)


@pytest.fixture(scope="module")
def accuracy(int16x8_model, splits):
    """Top-1 and agreement with the float model on the first 50 held-out images (sorted by
    name: 50 classes), default kernels: a floor; benchmarks/a16w8.py measures all 500."""
    from mobilenet_v2.analysis import evaluate
    from mobilenet_v2.inference.classifier import load_keras, load_tflite

    images = evaluate.labelled_images(splits[1])[:HELD_OUT]
    models = [load_keras(str(FIXTURE_TFLITE)), load_tflite(int16x8_model)]
    float_row, a16w8 = evaluate.evaluate(models, images)["results"]
    assert float_row["images"] == a16w8["images"] == HELD_OUT
    print(f"float {float_row['top1']}, A16W8 {a16w8['top1']}, agreement {a16w8['agreement_top1']}")
    return float_row, a16w8


def test_a16w8_top1_is_within_one_image_of_float(accuracy):
    """Measured on these 50 images (AMD EPYC, built-in kernels, whose 16x8 convolutions are
    TFLite's reference code on every CPU): A16W8 top-1 equal to float's (and on all 500,
    one image above). Allowed: one image below (2 points); a broken conversion loses far
    more."""
    float_row, a16w8 = accuracy
    assert a16w8["top1"] >= float_row["top1"] - 0.02 - 1e-9


def test_a16w8_agrees_with_float_on_nearly_every_image(accuracy):
    """Measured on these 50: 100 % agreement (99.4 % on all 500). Allowed: 96 % (two
    flips); A16W8 with the weights requantized by the converter flips 3.4 % of the 500,
    and a broken calibration far more."""
    assert accuracy[1]["agreement_top1"] >= 0.96 - 1e-9


# --- Golden sets -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_npy(int16x8_model, tmp_path_factory):
    return dump_tflite(
        int16x8_model, GRACE_HOPPER, tmp_path_factory.mktemp("g16") / "npy", fmt="npy"
    )


@pytest.mark.parametrize("fmt", ["txt", "npy", "bin", "hex", "c"])
def test_a16w8_golden_set_verifies_against_itself_in_every_format(
    fmt, int16x8_model, golden_npy, tmp_path, capsys
):
    """int16 activations, int8 weights and int64 biases, each written with its own element
    size (the manifest says which) and read back exactly against the .npy set of the same
    run, whose reader is another (a width or parsing mistake shows)."""
    dumped = dump_tflite(int16x8_model, GRACE_HOPPER, tmp_path / "g", fmt=fmt)
    manifest = json.loads((dumped / "manifest.json").read_text())
    written = [t for t in manifest["tensors"] if t["files"]]
    assert {(t["dtype"], t["element_size"]) for t in written} >= {
        ("int16", 2),
        ("int8", 1),
        ("int64", 8),
    }
    layer = next(t for t in written if t["files"][0].startswith("block_3_expand_relu."))
    assert layer["dtype"] == "int16"
    # Read back by this format's reader against the .npy set's (another reader).
    assert main(["verify", str(golden_npy), str(dumped)]) == 0
    assert f"{len(written)} of {len(written)} tensors within tolerance" in capsys.readouterr().out


def test_one_wrong_int16_value_is_found_at_its_layer(golden_npy, tmp_path):
    golden = golden_npy
    theirs = tmp_path / "theirs"
    shutil.copytree(golden, theirs, ignore=shutil.ignore_patterns("manifest.*"))
    layer = "block_3_expand_relu"
    values = np.load(theirs / f"{layer}.npy")  # NCHW
    values[0, 17, 5, 9] ^= 0x100  # one flipped bit above the low byte
    np.save(theirs / f"{layer}.npy", values)
    report = verify(golden, theirs)
    first = report.first_divergence
    assert first.name == layer and first.beyond == 1 and first.max_diff == 256
    assert first.first["nchw"] == [0, 17, 5, 9]


@needs_cc
def test_c_headers_hold_int16_and_int64_arrays_that_compile_to_the_dumped_values(
    int16x8_model, tmp_path
):
    """The first block's and the classifier's headers (int16 activations, int8 weights,
    int64 biases) compiled, and each array's length and checksum printed by the program
    equal to the .npy dump's."""
    c_set = dump_tflite(int16x8_model, GRACE_HOPPER, tmp_path / "c", fmt="c")
    npy_set = dump_tflite(int16x8_model, GRACE_HOPPER, tmp_path / "npy", fmt="npy")
    entries = [
        e
        for e in json.loads((c_set / "manifest.json").read_text())["tensors"]
        if e["files"] and e["files"][0].startswith(("Conv1", "expanded_conv", "predictions"))
    ]
    assert {e["dtype"] for e in entries} >= {"int16", "int8", "int64"}
    bias = (c_set / "Conv1.folded_bias.h").read_text()
    assert "static const int64_t" in bias and "INT64_C(" in bias
    assert "static const int16_t" in (c_set / "Conv1_relu.h").read_text()
    checks = [
        f"    CHECK_{'FLOAT' if e['dtype'] == 'float32' else 'INT'}({e['c_name']});"
        for e in entries
    ]
    program = "\n".join(
        ["#include <stdint.h>", "#include <stdio.h>", "#include <string.h>"]
        + [f'#include "{e["files"][0]}"' for e in entries]
        + [CHECK, "int main(void) {", *checks, "    return 0;", "}", ""]
    )
    printed = build_and_run(c_set, program)
    npy = {e["index"]: e for e in json.loads((npy_set / "manifest.json").read_text())["tensors"]}
    expected = []
    for e in entries:
        array = np.load(npy_set / npy[e["index"]]["files"][0])
        expected.append(f"{e['c_name']} {array.size} {checksum(array)}")
    assert printed == expected


# --- Commands and bad input ------------------------------------------------------------------


def test_classify_and_benchmark_run_it_on_the_built_in_kernels(int16x8_model, capsys):
    assert main(["classify", "--model", str(int16x8_model), str(IMAGES / "cat.bmp")]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("n02124075 Egyptian_cat ")
    assert main(["benchmark", str(int16x8_model), "--runs", "1", "--warmup", "0"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "int16x8" in line)
    assert "| builtin " in row  # XNNPACK has no 16x8 path


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--quantize", "int16x8", "--per-tensor"], "--per-tensor applies to --quantize int8"),
        (["--quantize", "int16x8", "--equalize"], "--equalize prepares the model for"),
        (["--quantize", "int16x8", "--io-type", "int8"], "--io-type int8 needs --quantize int8"),
        (["--quantize", "int8", "--io-type", "int16"], "--io-type int16 needs --quantize int16x8"),
        (["--quantize", "float16", "--io-type", "int16"], "--io-type int16 needs --quantize"),
    ],
)
def test_flags_that_do_not_apply_to_int16x8_are_refused_in_one_line(
    flags, message, tmp_path, capsys
):
    argv = ["convert", "--output", str(tmp_path / "m.tflite"), "--weights", str(FIXTURE_TFLITE)]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "m.tflite").exists()


def patched(model_path: Path, tmp_path: Path, change) -> Path:
    """The model with `change(model)` applied to its unpacked flatbuffer, written beside."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_path.read_bytes(), 0)
    change(model, schema)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = tmp_path / "patched.tflite"
    out.write_bytes(bytes(builder.Output()))
    return out


def test_a_16x8_model_with_int32_biases_is_refused_naming_the_op(int16x8_model, tmp_path):
    """TFLite accumulates such a model in 32 bits (a converter option makes it); the
    reference computes 16x8 with int64 biases only, and says so rather than differ."""

    def int32_bias(model, schema) -> None:
        graph = model.subgraphs[0]
        conv = next(op for op in graph.operators if len(op.inputs) == 3)
        bias = graph.tensors[conv.inputs[2]]
        bias.type = schema.TensorType.INT32
        values = np.frombuffer(model.buffers[bias.buffer].data.tobytes(), "<i8")
        model.buffers[bias.buffer].data = np.frombuffer(values.astype("<i4").tobytes(), np.uint8)

    with pytest.raises(UnsupportedOpError, match=r"op \d+ CONV_2D: 16x8 with a INT32 bias"):
        ReferenceInterpreter(patched(int16x8_model, tmp_path, int32_bias))


def test_an_int16_activation_with_a_zero_point_is_refused_naming_it(int16x8_model, tmp_path):
    """TFLite's 16x8 kernels take symmetric int16 only; the reference names the tensor
    rather than compute something no runtime does."""

    def zero_point(model, schema) -> None:
        graph = model.subgraphs[0]
        graph.tensors[graph.operators[1].outputs[0]].quantization.zeroPoint = [5]

    with pytest.raises(UnsupportedOpError, match="has zero point 5; int16 activations need"):
        ReferenceInterpreter(patched(int16x8_model, tmp_path, zero_point))


def test_a_16x16_model_is_refused_naming_its_kind(int16x8_model, tmp_path):
    """int16 weights (no TFLite converter mode makes them for these ops) are not 16x8."""

    def int16_weights(model, schema) -> None:
        graph = model.subgraphs[0]
        conv = next(op for op in graph.operators if len(op.inputs) == 3)
        weights = graph.tensors[conv.inputs[1]]
        weights.type = schema.TensorType.INT16
        data = np.frombuffer(model.buffers[weights.buffer].data.tobytes(), np.int8)
        model.buffers[weights.buffer].data = np.frombuffer(data.astype("<i2").tobytes(), np.uint8)

    with pytest.raises(UnsupportedOpError, match="16-bit activations with INT16 weights"):
        ReferenceInterpreter(patched(int16x8_model, tmp_path, int16_weights))
