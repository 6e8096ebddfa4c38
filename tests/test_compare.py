"""Per-layer float vs INT8 comparison: every layer gets its statistics, the final logits
agree, and the numbers are those of the dumps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES, SAMPLE

from mobilenet_v2.analysis.tensor_map import tflite_table
from mobilenet_v2.cli import main
from mobilenet_v2.golden.dump import dump_keras, dump_tflite
from mobilenet_v2.golden.manifest import dequantize, read_tensor
from mobilenet_v2.lite.tflite_file import read_tflite

pytestmark = pytest.mark.shared  # every test here reads ../shared

PHOTOS = ["grace_hopper.bmp", "parrot.jpg", "hot_dog.jpg", "cat.bmp"]


@pytest.fixture(scope="module")
def report(int8_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "report"
    images = [str(IMAGES / name) for name in PHOTOS]
    args = ["compare", *images, "--model", str(int8_model), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--report", str(out)]) == 0
    return out


def test_every_layer_has_its_statistics(report, int8_model):
    data = json.loads((report / "report.json").read_text())
    table = tflite_table(read_tflite(int8_model))
    computed = {
        t.file_name
        for t in table.tensors.values()
        if t.kind in ("input", "activation", "output") and t.keras_layer
    }
    assert {r["layer"] for r in data["layers"]} == computed
    assert len(data["layers"]) == 52 + 10 + 4  # convs, adds, input, pooling, logits, softmax
    for r in data["layers"]:
        assert r["sqnr_db"] == "inf" or math.isfinite(r["sqnr_db"])
        assert 0.9 < r["cosine"] <= 1.0 + 1e-9
        assert r["max_abs_error"] >= r["mean_abs_error"] >= 0
    assert len(data["images"]) == 4


def test_final_logits_agree(report):
    """compare runs TFLite's reference kernels by default: the integer side is the same
    arithmetic on every CPU, so the cosine (0.993 for the logits of these four photos) does
    not move with the machine."""
    layers = {r["layer"]: r for r in json.loads((report / "report.json").read_text())["layers"]}
    assert layers["predictions_logits"]["cosine"] > 0.99
    assert layers["predictions"]["cosine"] > 0.99
    assert layers["input_layer"]["sqnr_db"] == "inf"  # (x - 128) / 128 is exact in int8


def test_report_files_list_worst_layers_first(report):
    markdown = (report / "report.md").read_text()
    data = json.loads((report / "report.json").read_text())
    finite = sorted((r["sqnr_db"], r["layer"]) for r in data["layers"] if r["sqnr_db"] != "inf")
    rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[1] == finite[0][1]  # rows[0] is the header
    assert "<table>" in (report / "report.html").read_text()
    assert (report / "sqnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_statistics_equal_those_of_the_dumps(int8_model, tmp_path, capsys):
    image = IMAGES / "grace_hopper.bmp"
    args = ["compare", str(image), "--model", str(int8_model), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--report", str(tmp_path / "r")]) == 0
    layers = {
        r["layer"]: r for r in json.loads((tmp_path / "r" / "report.json").read_text())["layers"]
    }
    # The float dump with the INT8 model's preprocessing: both see the same pixels.
    dump_keras(str(FIXTURE_TFLITE), image, tmp_path / "f", mean=128.0, std=128.0)
    dump_tflite(int8_model, image, tmp_path / "q")
    for name in ("Conv1_relu", "block_5_add", "predictions_logits"):
        f = read_tensor(tmp_path / "f" / f"{name}.txt").array.astype(np.float64).ravel()
        q = dequantize(*read_tensor(tmp_path / "q" / f"{name}.txt")).astype(np.float64).ravel()
        sqnr = 10 * math.log10((f @ f) / ((f - q) @ (f - q)))
        cosine = (f @ q) / math.sqrt((f @ f) * (q @ q))
        assert layers[name]["sqnr_db"] == pytest.approx(sqnr, abs=1e-6)
        assert layers[name]["cosine"] == pytest.approx(cosine, abs=1e-9)
        assert layers[name]["max_abs_error"] == pytest.approx(np.abs(f - q).max(), rel=1e-6)


def test_fixture_against_its_own_float_weights(tmp_path, capsys):
    images = [str(IMAGES / name) for name in PHOTOS[:2]]
    args = ["compare", *images, "--model", str(FIXTURE_TFLITE), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--report", str(tmp_path / "r")]) == 0
    layers = {
        r["layer"]: r for r in json.loads((tmp_path / "r" / "report.json").read_text())["layers"]
    }
    assert layers["predictions_logits"]["cosine"] > 0.99  # 1001 logits, background dropped


def test_unwritable_report_fails_before_work(int8_model, tmp_path, capsys):
    image = str(IMAGES / "grace_hopper.bmp")
    args = ["compare", image, "--model", str(int8_model), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--report", str(tmp_path / "no" / "dir")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_a_model_that_is_not_mobilenet_v2_is_a_one_line_error(tmp_path, capsys):
    """Two plain convolutions where MobileNetV2 has a convolution, then a depthwise one: the
    layer map is empty, and compare says so instead of failing on an empty report."""
    from mobilenet_v2.tf._tf import keras, tf

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x))
    path = tmp_path / "other.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    capsys.readouterr()
    argv = ["compare", str(IMAGES / "cat.bmp"), "--model", str(path), "--weights", "none"]
    assert main([*argv, "--report", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"mobilenet-v2: error: {path}: not a MobileNetV2 model")
        and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "r").exists()


def test_limit_draws_a_seeded_class_balanced_sample(monkeypatch, tmp_path):
    """`--limit` on the sample (one image per class, sorted by class) takes images of
    different classes spread over the listing, the same ones for the same --seed; before,
    the first N sorted files were taken."""
    from mobilenet_v2.base.errors import MobileNetV2Error

    given = []

    def stand_in(images, *args, **kwargs):  # records the images, then stops the command
        given.append([p.name for p in images])
        raise MobileNetV2Error("stop")

    monkeypatch.setattr("mobilenet_v2.golden.compare.compare", stand_in)
    base = ["compare", str(SAMPLE), "--model", "m.tflite", "--report", str(tmp_path / "r")]
    for seed in ("0", "0", "1"):
        assert main([*base, "--limit", "8", "--seed", seed]) == 1
    first, again, other = given
    assert len(first) == 8 and again == first and other != first
    assert first != sorted(p.name for p in SAMPLE.glob("*.JPEG"))[:8]
    assert len({name.split("_")[0] for name in first}) == 8  # eight classes


def test_compares_a_rewritten_model_with_the_float_model_it_came_from(per_tensor_model, tmp_path):
    """`convert --equalize --absorb-bias --bias-correction`: compare redoes the recorded
    rewrites (bias correction aside) on the recorded calibration images, so each layer meets
    its own rescaled channels. Against the original float model instead, the rescaled layers
    inside the blocks fall to a cosine of about 0.1 (measured); compared with their own
    float layers, every layer of these photos stays above 0.9 and the logits above 0.95
    (measured: 0.98; the per-channel model's 0.993)."""
    out = tmp_path / "report"
    images = [str(IMAGES / name) for name in PHOTOS[:2]]
    args = ["compare", *images, "--model", str(per_tensor_model), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--report", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["float_rewrites"] == ["equalize", "absorb_bias"]
    layers = {r["layer"]: r for r in data["layers"]}
    assert min(r["cosine"] for r in layers.values()) > 0.9
    assert layers["predictions_logits"]["cosine"] > 0.95


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sha256": "0" * 64}, "no longer gives the same ones"),
        ({"source": "calibration-moved"}, "which is not a folder here"),
        ({"sha256": None}, "records no digest of them"),
    ],
    ids=["other images", "folder gone", "no digest"],
)
def test_rewrites_are_redone_only_on_the_same_calibration_images(
    per_tensor_model, fixture_model, change, message
):
    """Equalization under ReLU6 and absorption depend on the calibration images: compare
    refuses, in one line, to redo them on other images or without them."""
    from mobilenet_v2.base.errors import MobileNetV2Error
    from mobilenet_v2.golden.compare import converted_from
    from mobilenet_v2.lite.record import embed_metadata, read_metadata

    raw = per_tensor_model.read_bytes()
    record = read_metadata(raw)
    record["calibration"] = {**record["calibration"], **change}
    with pytest.raises(MobileNetV2Error, match=message):
        converted_from(fixture_model, embed_metadata(raw, record), per_tensor_model)
