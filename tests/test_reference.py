"""The NumPy integer reference equals LiteRT's reference kernels on every tensor, for our
int8 per-channel and (equalized) per-tensor models and the fixture's uint8 per-tensor model,
on 20 real images."""

from __future__ import annotations

import json
import subprocess
import sys

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from conftest import FIXTURE_TFLITE, IMAGES, SAMPLE

from mobilenet_v2.cli import main
from mobilenet_v2.golden.manifest import read_tensor
from mobilenet_v2.inference.classifier import load_for
from mobilenet_v2.reference import ReferenceInterpreter, UnsupportedOpError
from mobilenet_v2.reference.fixed_point import multiply_by_quantized_multiplier, quantize_multiplier

PHOTOS = sorted(p for p in IMAGES.glob("*") if p.suffix in (".bmp", ".jpg"))  # [] without data
REAL_IMAGES = PHOTOS + sorted(SAMPLE.glob("*.JPEG"))[: 20 - len(PHOTOS)]


def litert_reference(model):
    interpreter = Interpreter(
        model_path=str(model),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    return interpreter


def mismatches(model, images) -> dict[str, int]:
    """Elements that differ, per op output, over all images (zero everywhere is the target)."""
    reference = ReferenceInterpreter(model)
    interpreter = litert_reference(model)
    index = interpreter.get_input_details()[0]["index"]
    counts: dict[str, int] = {}
    for image in images:
        x = reference.quantize_input(load_for(reference, image)[None])
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        values = reference.run(x)
        for op in reference.model.operators:
            for out in op.outputs:
                expected = interpreter.get_tensor(out)
                assert values[out].dtype == expected.dtype and values[out].shape == expected.shape
                key = f"{op.index} {op.opcode}"
                counts[key] = counts.get(key, 0) + int((values[out] != expected).sum())
    return counts


@pytest.mark.shared
def test_twenty_real_images():
    assert len(REAL_IMAGES) == 20


@pytest.mark.shared
def test_int8_per_channel_model_is_bit_exact(int8_model):
    counts = mismatches(int8_model, REAL_IMAGES)
    assert {k.split()[1] for k in counts} == {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "MEAN",
        "FULLY_CONNECTED",
        "SOFTMAX",
    }
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.shared
def test_int8_per_tensor_model_is_bit_exact(per_tensor_model):
    """`convert --per-tensor --equalize --absorb-bias --bias-correction`: one scale per weight
    tensor, weights and biases rewritten; the integer arithmetic is the per-channel model's."""
    counts = mismatches(per_tensor_model, REAL_IMAGES)
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.shared
@pytest.mark.integration
@pytest.mark.slow  # a conversion of its own; the default run has the RELU6 models bit-exact
def test_relu_model_is_bit_exact(splits, tmp_path):
    """`--relu --equalize` (the paper's route): the convolutions fuse RELU, not RELU6, which
    the reference clamps to the output's whole range. 96 px, 16 calibration images, three
    photos: the arithmetic is the point, not the accuracy."""
    from mobilenet_v2.lite.tflite_file import read_tflite

    model = tmp_path / "relu.tflite"
    calibration = ["--calibration-dir", str(splits[0]), "--calibration-size", "16"]
    flags = ["--size", "96", "--per-tensor", "--relu", "--equalize", *calibration]
    assert main(["convert", "--output", str(model), "--weights", str(FIXTURE_TFLITE), *flags]) == 0
    activations = {
        op.options.fusedActivationFunction
        for op in read_tflite(model).operators
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")
    }
    assert activations == {0, 1, 3}  # NONE (project), RELU (pairs), RELU6 (Conv_1)
    counts = mismatches(model, PHOTOS[:3])
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.shared
def test_uint8_fixture_is_bit_exact():
    counts = mismatches(FIXTURE_TFLITE, REAL_IMAGES)
    assert {k.split()[1] for k in counts} == {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "AVERAGE_POOL_2D",
        "RESHAPE",
        "SOFTMAX",
    }
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.shared
def test_float_io_quantize_and_dequantize_are_bit_exact(int8_float_io_model):
    counts = mismatches(int8_float_io_model, REAL_IMAGES[:3])
    assert any("QUANTIZE" in k for k in counts) and any("DEQUANTIZE" in k for k in counts)
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}


