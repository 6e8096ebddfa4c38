"""TFLite: calibrated INT8 (and float16/dynamic/float32) conversion, LiteRT inference,
side-by-side evaluation. Real weights: the fixture; real images: the ImageNet sample, split
by class index so that calibration and evaluation never share an image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from conftest import FIXTURE_TFLITE, IMAGES, ROOT, SAMPLE
from PIL import Image

from mobilenet_v2.base.labels import synset_to_index
from mobilenet_v2.base.machine import describe, machine_info, usable_cpus
from mobilenet_v2.cli import main
from mobilenet_v2.inference.classifier import load_tflite
from mobilenet_v2.lite.model_metadata import read_standard_metadata
from mobilenet_v2.lite.record import METADATA_NAME, read_metadata
from mobilenet_v2.lite.tflite_file import read_tflite
from mobilenet_v2.reference import ReferenceInterpreter

pytestmark = pytest.mark.shared  # conversions (integration) are marked by their fixtures

WEIGHTS = str(FIXTURE_TFLITE)
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def accuracy(models, per_tensor_model, splits):
    """INT8 against the TF float model on the 250 held-out images (it was calibrated on the
    other split); float16, dynamic-range and float32, which need no calibration, on all 500
    (a finer resolution: one image is 0.2 points), and the rewritten per-tensor model there
    too, as the issue that made it usable measured it. Default kernels (XNNPACK).

    One pass over each split, each image decoded once and the float model run once: the
    500-image figures are the two halves' (250 images each) averaged."""
    from mobilenet_v2.analysis import evaluate
    from mobilenet_v2.inference.classifier import load_keras

    files = {**models, "per_tensor": per_tensor_model}
    on_both = ("float16", "dynamic", "none", "per_tensor")
    on_all = [load_keras(WEIGHTS), *(load_tflite(files[k]) for k in on_both)]
    int8 = load_tflite(files["int8"])
    calibration, held_out = (evaluate.labelled_images(split) for split in splits)
    held = evaluate.evaluate([*on_all, int8], held_out)["results"]
    seen = evaluate.evaluate(on_all, calibration)["results"]
    rows = {"float": held[0], "int8": held[-1]}
    for kind, first, second in zip(("float_500", *on_both), held[:-1], seen, strict=True):
        assert first["images"] == second["images"] == 250
        rows[kind] = {
            k: (first[k] + second[k]) / 2 for k in ("top1", "top5", "agreement_top1") if k in first
        }
    return rows


def test_calibration_and_evaluation_splits_are_disjoint(splits):
    calibration, evaluation = ({p.name for p in d.iterdir()} for d in splits)
    assert len(calibration) == len(evaluation) == 250 and not calibration & evaluation


def test_int8_model_is_full_integer_with_per_channel_weights(models):
    tfl = read_tflite(models["int8"])
    assert {op.opcode for op in tfl.operators} == {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "MEAN",
        "FULLY_CONNECTED",
        "SOFTMAX",
    }
    for op in tfl.operators:
        for index in op.inputs + op.outputs:
            if index >= 0:
                assert tfl.tensors[index].type_name in ("INT8", "INT32"), (
                    op.opcode,
                    tfl.tensors[index].name,
                )
    first_conv = tfl.tensors[tfl.operators[0].inputs[1]]
    assert first_conv.scales.size == first_conv.shape[0] == 32  # one scale per output channel
    model_input = tfl.tensors[tfl.inputs[0]]
    # (x - 128) / 128 maps 8-bit pixels exactly onto the int8 grid.
    assert model_input.scales[0] == pytest.approx(1 / 128) and model_input.zero_points[0] == 0


def test_model_records_its_preprocessing_and_labels(models):
    record = read_metadata(models["int8"].read_bytes())
    assert record["preprocessing"] == {
        "mean": 128.0,
        "std": 128.0,
        "resize": "crop",
        "crop_fraction": 0.875,
    }
    assert record["labels"][652] == "n03763968 military_uniform" and len(record["labels"]) == 1000
    assert record["calibration"]["images"] == 250 and record["quantize"] == "int8"
    assert read_metadata(models["float16"].read_bytes())["preprocessing"]["mean"] == 127.5


