"""The layers-to-tensor map: Keras layer of every op, MACs and parameters that agree with the
paper's table for all 22 published configurations, and its CSV / xlsx / diagram outputs."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import FIXTURE_TFLITE, ROOT

from mobilenet_v2.analysis.tensor_map import keras_table, tflite_table
from mobilenet_v2.base.architecture import LOGITS, conv_steps
from mobilenet_v2.cli import main
from mobilenet_v2.lite.tflite_file import read_tflite

# TF-slim's MobileNetV2 table (the paper's checkpoints): MACs (M) and parameters (M).
PAPER = {
    (1.4, 224): (582, 6.06),
    (1.3, 224): (509, 5.34),
    (1.0, 224): (300, 3.47),
    (1.0, 192): (221, 3.47),
    (1.0, 160): (154, 3.47),
    (1.0, 128): (99, 3.47),
    (1.0, 96): (56, 3.47),
    (0.75, 224): (209, 2.61),
    (0.75, 192): (153, 2.61),
    (0.75, 160): (107, 2.61),
    (0.75, 128): (69, 2.61),
    (0.75, 96): (39, 2.61),
    (0.5, 224): (97, 1.95),
    (0.5, 192): (71, 1.95),
    (0.5, 160): (50, 1.95),
    (0.5, 128): (32, 1.95),
    (0.5, 96): (18, 1.95),
    (0.35, 224): (59, 1.66),
    (0.35, 192): (43, 1.66),
    (0.35, 160): (30, 1.66),
    (0.35, 128): (20, 1.66),
    (0.35, 96): (11, 1.66),
}


@pytest.mark.parametrize("alpha, size", list(PAPER))
def test_macs_and_parameters_match_the_paper(alpha, size, capsys):
    macs, params = PAPER[(alpha, size)]
    assert main(["inspect", "none", "--alpha", str(alpha), "--size", str(size), "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["macs"] // 10**6 == macs  # to the million, rounded down
    # The paper counts kernel weights (no biases, no BN); to its two decimals they agree.
    assert round(totals["weights"] / 1e6, 2) == params
    assert abs(totals["weights"] / 1e6 / params - 1) < 0.02


@pytest.mark.shared
def test_int8_model_totals_equal_the_float_models(int8_model):
    from mobilenet_v2 import MobileNetV2

    float_totals = keras_table(MobileNetV2(weights=None)).totals
    int8_totals = tflite_table(read_tflite(int8_model)).totals
    assert int8_totals["macs"] == float_totals["macs"] == 300_774_272
    assert int8_totals["weights"] == float_totals["weights"] == 3_469_760
    # Deployed parameters: kernels plus the folded-BN biases.
    assert int8_totals["params"] == 3_487_816


@pytest.mark.shared
def test_every_op_of_our_int8_model_has_its_keras_layer(int8_model):
    from mobilenet_v2 import MobileNetV2

    names = {layer.name for layer in MobileNetV2(weights=None).layers} | {LOGITS}
    table = tflite_table(read_tflite(int8_model))
    assert [op.type for op in table.ops].count("ADD") == 10
    for op in table.ops:
        assert op.keras_layer in names, (op.index, op.type)
        for t in op.outputs:
            assert table.tensors[t].file_name in names
    assert [op.keras_layer for op in table.ops[:3]] == [
        "Conv1_relu",
        "expanded_conv_depthwise_relu",
        "expanded_conv_project_BN",
    ]
    assert table.ops[-1].keras_layer == "predictions"


@pytest.mark.shared
def test_fixture_ops_map_to_keras_layers_by_structure():
    table = tflite_table(read_tflite(FIXTURE_TFLITE))
    by_type = {op.index: (op.type, op.keras_layer) for op in table.ops}
    assert by_type[0] == ("CONV_2D", "Conv1_relu")
    assert by_type[61] == ("CONV_2D", "out_relu")
    assert by_type[62] == ("AVERAGE_POOL_2D", "global_average_pooling2d")
    assert by_type[63] == ("CONV_2D", "predictions")
    assert by_type[64] == ("RESHAPE", "")  # no Keras layer computes the squeeze
    assert by_type[65] == ("SOFTMAX", "predictions")
    assert table.totals["macs"] == 300_774_272 + 1280  # 1001 classes


def test_conv_steps_follow_the_keras_model():
    from mobilenet_v2 import MobileNetV2
    from mobilenet_v2.tf import layers

    model = MobileNetV2(alpha=0.5, weights=None, input_shape=(96, 96, 3))
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D))
    ]
    steps = conv_steps()
    assert [s.conv for s in steps] == [c.name for c in convs]
    for step in steps:
        assert step.output in {layer.name for layer in model.layers}


@pytest.mark.shared
def test_inspect_writes_xlsx_csv_and_diagrams(int8_model, tmp_path, capsys):
    from openpyxl import load_workbook

    args = ["inspect", str(int8_model), "--xlsx", str(tmp_path / "map.xlsx")]
    args += ["--csv", str(tmp_path / "map.csv"), "--diagram", str(tmp_path / "model.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "300,774,272 MACs (300 M)" in out and "3,469,760 kernel weights" in out
    book = load_workbook(tmp_path / "map.xlsx")
    assert book.sheetnames == ["ops", "tensors", "totals"]
    ops = list(book["ops"].iter_rows(values_only=True))
    assert len(ops) == 1 + 65 and ops[1][:3] == (0, "CONV_2D", "Conv1_relu")
    rows = list(csv.DictReader((tmp_path / "map.csv").open()))
    weights = [r for r in rows if r["role"] == "weight" and r["op_type"] == "DEPTHWISE_CONV_2D"]
    assert len(weights) == 17 and all(r["layout"] == "1HWC" for r in weights)
    assert len(json.loads(weights[0]["scales"])) == int(json.loads(weights[0]["shape"])[-1])
    assert (tmp_path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["inspect", str(int8_model), "--diagram", str(tmp_path / "model.svg")]) == 0
    assert b"<svg" in (tmp_path / "model.svg").read_bytes()[:500]


@pytest.mark.shared
def test_inspect_markdown_lists_every_op(capsys):
    assert main(["inspect", str(FIXTURE_TFLITE), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") >= 66 and "| DEPTHWISE_CONV_2D |" in out.replace("  ", " ")


def test_inspect_bad_model_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.tflite" in err


def test_docs_map_and_diagram_are_generated():
    from openpyxl import load_workbook

    book = load_workbook(ROOT / "docs" / "layers_to_tensor_map.xlsx")
    totals = dict(book["totals"].iter_rows(values_only=True))
    assert totals["macs"] == 300_774_272
    assert (ROOT / "docs" / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float16_weights_keep_their_layouts(models):
    table = tflite_table(read_tflite(models["float16"]))
    assert table.totals["macs"] == 300_774_272 and table.totals["weights"] == 3_469_760
    conv = next(op for op in table.ops if op.type == "DEPTHWISE_CONV_2D")
    kernel = table.tensors[conv.weights[0]]  # the DEQUANTIZE output of a float16 constant
    assert (kernel.kind, kernel.layout, kernel.file_name) == (
        "weight",
        "1HWC",
        "expanded_conv_depthwise.folded_kernel",
    )
    halves = [t for t in table.tensors.values() if t.dtype == "float16"]
    assert halves and all(t.kind in ("weight", "bias") and t.layout for t in halves)


# --- Each output holds what its name says ------------------------------------------------------

# The first bytes of each diagram format (SVG's "<?xml": the XML declaration matplotlib writes).
DIAGRAM_MAGIC = {
    ".svg": b"<?xml",
    ".pdf": b"%PDF-",
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".JPEG": b"\xff\xd8\xff",
}


@pytest.mark.shared
@pytest.mark.parametrize("suffix", list(DIAGRAM_MAGIC))
def test_the_diagram_is_written_in_the_format_its_suffix_names(suffix, tmp_path, capsys):
    diagram = tmp_path / f"model{suffix}"
    assert main(["inspect", str(FIXTURE_TFLITE), "--diagram", str(diagram), "--json"]) == 0
    assert diagram.read_bytes().startswith(DIAGRAM_MAGIC[suffix])


@pytest.mark.parametrize(
    "flag, name, message",
    [
        (
            "--diagram",
            "model.xyz",
            "--diagram {}: the file name must end in .svg or .pdf or .png or .jpg or .jpeg",
        ),
        (
            "--diagram",
            "model",
            "--diagram {}: the file name must end in .svg or .pdf or .png or .jpg or .jpeg",
        ),
        ("--csv", "map.xlsx", "--csv {}: the file name must end in .csv"),
        ("--xlsx", "map.csv", "--xlsx {}: the file name must end in .xlsx"),
    ],
)
def test_an_output_named_for_another_format_is_refused_before_any_work(
    flag, name, message, tmp_path, capsys
):
    """Exit 2, one line, nothing written; the model (absent here) is never read."""
    path = tmp_path / name
    assert main(["inspect", str(tmp_path / "absent.tflite"), flag, str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"mobilenet-v2 inspect: error: {message.format(path)} (see --help)\n"
    assert not list(tmp_path.iterdir())


def test_json_and_markdown_together_are_refused(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "absent.tflite"), "--json", "--markdown"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "mobilenet-v2 inspect: error: --json and --markdown both print the map; choose one "
        "(see --help)\n"
    )
