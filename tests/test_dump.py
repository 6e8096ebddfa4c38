"""Golden reference dumps: every interpreter tensor, exact values, true NCHW, quantization
parameters in the header, safe file names, manifests; and the float model's counterpart."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from conftest import FIXTURE_TFLITE, IMAGES, ROOT, randomize

from mobilenet_v2.analysis.tensor_map import ModelTable, TensorInfo, safe_file_name
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.preprocess import load_image
from mobilenet_v2.cli import main
from mobilenet_v2.golden.dump import dump_keras, dump_tflite, write_dump
from mobilenet_v2.golden.manifest import dequantize, read_tensor

GRACE_HOPPER = IMAGES / "grace_hopper.bmp"


def reference_run(model, image=GRACE_HOPPER, resize="crop", mean=128.0, std=128.0):
    """The interpreter that a dump must reproduce: reference kernels, all tensors kept."""
    interpreter = Interpreter(
        model_path=str(model),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = load_image(image, resize=resize, mean=mean, std=std)[None]
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.float32:
        info = np.iinfo(detail["dtype"])
        x = np.clip(np.rint(x / scale + zero_point), info.min, info.max)
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    return interpreter


@pytest.fixture(scope="module")
def dumped(int8_model, tmp_path_factory):
    """The INT8 model on grace_hopper, dumped as text and npy in both layouts."""
    out = {}
    for data_format in ("channel_first", "channel_last"):
        directory = tmp_path_factory.mktemp(data_format) / "dump"
        dump_tflite(int8_model, GRACE_HOPPER, directory, fmt="both", data_format=data_format)
        out[data_format] = directory
    return out


def manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


@pytest.mark.shared
def test_manifest_covers_every_interpreter_tensor(int8_model, dumped):
    interpreter = reference_run(int8_model)
    expected = {d["index"] for d in interpreter.get_tensor_details()}
    entries = manifest(dumped["channel_first"])["tensors"]
    assert {e["index"] for e in entries} == expected
    kinds = {e["kind"] for e in entries}
    assert {"input", "activation", "weight", "bias", "output"} <= kinds
    files = [f for e in entries for f in e["files"]]
    results = [e for e in entries if e["kind"] != "scratch"]  # scratch: kernel working memory
    assert len(files) == len(set(files)) == 2 * len(results)  # txt + npy for every tensor


@pytest.mark.shared
def test_text_files_reproduce_the_interpreter_exactly(int8_model, dumped):
    interpreter = reference_run(int8_model)
    directory = dumped["channel_first"]
    for entry in manifest(directory)["tensors"]:
        expected = interpreter.get_tensor(entry["index"])
        if entry["transpose"]:
            expected = np.transpose(expected, entry["transpose"])
        for name in entry["files"]:
            array, meta = read_tensor(directory / name)
            assert array.dtype == expected.dtype, name
            assert np.array_equal(array, expected), name
            assert meta["index"] == entry["index"]


@pytest.mark.shared
def test_activations_are_true_nchw(int8_model, dumped):
    interpreter = reference_run(int8_model)
    directory = dumped["channel_first"]
    checked = 0
    for entry in manifest(directory)["tensors"]:
        if entry["kind"] in ("input", "activation") and len(entry["shape"]) == 4:
            nhwc = interpreter.get_tensor(entry["index"])
            array, meta = read_tensor(directory / f"{entry['files'][0]}")
            assert meta["layout"] == "NCHW" and meta["original_layout"] == "NHWC"
            assert np.array_equal(array, np.transpose(nhwc, (0, 3, 1, 2)))
            checked += 1
    assert checked > 60


@pytest.mark.shared
def test_channel_last_files_are_the_interpreters_layout(int8_model, dumped):
    interpreter = reference_run(int8_model)
    directory = dumped["channel_last"]
    for entry in manifest(directory)["tensors"]:
        if not entry["files"]:
            continue
        array, meta = read_tensor(directory / entry["files"][0])
        assert np.array_equal(array, interpreter.get_tensor(entry["index"]))
        assert meta["shape"] == meta["original_shape"]


@pytest.mark.shared
def test_weight_layouts_and_per_channel_axis_as_written(dumped):
    conv, _ = read_tensor(dumped["channel_first"] / "block_1_expand.folded_kernel.txt")
    conv_meta = read_tensor(dumped["channel_first"] / "block_1_expand.folded_kernel.txt").meta
    ohwi, _ = read_tensor(dumped["channel_last"] / "block_1_expand.folded_kernel.txt")
    assert conv_meta["layout"] == "OIHW" and conv_meta["original_layout"] == "OHWI"
    assert np.array_equal(conv, np.transpose(ohwi, (0, 3, 1, 2)))
    dw, dw_meta = read_tensor(dumped["channel_first"] / "block_1_depthwise.folded_kernel.txt")
    one_hwc, one_hwc_meta = read_tensor(
        dumped["channel_last"] / "block_1_depthwise.folded_kernel.txt"
    )
    assert dw_meta["layout"] == "C1HW" and one_hwc_meta["layout"] == "1HWC"
    assert np.array_equal(dw, np.transpose(one_hwc, (3, 0, 1, 2)))
    assert dw.shape == (96, 1, 3, 3)
    # Per-channel scales run along the output channels: axis 3 of 1HWC, axis 0 of C1HW.
    assert one_hwc_meta["quantized_dimension"] == 3 and dw_meta["quantized_dimension"] == 0
    assert len(dw_meta["scales"]) == 96


@pytest.mark.shared
def test_dequantizing_with_the_header_matches_the_interpreter(int8_model, dumped):
    interpreter = reference_run(int8_model)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    directory = dumped["channel_first"]
    quantized = 0
    for entry in manifest(directory)["tensors"]:
        params = details[entry["index"]]["quantization_parameters"]
        if not len(params["scales"]) or not entry["files"]:
            continue
        raw = interpreter.get_tensor(entry["index"]).astype(np.float32)
        shape = [1] * raw.ndim
        if len(params["scales"]) > 1:
            shape[params["quantized_dimension"]] = -1
        expected = (raw - params["zero_points"].reshape(shape)) * params["scales"].reshape(shape)
        if entry["transpose"]:
            expected = np.transpose(expected, entry["transpose"])
        array, meta = read_tensor(directory / entry["files"][0])
        assert np.array_equal(dequantize(array, meta), expected.astype(np.float32)), entry["name"]
        quantized += 1
    assert quantized > 150


@pytest.mark.shared
def test_header_dequantization_equals_the_models_own_dequantize_op(int8_float_io_model, tmp_path):
    dump_tflite(int8_float_io_model, GRACE_HOPPER, tmp_path / "d")
    entries = manifest(tmp_path / "d")
    ops = {op["index"]: op for op in entries["ops"]}
    by_index = {e["index"]: e for e in entries["tensors"]}
    dequantize_ops = [op for op in ops.values() if op["type"] == "DEQUANTIZE"]
    assert dequantize_ops
    for op in dequantize_ops:
        source = by_index[op["inputs"][0]]
        target = by_index[op["outputs"][0]]
        q, q_meta = read_tensor(tmp_path / "d" / source["files"][0])
        f, _ = read_tensor(tmp_path / "d" / target["files"][0])
        assert q.dtype == np.int8 and f.dtype == np.float32
        assert np.array_equal(dequantize(q, q_meta), f)


@pytest.mark.shared
def test_text_header_and_values(dumped):
    path = dumped["channel_first"] / "Conv1_relu.txt"
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("# ")]
    keys = [line[2:].split(":")[0] for line in header]
    for key in ("name", "type", "index", "shape", "layout", "layout_note", "op", "keras_layer"):
        assert key in keys
    for key in ("scales", "zero_points", "quantized_dimension"):
        assert key in keys
    array, meta = read_tensor(path)
    assert meta["type"] == "int8" and meta["op"] == {"index": 0, "type": "CONV_2D"}
    assert meta["shape"] == [1, 32, 112, 112] and meta["original_shape"] == [1, 112, 112, 32]
    assert "..." not in text
    values = text.splitlines()[len(header) :]
    assert len(values) == 32 * 112 and all(len(v.split()) == 112 for v in values)
    assert array.min() < 0  # int8 stays int8 (the seed cast to uint8)


@pytest.mark.shared
def test_float_dump_pairs_with_the_int8_dump(dumped, tmp_path):
    out = dump_keras(str(FIXTURE_TFLITE), GRACE_HOPPER, tmp_path / "float", fmt="txt")
    float_entries = {e["files"][0]: e for e in manifest(out)["tensors"]}
    int8_entries = manifest(dumped["channel_first"])["tensors"]
    paired = [e for e in int8_entries if e["keras_layer"]]
    # 52 convolutions x (output, kernel, bias), 10 adds, input, pooling, logits with kernel
    # and bias, softmax; the MEAN axis constant and scratch tensors have no Keras layer.
    assert len(paired) == 52 * 3 + 10 + 1 + 1 + 3 + 1
    for entry in paired:
        name = entry["files"][0].replace(".npy", ".txt")
        assert name in float_entries, name
        assert float_entries[name]["written_shape"] == entry["written_shape"], name
    # Real weights, real image: the pairs agree to within INT8's resolution.
    f, _ = read_tensor(out / "Conv1_relu.txt")
    q, meta = read_tensor(dumped["channel_first"] / "Conv1_relu.txt")
    assert np.abs(f - dequantize(q, meta)).max() < 0.2
    kernel, _ = read_tensor(out / "block_1_expand.folded_kernel.txt")
    q, meta = read_tensor(dumped["channel_first"] / "block_1_expand.folded_kernel.txt")
    assert np.abs(kernel - dequantize(q, meta)).max() < 0.01
    facts = manifest(out)  # from Python: no command; the weights file by its hash
    assert facts["command"] is None and facts["command_argv"] is None
    assert facts["model_sha256"] == hashlib.sha256(FIXTURE_TFLITE.read_bytes()).hexdigest()
    assert facts["weights"] == str(FIXTURE_TFLITE) and facts["init_seed"] is None
    assert facts["alpha"] == 1.0 and facts["size"] == 224 and facts["kernels"] == "float32"
    for entry in manifest(out)["tensors"]:  # float32 text round-trips exactly
        if entry["name"] == "Conv1/kernel":
            array, _ = read_tensor(out / entry["files"][0])
            assert array.dtype == np.float32 and array.shape == (32, 3, 3, 3)


@pytest.mark.shared
def test_channels_first_keras_dump_equals_the_channels_last_dump(tmp_path):
    """A channels_first model computes NCHW activations: its dump, written in either data
    format, holds the same arrays as the channels_last model's with the same weights (before
    the fix its NCHW outputs were labelled NHWC and transposed a second time). Tolerance: the
    two formats run the same float32 ops in a different memory order; relative 1e-5."""
    from mobilenet_v2 import MobileNetV2
    from mobilenet_v2.golden.dump import keras_tensors, write_dump

    last = MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)
    randomize(last, seed=3)
    first = MobileNetV2(
        input_shape=(3, 96, 96), alpha=0.35, weights=None, data_format="channels_first"
    )
    first.set_weights(last.get_weights())  # weights keep one layout in both formats
    image = load_image(GRACE_HOPPER, size=96)[None]
    for data_format in ("channel_first", "channel_last"):
        dirs = {}
        for name, model in (("last", last), ("first", first)):
            table, arrays = keras_tensors(model, image)
            dirs[name] = write_dump(
                tmp_path / f"{name}-{data_format}", table, arrays, {}, "npy", data_format
            )
        files = sorted(p.name for p in dirs["last"].glob("*.npy"))
        assert files == sorted(p.name for p in dirs["first"].glob("*.npy")) and len(files) > 200
        for name in files:
            expected, _ = read_tensor(dirs["last"] / name)
            actual, _ = read_tensor(dirs["first"] / name)
            assert actual.shape == expected.shape, name
            scale = max(float(np.abs(expected).max()), 1e-6)
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/abs/path", "..", ".", "", "a:b/c\\d", "x" * 500, ".hidden", "é/ü"],
)
def test_safe_file_names_stay_in_the_directory(name, tmp_path):
    stem = safe_file_name(name, 7)
    assert stem and "/" not in stem and "\\" not in stem and not stem.startswith(".")
    assert len(stem) <= 120
    assert (tmp_path / f"{stem}.txt").resolve().parent == tmp_path.resolve()


def rename_tensors(model_path, out_path, name_of):
    model = schema.ModelT.InitFromPackedBuf(model_path.read_bytes(), 0)
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        tensor.name = name_of(index)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out_path.write_bytes(bytes(builder.Output()))
    return out_path


@pytest.mark.shared
def test_hostile_tensor_names_cannot_write_outside(int8_model, tmp_path):
    hostile = ["../../escape", "/etc/passwd", "..", "a/../../b", "../Conv1_relu"]
    model = rename_tensors(int8_model, tmp_path / "hostile.tflite", lambda i: hostile[i % 5])
    (tmp_path / "jail").mkdir()
    out = tmp_path / "jail" / "dump"
    dump_tflite(model, GRACE_HOPPER, out)
    written = [p for p in (tmp_path / "jail").rglob("*") if p.is_file()]
    assert all(p.parent == out for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tflite", "jail"]
    entries = manifest(out)["tensors"]
    files = [f for e in entries for f in e["files"]]
    results = [e for e in entries if e["kind"] != "scratch"]
    assert len(files) == len(set(files)) == len(results) == len(written) - 2


@pytest.mark.shared
def test_dump_command_and_seed_flags(int8_model, tmp_path):
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "tflite_inference.py"), "-i", str(GRACE_HOPPER)),
            *("--model", str(int8_model), "--save_to", str(tmp_path / "seed")),
            *("--data_format", "channel_last"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[1] == "military_uniform"
    assert result.stderr == ""
    entries = manifest(tmp_path / "seed")
    assert entries["data_format"] == "channel_last"
    assert entries["preprocessing"]["resize"] == "stretch"  # as the seed, like classification


@pytest.mark.integration  # end to end, in fresh processes
@pytest.mark.shared
def test_the_seed_script_replaces_an_earlier_set_only_with_replace(tmp_path):
    """Refused before classifying (nothing printed), as `dump` refuses; --replace replaces."""
    seed = [sys.executable, str(ROOT / "tflite_inference.py"), "-i", str(GRACE_HOPPER)]
    seed += ["--model", str(FIXTURE_TFLITE), "--save_to", str(tmp_path / "seed")]
    runs = [
        subprocess.run(argv, capture_output=True, text=True, timeout=300)
        for argv in (seed, seed, [*seed, "--replace"])
    ]
    assert [r.returncode for r in runs] == [0, 1, 0], [r.stderr for r in runs]
    assert runs[1].stdout == "" and "--replace" in runs[1].stderr
    assert runs[1].stderr.count("\n") == 1
    assert manifest(tmp_path / "seed")["tensors"]


@pytest.mark.shared
def test_fixture_uint8_dump(tmp_path):
    out = dump_tflite(FIXTURE_TFLITE, GRACE_HOPPER, tmp_path / "fixture", fmt="npy")
    logits, meta = read_tensor(out / "predictions_logits.npy")
    assert logits.dtype == np.uint8 and logits.shape == (1, 1001, 1, 1)  # NCHW
    assert meta["keras_layer"] == "predictions" and meta["zero_points"] == [58]


@pytest.mark.shared
def test_second_dump_replaces_the_first(int8_model, tmp_path):
    out = tmp_path / "d"
    dump_tflite(int8_model, GRACE_HOPPER, out, fmt="both")
    dump_tflite(int8_model, GRACE_HOPPER, out, fmt="npy", replace=True)
    assert not list(out.glob("*.txt"))
    files = {f for e in manifest(out)["tensors"] for f in e["files"]}
    assert {p.name for p in out.glob("*.npy")} == files and len(files) == 173  # 4 scratch


@pytest.mark.shared
@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_model", "model file not found"),
        ("missing_image", "grace_hopper_missing.bmp"),
        ("output_is_file", "not a directory"),
        ("no_parent", "does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(case, message, int8_model, tmp_path, capsys):
    model, image, out = str(int8_model), str(GRACE_HOPPER), tmp_path / "out"
    if case == "missing_model":
        model = str(tmp_path / "missing.tflite")
    elif case == "missing_image":
        image = str(IMAGES / "grace_hopper_missing.bmp")
    elif case == "output_is_file":
        out.write_text("x")
    elif case == "no_parent":
        out = tmp_path / "no" / "such" / "dir"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["dump", image, "--model", model, "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_read_tensor_refuses_other_files(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("hello\n")
    with pytest.raises(MobileNetV2Error, match=r"x\.txt"):
        read_tensor(path)


@pytest.mark.shared
@pytest.mark.parametrize("engine", ["litert", "reference"])
def test_a_softmax_scale_that_would_abort_litert_is_refused(engine, tmp_path, capsys):
    """LiteRT's reference SOFTMAX aborts the whole process (a TFLITE_CHECK, no error) when
    beta * input scale * 2**26 <= 1, as with random weights whose logits have no range:
    both engines refuse such a model with one line instead."""
    model = schema.ModelT.InitFromPackedBuf(FIXTURE_TFLITE.read_bytes(), 0)
    graph = model.subgraphs[0]
    softmax = next(
        op
        for op in graph.operators
        if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.SOFTMAX
    )
    graph.tensors[softmax.inputs[0]].quantization.scale = [2.0**-27]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "flat_logits.tflite"
    path.write_bytes(bytes(builder.Output()))
    argv = ["dump", str(GRACE_HOPPER), "--model", str(path), "--output", str(tmp_path / "d")]
    assert main([*argv, "--engine", engine]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SOFTMAX: its input scale 7.45e-09 is below 2^-26" in err


def test_a_float_dump_of_random_weights_records_their_seed_and_the_command(tmp_path, capsys):
    """Random weights have no file to hash: the seed is what identifies them, and the same
    command makes the same set. The preprocessing flags given are recorded as flags, for
    commands that must feed the model the same way (trace)."""
    argv = ["dump", str(GRACE_HOPPER), "--output", str(tmp_path / "f"), "--weights", "none"]
    argv += ["--alpha", "0.35", "--size", "96", "--init-seed", "5", "--format", "npy"]
    argv += ["--resize", "stretch", "--input-mean", "127.5"]
    assert main(argv) == 0
    capsys.readouterr()
    facts = manifest(tmp_path / "f")
    assert facts["command_argv"] == ["mobilenet-v2", *argv]
    assert facts["command"] == "mobilenet-v2 " + " ".join(argv)  # nothing to quote here
    assert facts["input_flags"] == ["--resize", "stretch", "--input-mean", "127.5"]
    assert facts["weights"] == "none (random initialization, seed 5)" and facts["init_seed"] == 5
    assert facts["model_sha256"] is None and facts["calibration"] is None
    assert facts["per_tensor"] is None and facts["steps"] is None  # no conversion, no rewrite
    assert facts["alpha"] == 0.35 and facts["size"] == 96
    assert facts["versions"]["tensorflow"] and facts["versions"]["numpy"] == np.__version__
    first = np.load(tmp_path / "f" / "block_3_project.folded_kernel.npy")
    assert main([*argv[:3], str(tmp_path / "g"), *argv[4:]]) == 0
    assert np.array_equal(np.load(tmp_path / "g" / "block_3_project.folded_kernel.npy"), first)


@pytest.mark.shared
def test_a_litert_dump_records_versions_without_importing_tensorflow(tmp_path):
    """The manifest names TensorFlow's installed version (from the package metadata), and the
    LiteRT path still never imports it."""
    out = tmp_path / "fixture"
    code = "\n".join(
        [
            "import sys",
            "from mobilenet_v2.golden.dump import dump_tflite",
            f"dump_tflite({str(FIXTURE_TFLITE)!r}, {str(GRACE_HOPPER)!r}, {str(out)!r}, "
            "fmt='npy', resize='stretch')",
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    facts = manifest(out)
    from importlib.metadata import version

    assert facts["versions"]["tensorflow"] == version("tensorflow")
    assert facts["versions"]["ai-edge-litert"] == version("ai-edge-litert")
    assert facts["model_sha256"] == hashlib.sha256(FIXTURE_TFLITE.read_bytes()).hexdigest()
    assert facts["command"] is None and facts["input_flags"] == ["--resize", "stretch"]
    # A model from elsewhere records no provenance of ours: null, not guessed.
    assert facts["alpha"] is None and facts["weights"] is None and facts["size"] == 224


# --- Golden data is never overwritten by surprise ----------------------------------------------


def tiny_set(directory, value: int = 1, fmt: str = "txt", replace: bool = False):
    """A golden set of two small int8 tensors, `a` and `b`, as `dump` writes it."""
    tensors = {
        i: TensorInfo(index=i, name=n, kind="activation", shape=(1, 2), dtype="int8", file_name=n)
        for i, n in enumerate(("a", "b"))
    }
    table = ModelTable(source="test", engine="tflite", tensors=tensors, ops=[])
    arrays = {i: np.full((1, 2), value, np.int8) for i in tensors}
    return write_dump(directory, table, arrays, {}, fmt, replace=replace)


def listing(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_second_dump_into_an_earlier_set_is_refused_without_replace(tmp_path, capsys):
    """Refused before any work (the model and image named here do not exist), exit 1, the
    earlier set untouched."""
    out = tiny_set(tmp_path / "d")
    before = listing(out)
    args = ["dump", "x.bmp", "--model", str(tmp_path / "m.tflite"), "--output", str(out)]
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"mobilenet-v2: error: {out}: holds an earlier golden set (--replace replaces it)\n"
    )
    assert listing(out) == before


def test_a_dump_into_a_folder_of_other_files_is_refused_without_replace(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["dump", "x.bmp", "--model", str(tmp_path / "m.tflite"), "--output", str(out)]
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"mobilenet-v2: error: {out}: directory is not empty and holds no golden set "
        "(manifest.json); --replace writes the set into it, beside its files\n"
    )
    assert listing(out) == {"notes.txt": b"mine"}


def test_the_library_refuses_what_the_command_refuses(tmp_path):
    out = tiny_set(tmp_path / "d")
    with pytest.raises(MobileNetV2Error, match="holds an earlier golden set"):
        tiny_set(out, value=2)
    with pytest.raises(MobileNetV2Error, match="holds an earlier golden set"):
        dump_tflite(tmp_path / "m.tflite", GRACE_HOPPER, out)  # before reading the model
    assert read_tensor(out / "a.txt")[0].tolist() == [[1, 1]]


def test_replace_replaces_an_earlier_set_whole(tmp_path):
    out = tiny_set(tmp_path / "d", fmt="both")
    tiny_set(out, value=2, fmt="npy", replace=True)
    assert sorted(listing(out)) == ["a.npy", "b.npy", "manifest.csv", "manifest.json"]
    assert np.load(out / "a.npy").tolist() == [[2, 2]]


def test_replace_writes_a_set_beside_other_files_and_keeps_them(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    tiny_set(out, replace=True)
    tiny_set(out, value=2, fmt="npy", replace=True)  # replaces the set, never the user's file
    assert sorted(listing(out)) == ["a.npy", "b.npy", "manifest.csv", "manifest.json", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_an_empty_folder_needs_no_replace(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    tiny_set(out)
    assert (out / "manifest.json").exists()


def test_a_replacement_killed_midway_leaves_no_manifest(tmp_path, monkeypatch):
    """The earlier manifest goes before any new file moves in: a set cut off midway has no
    manifest.json, never a mix of two sets that the old manifest calls complete."""
    import os

    out = tiny_set(tmp_path / "d")
    moves = []
    real_replace = os.replace

    def killed_after_one_move(src, dst):
        if moves:
            raise KeyboardInterrupt  # the second file: the process is killed here
        moves.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_after_one_move)
    with pytest.raises(KeyboardInterrupt):
        tiny_set(out, value=2, replace=True)
    monkeypatch.undo()
    assert len(moves) == 1 and not (out / "manifest.json").exists()


def test_dump_help_states_the_rule():
    help_text = subprocess.run(
        [sys.executable, "-m", "mobilenet_v2.cli", "dump", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--replace" in help_text and "never overwritten by surprise" in " ".join(
        help_text.split()
    )