# Accuracy thresholds (issue 10). They come from the spread measured across LiteRT's kernel
# sets (XNNPACK, built-in, reference) and CPUs (AMD EPYC; Intel Xeon with AVX-512 VNNI/AMX)
# by benchmarks/accuracy_spread.py, tabled in docs/benchmarks.md ("Accuracy across kernels
# and CPUs"), and from the sets' resolution: one image is 0.4 points of 250, 0.2 of 500.
# Each threshold is the worst difference measured on any kernel set and CPU plus a margin of
# one to three images, for CPUs not measured yet (both measured ones have AVX-512; AVX2-only
# machines run other integer kernels); each docstring gives its figures and margin.
# On 250 images the 127.5-grid regression moves top-1 by -5 to +2 images depending on the
# kernels (calibrated on that grid: -5 to -1): inside that spread, so no accuracy threshold
# can catch it honestly. The exact input-grid test below does, on every CPU.


def test_int8_top1_is_within_the_kernel_spread_of_float(accuracy):
    """INT8 minus float, top-1 on 250: XNNPACK -0.4 (EPYC and Intel), built-in kernels
    -1.2 (EPYC) and -2.0 (Intel), reference kernels -0.8. Allowed: the worst of those
    (5 images) plus one image, -2.4 points; a broken conversion loses far more. Those were
    measured with the weights requantized by the converter; with the hosted model's grid
    kept (issue 27; benchmarks/a16w8.py, XNNPACK, EPYC only so far) -1.2, against -0.8
    requantized in the same run."""
    float_top1, int8 = accuracy["float"]["top1"], accuracy["int8"]
    print(f"float {float_top1:.3f}, int8 {int8['top1']:.3f}, agreement {int8['agreement_top1']}")
    assert int8["top1"] >= float_top1 - 0.024 - 1e-9


def test_int8_agrees_with_float_within_the_kernel_spread(accuracy):
    """Top-1 agreement with float on 250: 93.6-95.6 % across kernels and both CPUs, the
    lowest (16 flips) with the built-in kernels on Intel. Allowed: 92.4 % (19 flips), three
    images more; a broken calibration flips far more. Measured with the weights requantized
    by the converter; with the hosted model's grid kept (issue 27; XNNPACK, EPYC only so
    far) 98.0 %, which leaves the floor loose rather than wrong."""
    assert accuracy["int8"]["agreement_top1"] >= 0.924 - 1e-9


def test_per_tensor_model_has_one_scale_per_weight_tensor(per_tensor_model):
    tfl = read_tflite(per_tensor_model)
    weighted = [op for op in tfl.operators if op.opcode in WEIGHTED_OPS]
    assert len(weighted) == 53  # 52 convolutions and the classifier
    for op in weighted:
        weights = tfl.tensors[op.inputs[1]]
        assert weights.type_name == "INT8" and weights.scales.size == 1, weights.name


# The session's per-tensor model (every rewrite, 64 calibration images) on all 500, AMD EPYC:
# top-1 88.2 % with XNNPACK, 88.6 % with the built-in kernels (float: 90.4 %); agreement with
# float 95.2 % / 96.2 % (before equalization's sweeps moved to float64, which moves no scale
# by more than 1e-7: 88.2 % / 88.8 % and 95.8 % / 96.6 %, so rounding alone moves 3 images).
# Allowed: the worst of these less four images (0.8 points), for CPUs not measured;
# per-tensor weights alone score 11.6 %, so a rewrite that stops working falls far below.
PER_TENSOR_TOP1 = 0.882 - 0.008
PER_TENSOR_AGREEMENT = 0.952 - 0.008


def test_equalized_per_tensor_int8_comes_close_to_float(accuracy):
    """Per-tensor weights alone leave MobileNetV2 11.6 % top-1; cross-layer equalization,
    bias absorption and bias correction bring it within about two points of float."""
    per_tensor = accuracy["per_tensor"]
    print(f"per-tensor {per_tensor['top1']:.3f}, agreement {per_tensor['agreement_top1']}")
    assert per_tensor["top1"] >= PER_TENSOR_TOP1 - 1e-9
    assert per_tensor["agreement_top1"] >= PER_TENSOR_AGREEMENT - 1e-9


def test_per_tensor_model_records_its_rewrites(per_tensor_model):
    record = read_metadata(per_tensor_model.read_bytes())
    assert record["per_tensor"] is True
    assert record["steps"] == ["equalize", "absorb_bias", "bias_correction"]
    meta = read_standard_metadata(per_tensor_model.read_bytes(), per_tensor_model)
    assert "cross-layer equalized, high biases absorbed, bias corrected" in meta.description