@pytest.mark.parametrize(
    "real, expected",
    [
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.0, (0, 0)),
        (2.0**-40, (0, 0)),
        (0.75, (3 << 29, 0)),
        (1 - 2**-33, (1 << 30, 1)),
    ],  # the last rounds up to 2**31
)
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


def test_requantization_rounding_is_gemmlowps():
    # 0.5 = 2**30 in Q0.31, shift 0: the doubling high multiply alone rounds halves up.
    m, shift = quantize_multiplier(0.5)
    assert multiply_by_quantized_multiplier(np.array([1, -1, 3, -3]), m, shift).tolist() == [
        1,
        0,
        2,
        -1,
    ]
    # 0.25: an exact high multiply, then the rounding shift takes halves away from zero.
    m, shift = quantize_multiplier(0.25)
    assert shift == -1
    assert multiply_by_quantized_multiplier(np.array([2, -2, 6, -6]), m, shift).tolist() == [
        1,
        -1,
        2,
        -2,
    ]


def test_importing_the_reference_loads_no_tensorflow_and_no_interpreter():
    code = (
        "import sys, mobilenet_v2.reference, mobilenet_v2.analysis.trace; "
        "bad = [m for m in sys.modules if m.startswith('tensorflow') or m.startswith('keras') "
        "or m == 'ai_edge_litert.interpreter' or '_pywrap' in m]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def set_opcode(model_path, out_path, op_index, builtin):
    model = schema.ModelT.InitFromPackedBuf(model_path.read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    model.operatorCodes.append(code)
    model.subgraphs[0].operators[op_index].opcodeIndex = len(model.operatorCodes) - 1
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out_path.write_bytes(bytes(builder.Output()))
    return out_path


@pytest.mark.shared
def test_unsupported_op_is_named(int8_model, tmp_path):
    model = set_opcode(int8_model, tmp_path / "m.tflite", 3, schema.BuiltinOperator.LOGISTIC)
    with pytest.raises(UnsupportedOpError, match="op 3 is LOGISTIC"):
        ReferenceInterpreter(model)


@pytest.mark.parametrize(("quantize", "kind"), [("none", "float32"), ("float16", "float16")])
def test_float_models_are_refused_naming_the_file_and_the_kind(
    models, tmp_path, capsys, quantize, kind
):
    path = models[quantize]
    # Then the first convolution: op 0, or after float16's DEQUANTIZE ops.
    expected = (
        f"{path}: the NumPy reference runs int8/uint8 and int16x8 quantized models only; this "
        f"is a {kind} model (op "
    )
    with pytest.raises(UnsupportedOpError) as error:
        ReferenceInterpreter(path)
    assert str(error.value).startswith(expected)
    assert f"CONV_2D: FLOAT32 input, {kind.upper()} weights)" in str(error.value)
    image = str(IMAGES / "cat.bmp")
    for argv in (
        ["trace", str(path), image, "--tensor", "0", "--index", "0,0,0,0"],
        [
            "dump",
            image,
            "--model",
            str(path),
            "--output",
            str(tmp_path / "d"),
            "--engine",
            "reference",
        ],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"mobilenet-v2: error: {expected}") and len(err.splitlines()) == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.shared
@pytest.mark.integration  # converts (the fixture is asked for by name)
@pytest.mark.parametrize("model, tensors", [("int8_model", 173), ("int16x8_model", 175)])
def test_reference_dump_equals_the_litert_dump(model, tensors, request, tmp_path):
    """Also for 16x8 (float I/O: two tensors more, the float input and output)."""
    image = str(IMAGES / "grace_hopper.bmp")
    model = request.getfixturevalue(model)
    args = ["dump", image, "--model", str(model), "--format", "npy", "--output"]
    assert main([*args, str(tmp_path / "numpy"), "--engine", "reference"]) == 0
    assert main([*args, str(tmp_path / "litert")]) == 0
    numpy_manifest = json.loads((tmp_path / "numpy" / "manifest.json").read_text())
    assert numpy_manifest["engine"] == "numpy-reference"
    compared = 0
    for entry in numpy_manifest["tensors"]:
        for name in entry["files"]:
            ours, _ = read_tensor(tmp_path / "numpy" / name)
            theirs, _ = read_tensor(tmp_path / "litert" / name)
            assert np.array_equal(ours, theirs) and ours.dtype == theirs.dtype, name
            compared += 1
    assert compared == len(numpy_manifest["tensors"]) == tensors


@pytest.mark.shared
@pytest.mark.parametrize(
    "tensor, index, expected",
    [
        ("Conv1_relu", "0,3,50,60", ["int32 accumulator", "+ bias", "multiplier", "shift"]),
        ("block_1_depthwise_relu", "0,5,10,12", ["(2, 2, 5)", "RoundingDivideByPOT"]),
        ("block_2_add", "0,3,4,5", ["<< 20", "sum ="]),
        ("global_average_pooling2d", "0,7", ["sum of 49 inputs", "zero point"]),
        ("predictions_logits", "0,652", ["effective scale", "round half away"]),
        ("predictions", "0,652", ["row max", "reciprocal"]),
    ],
)
def test_trace_explains_one_element(int8_model, capsys, tensor, index, expected):
    image = str(IMAGES / "grace_hopper.bmp")
    assert main(["trace", str(int8_model), image, "--tensor", tensor, "--index", index]) == 0
    out = capsys.readouterr().out
    assert "(matches the tensor)" in out
    for text in expected:
        assert text in out


@pytest.mark.shared
def test_trace_final_value_is_the_dumped_value(int8_model, tmp_path, capsys):
    image = str(IMAGES / "grace_hopper.bmp")
    assert main(["dump", image, "--model", str(int8_model), "--output", str(tmp_path / "d")]) == 0
    nchw, _ = read_tensor(tmp_path / "d" / "block_5_expand_relu.txt")
    assert (
        main(
            [
                "trace",
                str(int8_model),
                image,
                "--tensor",
                "block_5_expand_relu",
                "--index",
                "0,17,3,9",
            ]
        )
        == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.strip().startswith(f"= {int(nchw[0, 17, 3, 9])} ")


@pytest.mark.shared
def test_trace_an_unknown_tensor_is_one_line(int8_model, capsys):
    image = str(IMAGES / "grace_hopper.bmp")
    args = ["trace", str(int8_model), image, "--tensor", "no_such_tensor", "--index", "0,1,2,3"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no tensor named" in err


@pytest.mark.shared
@pytest.mark.parametrize(
    "index, message",
    [
        ("0,1", "--index: tensor of shape [1, 112, 112, 32] needs --index n,c,h,w"),
        (
            "0,99,0,0",
            "--index: index [0, 99, 0, 0] (n,c,h,w) is outside NCHW shape [1, 32, 112, 112]",
        ),
    ],
)
def test_trace_an_index_the_tensor_lacks_is_a_usage_error(int8_model, capsys, index, message):
    """An invalid flag value, as argparse's own: one line, exit status 2."""
    image = str(IMAGES / "grace_hopper.bmp")
    args = ["trace", str(int8_model), image, "--tensor", "Conv1_relu", "--index", index]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"mobilenet-v2 trace: error: {message} (see --help)\n"


@pytest.mark.parametrize("index", ["a,b", "0,1.5", "", "0,,1"])
def test_trace_an_index_that_is_not_integers_is_a_usage_error(capsys, index):
    with pytest.raises(SystemExit) as exit_:
        main(["trace", "m.tflite", "x.bmp", "--tensor", "0", "--index", index])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"argument --index: expected integers like 0,5,10,12, got {index!r}" in err
