"""The programs end to end: `mobilenet-v2 classify` and the seed's `tf_inference.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_TFLITE, IMAGES, ROOT

from mobilenet_v2.cli import main

# The console script installed beside this interpreter (the venv's bin/).
COMMAND = str(Path(sys.executable).with_name("mobilenet-v2"))

GRACE_HOPPER_TOP5 = """\
n03763968 military_uniform 0.906
n04350905 suit 0.013
n03787032 mortarboard 0.011
n04039381 racket 0.010
n02669723 academic_gown 0.006
"""


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MOBILENET_V2_WEIGHTS": str(FIXTURE_TFLITE), **(env or {})},
    )


def test_tf_inference_prints_the_seeds_top5_and_nothing_else():
    result = run(sys.executable, "tf_inference.py", "-i", str(IMAGES / "grace_hopper.bmp"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == GRACE_HOPPER_TOP5
    assert result.stderr == ""  # no TensorFlow start-up banners


def test_tf_inference_flags(tmp_path):
    result = run(
        sys.executable,
        "tf_inference.py",
        "-i",
        str(IMAGES / "grace_hopper.bmp"),
        "--input_mean",
        "128",
        "--input_std",
        "128",
        "--weights",
        str(FIXTURE_TFLITE),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("n03763968 military_uniform 0.9")


def test_console_command_classifies_a_directory_as_json():
    result = run(COMMAND, "classify", str(IMAGES), "--top", "1", "--json", "--batch-size", "3")
    assert result.returncode == 0, result.stderr
    rows = {
        os.path.basename(r["image"]): r["predictions"][0]["name"]
        for r in map(json.loads, result.stdout.splitlines())
    }
    assert len(rows) == 8
    assert rows["parrot.jpg"] == "macaw" and rows["cat.bmp"] == "Egyptian_cat"
    assert rows["hot_dog.jpg"] == "hotdog" and rows["dragonfly.bmp"] == "dragonfly"


def test_several_images_get_a_header_each(capsys, monkeypatch):
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", str(FIXTURE_TFLITE))
    code = main(
        [
            "classify",
            str(IMAGES / "grace_hopper.bmp"),
            str(IMAGES / "parrot.jpg"),
            "--resize",
            "stretch",
            "--top",
            "2",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{IMAGES / 'grace_hopper.bmp'}:"
    assert lines[1] == "n03763968 military_uniform 0.906"
    assert lines[3] == f"{IMAGES / 'parrot.jpg'}:"
    assert lines[4].startswith("n01818515 macaw ")


def bad_image_paths(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "cut.jpg").write_bytes((IMAGES / "parrot.jpg").read_bytes()[:3000])
    (tmp_path / "nothing").mkdir()
    return {
        "zero-byte": (tmp_path / "empty.jpg", "empty file"),
        "not-an-image": (tmp_path / "text.jpg", "not an image"),
        "truncated": (tmp_path / "cut.jpg", "cannot decode image"),
        "missing": (tmp_path / "missing.jpg", "image not found"),
        "empty-dir": (tmp_path / "nothing", "directory contains no images"),
    }


@pytest.mark.parametrize("case", ["zero-byte", "not-an-image", "truncated", "missing", "empty-dir"])
def test_bad_images_give_one_line_errors(tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", str(FIXTURE_TFLITE))
    path, message = bad_image_paths(tmp_path)[case]
    assert main(["classify", str(path)]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"mobilenet-v2: error: {path}: {message}" + captured.err.split(message, 1)[1]
    )
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_bad_image_among_good_ones_fails_the_run_but_not_the_others(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", str(FIXTURE_TFLITE))
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    assert main(["classify", str(bad), str(IMAGES / "parrot.jpg"), "--top", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"mobilenet-v2: error: {bad}: not an image Pillow can read"
    assert "macaw" in captured.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weights", "WRONG"], "WRONG: weights file not found"),
        (["--alpha", "0.5"], "layer 'Conv1' needs (3, 3, 3, 16)"),
    ],
)
def test_wrong_weights_give_one_line_errors(capsys, args, message):
    assert main(["classify", str(IMAGES / "cat.bmp"), "--weights", str(FIXTURE_TFLITE), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and err.startswith("mobilenet-v2: error:")


def test_corrupt_weights_subprocess_has_no_traceback(tmp_path):
    weights = tmp_path / "cut.tflite"
    weights.write_bytes(FIXTURE_TFLITE.read_bytes()[:100_000])
    result = run(COMMAND, "classify", str(IMAGES / "cat.bmp"), "--weights", str(weights))
    assert result.returncode == 1
    assert result.stderr.startswith(f"mobilenet-v2: error: {weights}: corrupt or truncated")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