def test_float16_and_float32_agree_with_float(accuracy):
    """On 500: 100 % agreement and the same top-1 with XNNPACK and the built-in kernels on
    Intel, and on 250 on EPYC: no flip measured. Allowed: two images of 500, for near-ties
    that float16 weights or another CPU's float kernels may flip."""
    for kind in ("float16", "none"):
        assert accuracy[kind]["agreement_top1"] >= 0.996 - 1e-9, kind
        assert abs(accuracy[kind]["top1"] - accuracy["float_500"]["top1"]) <= 0.004 + 1e-9, kind


def test_dynamic_range_is_within_the_kernel_spread_of_float(accuracy):
    """Dynamic-range minus float, top-1. On 500 (Intel only): -2 images with XNNPACK and the
    built-in kernels, -1 with the reference kernels. On the 250-image half (both CPUs): at
    most 5 images (XNNPACK on EPYC), whose other half was not measured there. Allowed on 500:
    that worst half-set loss on both halves, 10 images (-2.0 points). Agreement: 14-15 flips
    of 500 (Intel), at most 11 of 250 on either CPU; allowed 25 of 500 (95.0 %), the worst
    half-set figure on both halves plus three."""
    dynamic = accuracy["dynamic"]
    assert dynamic["top1"] >= accuracy["float_500"]["top1"] - 0.020 - 1e-9
    assert dynamic["agreement_top1"] >= 0.95 - 1e-9


def input_grid(path: Path, tmp_path: Path, **overrides) -> np.ndarray:
    """What the model's input tensor receives for the 256 pixel levels, through the real
    path: a lossless PNG holding every level, decoded, resized (`stretch` to the model's own
    size is an exact copy), normalized as the model records (or `overrides`), quantized."""
    from mobilenet_v2.inference.classifier import load_for

    classifier = load_tflite(path)
    height, width = classifier.input_size
    levels = (np.arange(height * width) % 256).astype(np.uint8).reshape(height, width)
    image = tmp_path / "levels.png"
    Image.fromarray(np.stack([levels] * 3, axis=-1)).save(image)
    x = load_for(classifier, image, resize="stretch", **overrides)
    received = classifier.quantize_input(x[None])[0, ..., 0].astype(np.int64)
    return np.array([received.ravel()[levels.ravel() == p][0] for p in range(256)])


def test_int8_input_grid_maps_every_pixel_exactly(models, tmp_path):
    """Pixel p reaches the INT8 model as p - 128: all 256 levels distinct, none rounded.
    Exact on any CPU, where the 127.5 regression's accuracy cost is not (see above)."""
    np.testing.assert_array_equal(input_grid(models["int8"], tmp_path), np.arange(256) - 128)


def test_third_party_uint8_model_without_a_record_gets_the_exact_pixel_grid(tmp_path):
    """The hosted fixture (uint8 input, scale 1/128, zero point 128) records no normalization:
    its input tensor's own quantization says pixel p is q = p, as MediaPipe feeds it. (Fed
    through the float default of 127.5 it was not: half the levels shifted and 254/255
    merged.) Top-1 on the 500 sample images, Intel Xeon: 89.8 -> 89.8 % with XNNPACK,
    89.8 -> 90.2 % with the built-in kernels (2 images: noise)."""
    np.testing.assert_array_equal(input_grid(FIXTURE_TFLITE, tmp_path), np.arange(256))
    reference = ReferenceInterpreter(FIXTURE_TFLITE)
    assert (reference.preprocessing["mean"], reference.preprocessing["std"]) == (128.0, 128.0)


def test_int8_model_without_a_record_gets_the_exact_pixel_grid(models, tmp_path):
    """Our INT8 model with its preprocessing record removed still maps p to p - 128: the
    grid comes from the input tensor (int8, scale 1/128, zero point 0)."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(Path(models["int8"]).read_bytes(), 0))
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(builder.Output()))
    assert read_metadata(bare.read_bytes()) is None
    np.testing.assert_array_equal(input_grid(bare, tmp_path), np.arange(256) - 128)


def test_the_grid_check_fails_for_both_forms_of_the_127_5_regression(tmp_path, models, splits):
    """Calibrated on the 127.5 grid (scale 2/255: every pixel lands on .5 and rounds), or
    fed through 127.5 at inference (levels shift, 254 and 255 merge): the check above fails."""
    from mobilenet_v2.tf.convert import convert_file

    calibrated = convert_file(
        tmp_path / "grid127.tflite",
        WEIGHTS,
        size=96,  # the input grid does not depend on the size; 96 converts fast
        calibration_dir=splits[0],
        calibration_size=32,
        preprocessing={"mean": 127.5, "std": 127.5},
    )
    assert load_tflite(calibrated).input_size == (96, 96)  # the fixture's weights at --size
    fed_at_127_5 = input_grid(models["int8"], tmp_path, mean=127.5, std=127.5)
    for grid in (input_grid(calibrated, tmp_path), fed_at_127_5):
        assert not np.array_equal(grid, np.arange(256) - 128)


def test_int8_model_still_sees_the_military_uniform(models, capsys):
    args = [
        "classify",
        str(IMAGES / "grace_hopper.bmp"),
        "--model",
        str(models["int8"]),
        "--resize",
        "stretch",
        "--top",
        "1",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("n03763968 military_uniform ")


def test_int8_runner_ups_that_score_zero_are_not_listed_in_class_order(models, capsys):
    """A quantized softmax rounds unlikely classes to exactly 0 (step 1/256): ranked among
    themselves they would come out as tench, goldfish, ... by class index. They are left out
    and stderr says why."""
    argv = ["classify", str(IMAGES / "parrot.jpg"), "--model", str(models["int8"]), "--top", "5"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = [line.split() for line in captured.out.splitlines()]
    assert rows[0][:2] == ["n01818515", "macaw"] and 1 <= len(rows) < 5
    assert all(float(score) > 0 for _, _, score in rows), rows
    assert captured.err == (
        f"mobilenet-v2: note: {IMAGES / 'parrot.jpg'}: fewer than 5 classes score above 0 "
        "(the model's output step is 0.003906); classes at 0 are tied and not listed\n"
    )


def test_fixture_uint8_1001_classes_runs_without_flags(capsys):
    classifier = load_tflite(FIXTURE_TFLITE)
    assert classifier.input_dtype == np.uint8 and classifier.classes == 1001
    assert (
        main(
            [
                "classify",
                str(IMAGES / "grace_hopper.bmp"),
                "--model",
                str(FIXTURE_TFLITE),
                "--resize",
                "stretch",
                "--top",
                "1",
            ]
        )
        == 0
    )
    synset, rest = capsys.readouterr().out.strip().split(" ", 1)
    name, score = rest.rsplit(" ", 1)  # the fixture's names have spaces
    # Fed its exact pixel grid (mean = std = 128, from its input quantization): 0.891 with
    # XNNPACK (the default) and 0.914 with the built-in kernels, Intel Xeon; through the old
    # 127.5 it was 0.906 / 0.914. Allowed: the two kernels' values with one output step
    # (1/256) to spare on each side, for CPUs whose kernels round otherwise.
    assert (synset, name) == ("n03763968", "military uniform")  # its own label file's name
    assert 0.891 - 1 / 256 <= float(score) <= 0.914 + 1 / 256


@pytest.mark.parametrize("io_type", ["uint8", "float32"])
def test_integer_and_float_io_types(uint8_model, int8_float_io_model, io_type):
    path = uint8_model if io_type == "uint8" else int8_float_io_model
    classifier = load_tflite(path)
    assert classifier.input_dtype == np.dtype(io_type) and classifier.input_size == (224, 224)
    tfl = read_tflite(path)
    assert tfl.tensors[tfl.outputs[0]].type_name == io_type.upper()
    from mobilenet_v2.inference.classifier import load_for

    scores = classifier.predict(load_for(classifier, IMAGES / "parrot.jpg")[None])
    assert scores.shape == (1, 1000) and abs(scores.sum() - 1) < 0.02
    assert scores.argmax() == synset_to_index()["n01818515"]  # macaw


def test_calibration_draw_is_reproducible(splits):
    from mobilenet_v2.base.calibration import calibration_images

    first = calibration_images(splits[0], 4, seed=1, preprocessing={"size": 32})
    np.testing.assert_array_equal(
        first, calibration_images(splits[0], 4, seed=1, preprocessing={"size": 32})
    )
    assert not np.array_equal(
        first, calibration_images(splits[0], 4, seed=2, preprocessing={"size": 32})
    )


def test_tflite_path_does_not_import_tensorflow():
    code = (
        "import sys; from mobilenet_v2.cli import main; "
        f"code = main(['classify', {str(IMAGES / 'cat.bmp')!r}, '--model', {WEIGHTS!r}, "
        "'--top', '1']); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("n02124075 Egyptian cat") and result.stderr == ""


def test_evaluate_markdown_and_json(models, splits, capsys):
    assert (
        main(
            [
                "evaluate",
                str(splits[1]),
                "--model",
                str(models["int8"]),
                "--model",
                WEIGHTS,
                "--limit",
                "20",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[:4]]
    assert cells[0] == [
        "model",
        "kernels",
        "images",
        "top-1",
        "top-5",
        "top-1 agreement with int8.tflite",
    ]
    assert cells[2][:3] == ["int8.tflite", "xnnpack", "20"] and cells[3][2] == "20"
    assert len(table) == 6 and table[4] == ""
    assert table[5] == f"Measured on: {describe()}"  # accuracy depends on the CPU's kernels
    assert main(["evaluate", str(splits[1]), "--model", WEIGHTS, "--limit", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"][0]["images"] == 10 and report["machine"] == machine_info()
    # evaluate runs LiteRT on every CPU it may use (LiteRT's own default is one thread)
    assert report["results"][0]["kernels"] == "xnnpack"
    assert report["results"][0]["threads"] == usable_cpus()
    assert set(report["machine"]["versions"]) >= {"ai-edge-litert", "numpy", "pillow"}


def test_evaluate_reads_labels_from_synset_folders(tmp_path, capsys):
    for synset, name in [("n01818515", "parrot.jpg"), ("n07697537", "hot_dog.jpg")]:
        (tmp_path / synset).mkdir()
        (tmp_path / synset / name).symlink_to(IMAGES / name)
    assert main(["evaluate", str(tmp_path), "--model", WEIGHTS, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["images"] == 2 and row["top1"] == 1.0


def test_benchmark_reports_latency_and_memory(models, capsys):
    assert (
        main(
            [
                "benchmark",
                str(models["int8"]),
                "--runs",
                "5",
                "--warmup",
                "1",
                "--num-threads",
                "1",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    (row,) = report["results"]
    assert report["machine"] == machine_info() and report["machine"]["cores"] == os.cpu_count()
    assert row["model"] == "int8.tflite" and row["threads"] == 1
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["kernels"] == "xnnpack"
    # 70-73 MiB measured on AMD EPYC and Intel Xeon: Python, NumPy, LiteRT and a 4 MB model.
    # A benchmark child that imported TensorFlow would take about 700 MiB.
    assert 30 < row["peak_rss_mib"] < 300


@pytest.mark.integration  # converts a model
def test_seed_programs_convert_then_infer(tmp_path, splits):
    calibration = tmp_path / "few"
    calibration.mkdir()
    for image in sorted(splits[0].iterdir())[:8]:
        (calibration / image.name).symlink_to(image.resolve())
    env = {**os.environ, "MOBILENET_V2_WEIGHTS": WEIGHTS}

    def run(*args):
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    converted = run(
        "tflite_converter.py",
        "--save_to",
        str(tmp_path / "out"),
        "--calibration_dir",
        str(calibration),
        "--calibration_size",
        "8",
    )
    assert converted.returncode == 0, converted.stderr
    # Our int8 model, named so that it is never taken for the TF-hosted uint8 fixture.
    model = tmp_path / "out" / "mobilenet_v2_1.0_224_int8.tflite"
    inferred = run(
        "tflite_inference.py", "-i", str(IMAGES / "grace_hopper.bmp"), "--model", str(model)
    )
    assert inferred.returncode == 0, inferred.stderr
    # Five rows, or fewer with a note when the INT8 output rounds the rest to exactly 0.
    rows = inferred.stdout.splitlines()
    assert 1 <= len(rows) <= 5 and rows[0].startswith("n03763968 military_uniform")
    expected_err = "" if len(rows) == 5 else "tflite_inference.py: note: "
    assert inferred.stderr.startswith(expected_err) and len(inferred.stderr.splitlines()) <= 1
    missing = run(
        "tflite_inference.py",
        "-i",
        str(IMAGES / "grace_hopper.bmp"),
        "--model",
        str(tmp_path / "no.tflite"),
    )
    assert (
        missing.returncode == 1
        and "tflite_converter.py" in missing.stderr
        and len(missing.stderr.splitlines()) == 1
    )


# --- Bad input: one line, non-zero exit, nothing left behind ---------------------------------


def one_line_error(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_corrupt_and_truncated_tflite_are_refused(tmp_path, capsys):
    (tmp_path / "cut.tflite").write_bytes(FIXTURE_TFLITE.read_bytes()[:100_000])
    (tmp_path / "junk.tflite").write_bytes(b"\0" * 64)
    for name, message in [
        ("cut.tflite", "corrupt or truncated TFLite model"),
        ("junk.tflite", "not a valid TFLite model (no TFL3 flatbuffer identifier)"),
    ]:
        one_line_error(
            capsys,
            ["classify", str(IMAGES / "cat.bmp"), "--model", str(tmp_path / name)],
            f"{tmp_path / name}: {message}",
        )


def damaged(tmp_path: Path, change) -> Path:
    """The fixture with one index in its graph changed: still a decodable flatbuffer."""
    model = schema.ModelT.InitFromPackedBuf(FIXTURE_TFLITE.read_bytes(), 0)
    change(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "damaged.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


def set_opcode_index(model):
    model.subgraphs[0].operators[3].opcodeIndex = 999


def set_input_index(model):
    model.subgraphs[0].inputs = [99999]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (set_opcode_index, "corrupt TFLite model (op 3 has operator code 999 of"),
        (set_input_index, "corrupt TFLite model (the graph's input refers to tensor 99999 of"),
    ],
)
@pytest.mark.parametrize("command", ["inspect", "trace"])
def test_indices_that_point_nowhere_are_a_damaged_file(change, message, command, tmp_path, capsys):
    """Decodable, but an index points outside its table: one line naming the file, exit 1
    (not an internal error), whichever reader meets it first."""
    path = damaged(tmp_path, change)
    args = {
        "inspect": ["inspect", str(path)],
        "trace": ["trace", str(path), str(IMAGES / "cat.bmp"), "--tensor", "0", "--index", "0"],
    }[command]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mobilenet-v2: error: {path}: {message} ") and err.count("\n") == 1


def test_a_bug_while_reading_a_good_model_is_not_called_a_corrupt_file(monkeypatch, capsys):
    """Only the flatbuffer decoding is guarded: an error in our own code after it is a bug,
    shown as one "internal error" line (exit 70), not as "corrupt or truncated"."""

    def broken(*args):
        raise KeyError("a bug")

    monkeypatch.setattr("mobilenet_v2.lite.tflite_file._convert", broken)
    assert main(["inspect", str(FIXTURE_TFLITE)]) == 70
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "corrupt" not in err, err


def test_a_tflite_model_that_is_not_an_image_classifier_is_refused(tmp_path, capsys):
    from mobilenet_v2.tf._tf import keras, tf

    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    (tmp_path / "vector.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(model).convert()
    )
    one_line_error(
        capsys,
        ["classify", str(IMAGES / "cat.bmp"), "--model", str(tmp_path / "vector.tflite")],
        "not an image classifier",
    )


def test_calibration_directory_without_images_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "m.tflite"
    one_line_error(
        capsys,
        [
            "convert",
            "--output",
            str(out),
            "--weights",
            WEIGHTS,
            "--calibration-dir",
            str(tmp_path / "empty"),
        ],
        "directory contains no images",
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"]


def test_unwritable_output_is_refused_before_converting(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a missing directory
            target, message = tmp_path / "missing" / "m.tflite", "does not exist"
        else:
            target, message = locked / "m.tflite", "is not writable"
        one_line_error(
            capsys,
            ["convert", "--output", str(target), "--weights", WEIGHTS, "--quantize", "none"],
            message,
        )
        one_line_error(
            capsys,
            ["convert", "--output", str(tmp_path), "--weights", WEIGHTS, "--quantize", "none"],
            "is a directory",
        )
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"] and not list(locked.iterdir())


def test_offline_calibration_download_fails_fast(tmp_path, capsys, monkeypatch):
    import time

    from mobilenet_v2.tf import convert

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(convert, "IMAGENETTE_URL", "http://127.0.0.1:9/imagenette2-160.tgz")
    start = time.monotonic()
    one_line_error(
        capsys,
        ["convert", "--output", str(tmp_path / "m.tflite"), "--weights", WEIGHTS],
        "--calibration-dir",
    )
    assert time.monotonic() - start < 10 and not (tmp_path / "m.tflite").exists()


def test_xnnpack_is_the_default_for_every_kind_of_model(models):
    """One rule, LiteRT's own: dynamic-range models included (same top-1 on 500 images with
    either kernel set; docs/benchmarks.md)."""
    for kind in ("int8", "float16", "dynamic", "none"):
        assert load_tflite(models[kind]).xnnpack, kind
    assert not load_tflite(models["dynamic"], xnnpack=False).xnnpack


def test_evaluate_with_no_readable_image_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "n01440764_broken.JPEG").write_text("not a JPEG")
    one_line_error(capsys, ["evaluate", str(tmp_path), "--model", WEIGHTS], "no readable images")


# --- evaluate: models keyed by path, class-balanced --limit; TFLite's rounding (issue 11) ------


def test_two_models_with_the_same_file_name_are_told_apart(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.tflite").symlink_to(FIXTURE_TFLITE)
    images = tmp_path / "images"
    images.mkdir()
    (images / "n01818515_parrot.jpg").symlink_to(IMAGES / "parrot.jpg")
    argv = ["evaluate", str(images), "--json"]
    assert (
        main(
            [
                *argv,
                "--model",
                str(tmp_path / "a/m.tflite"),
                "--model",
                str(tmp_path / "b/m.tflite"),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["model"] for r in rows] == ["a/m.tflite", "b/m.tflite"]
    assert [r["path"] for r in rows] == [str(tmp_path / "a/m.tflite"), str(tmp_path / "b/m.tflite")]
    assert rows[1]["agreement_top1"] == 1.0
    assert main([*argv, "--model", WEIGHTS, "--model", str(tmp_path / "a/m.tflite")]) == 0
    names = [r["model"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert names == [FIXTURE_TFLITE.name, "m.tflite"]  # no rival: the file name alone


def test_limit_draws_a_seeded_class_balanced_sample(tmp_path):
    from mobilenet_v2.analysis.evaluate import labelled_images

    photos = sorted(SAMPLE.glob("*.JPEG"))[:2]  # two classes, one photo each
    for photo in photos:
        for i in range(10):  # sorted by name, all of the first class come first
            (tmp_path / f"{photo.name.split('_')[0]}_{i}.JPEG").symlink_to(photo)
    sample = labelled_images(tmp_path, limit=4)
    assert sorted(label for _, label in sample) == sorted(
        [synset_to_index()[p.name.split("_")[0]] for p in photos] * 2
    )
    assert sample == labelled_images(tmp_path, limit=4)  # the same seed, the same sample
    assert sample != labelled_images(tmp_path, limit=4, seed=1)


@pytest.mark.parametrize("reference_kernels", [True, False])
def test_input_quantization_rounds_halves_as_litert_own_quantize(
    int8_float_io_model, int8_model, reference_kernels
):
    """LiteRT's QUANTIZE op on exact halves: its reference kernels round away from zero
    (std::round), its optimized kernels to even. Quantizing an int8-input model's input in
    Python does as the kernels that will run it."""
    from mobilenet_v2.lite.interpreter import TFLiteClassifier

    halves = np.array([0.5, 1.5, 2.5, -0.5, -2.5], np.float32)
    graph = TFLiteClassifier(
        int8_float_io_model, reference_kernels=reference_kernels, preserve_all_tensors=True
    )
    quantize = read_tflite(int8_float_io_model).operators[0]
    assert quantize.opcode == "QUANTIZE"
    details = graph.interpreter.get_tensor_details()
    scale, zero_point = next(d for d in details if d["index"] == quantize.outputs[0])[
        "quantization"
    ]
    x = np.zeros((1, *graph.input_size, 3), np.float32)
    x.reshape(-1)[:5] = halves * np.float32(scale)
    graph.invoke(x)
    litert = graph.interpreter.get_tensor(quantize.outputs[0]).reshape(-1)[:5] - zero_point
    expected = [1, 2, 3, -1, -3] if reference_kernels else [0, 2, 2, 0, -2]
    np.testing.assert_array_equal(litert, expected)

    ours = TFLiteClassifier(int8_model, reference_kernels=reference_kernels)
    in_scale, in_zero_point = ours._input["quantization"]
    y = np.zeros((1, *ours.input_size, 3), np.float32)
    y.reshape(-1)[:5] = halves * np.float32(in_scale)
    np.testing.assert_array_equal(ours.quantize_input(y).reshape(-1)[:5] - in_zero_point, expected)


@pytest.mark.parametrize(
    "model",
    [
        "fixture",
        pytest.param("int8", marks=pytest.mark.integration),
        pytest.param("float32_io", marks=pytest.mark.integration),
    ],
)
@pytest.mark.parametrize("mean, std", [(127.5, 127.5), (128.0, 128.0), (100.0, 60.0)])
def test_predict_pixels_is_predict_of_the_normalized_pixels_to_the_bit(model, mean, std, request):
    """The table that `classify` quantizes uint8 pixels through is the same arithmetic as
    normalizing to float32 and quantizing: equal scores for any mean and std, on the
    optimized and the reference kernels (which round halves differently)."""
    from mobilenet_v2.base.preprocess import load_pixels, normalize
    from mobilenet_v2.lite.interpreter import TFLiteClassifier

    path = {
        "fixture": lambda: FIXTURE_TFLITE,
        "int8": lambda: request.getfixturevalue("int8_model"),
        "float32_io": lambda: request.getfixturevalue("int8_float_io_model"),
    }[model]()
    pixels = np.stack([load_pixels(IMAGES / n) for n in ("parrot.jpg", "cat.bmp")])
    pixels[0, :16, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)  # every level
    for reference in (False, True):
        classifier = TFLiteClassifier(path, reference_kernels=reference)
        np.testing.assert_array_equal(
            classifier.predict_pixels(pixels, mean, std),
            classifier.predict(normalize(pixels, mean, std)),
        )


@pytest.mark.parametrize(
    ("weights", "message"),
    [("missing.h5", "missing.h5"), ("junk.h5", "junk.h5")],
)
def test_convert_checks_its_weights_before_the_calibration_folder(
    tmp_path, capsys, monkeypatch, weights, message
):
    """A bad --weights fails first, not after a long calibration scan (or a download)."""
    from mobilenet_v2.tf import convert

    (tmp_path / "junk.h5").write_bytes(b"not HDF5")
    scanned = []
    monkeypatch.setattr(convert, "calibration_images", lambda *a, **k: scanned.append(a))
    monkeypatch.setattr(convert, "IMAGENETTE_URL", "http://127.0.0.1:9/imagenette2-160.tgz")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for calibration in (["--calibration-dir", str(SAMPLE)], []):
        argv = ["convert", "--output", str(tmp_path / "m.tflite"), "--size", "96"]
        one_line_error(capsys, [*argv, "--weights", str(tmp_path / weights), *calibration], message)
    assert scanned == [] and not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("via", ["command", "python"])
def test_offline_convert_reports_every_missing_download_at_once(tmp_path, capsys, monkeypatch, via):
    """Offline, the ImageNet weights and the imagenette calibration set both fail: one
    message lists both, each with what to do instead in the caller's own terms."""
    from mobilenet_v2.base.errors import DownloadError
    from mobilenet_v2.tf import convert, weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MOBILENET_V2_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "BASE_WEIGHT_PATH", "http://127.0.0.1:9/")
    monkeypatch.setattr(convert, "IMAGENETTE_URL", "http://127.0.0.1:9/imagenette2-160.tgz")
    output = tmp_path / "m.tflite"
    if via == "command":
        assert main(["convert", "--output", str(output), "--size", "96"]) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "--weights PATH" in err and "$MOBILENET_V2_WEIGHTS" in err
        assert "--calibration-dir DIR" in err and "weights=PATH" not in err
    else:
        with pytest.raises(DownloadError) as failure:
            convert.convert_file(output, "imagenet", size=96)
        err = str(failure.value)
        assert "weights=PATH" in err and "--weights" not in err
        assert "MOBILENET_V2_WEIGHTS" not in err
    assert err.count("download failed") == 2 and "2 downloads failed: (1) " in err
    assert "127.0.0.1:9/mobilenet_v2_weights" in err and "imagenette2-160.tgz" in err
    assert not output.exists() and not list((tmp_path / "keras" / "models").iterdir())
