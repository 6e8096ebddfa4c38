"""`classify --output`: one row per input image in Parquet, CSV or JSON Lines, errors as rows,
written atomically, and `--resume` that classifies only what the file lacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURE_TFLITE, IMAGES

from mobilenet_v2.cli import main
from mobilenet_v2.results import file_sha256, read_results

pytestmark = pytest.mark.shared

GOOD = ["parrot.jpg", "hot_dog.jpg", "grace_hopper.bmp", "cat.bmp"]


@pytest.fixture
def images(tmp_path):
    """Four photos and three files that are not images: empty, text, a cut-off JPEG."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(IMAGES / name, folder / name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a JPEG")
    (folder / "cut.jpg").write_bytes((IMAGES / "parrot.jpg").read_bytes()[:2000])
    return folder


def classify(*args: str) -> int:
    return main(["classify", *args, "--model", str(FIXTURE_TFLITE), "--top", "3"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_one_row_per_image_with_errors_as_rows(images, tmp_path, capsys, suffix):
    out = tmp_path / f"results{suffix}"
    assert classify(str(images), "--output", str(out)) == 1  # three bad files: exit 1
    err = capsys.readouterr().err
    assert "classified 7 images; 3 errors" in err and "3 of 7 images" in err
    rows = {r.path: r for r in read_results(out)}
    assert sorted(rows) == sorted(str(p) for p in images.iterdir())
    assert {name for name, r in rows.items() if r.error} == {
        str(images / n) for n in ("empty.jpg", "text.jpg", "cut.jpg")
    }
    digest = file_sha256(FIXTURE_TFLITE)
    assert all(r.model_sha256 == digest and r.model == FIXTURE_TFLITE.name for r in rows.values())
    # The same classes and scores as the stdout (--json) output, to the format's precision.
    assert classify(*(str(images / n) for n in GOOD), "--json") == 0
    for line in capsys.readouterr().out.splitlines():
        shown = json.loads(line)
        row = rows[shown["image"]]
        assert row.error is None
        assert row.synsets == [p["synset"] for p in shown["predictions"]]
        assert row.names == [p["name"] for p in shown["predictions"]]
        assert row.scores == pytest.approx([p["score"] for p in shown["predictions"]], rel=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_resume_classifies_only_what_the_file_lacks(images, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert classify(*(str(images / n) for n in GOOD[:2]), "--output", str(out)) == 0
    first = out.read_text().splitlines()
    capsys.readouterr()
    assert classify(*(str(images / n) for n in GOOD), "--output", str(out), "--resume") == 0
    assert "classified 2 images and kept 2 from before" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[:2] == first  # the earlier rows, unchanged
    assert sorted(json.loads(line)["path"] for line in lines) == sorted(
        str(images / n) for n in GOOD
    )


def test_an_interrupted_run_leaves_no_file(images, tmp_path, monkeypatch, capsys):
    """A failure after the first batch: neither the output nor its staging file remains."""
    from mobilenet_v2.lite.interpreter import TFLiteClassifier

    calls = []
    predict = TFLiteClassifier.predict

    def failing(self, batch):
        calls.append(len(batch))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return predict(self, batch)

    monkeypatch.setattr(TFLiteClassifier, "predict", failing)
    out = tmp_path / "results.parquet"
    assert classify(str(images), "--output", str(out), "--batch-size", "2") == 130
    assert len(calls) == 2 and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images"]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--output", "r.txt"], 1, "r.txt: unknown result format '.txt'; use one of"),
        (["--resume"], 2, "--resume continues an --output file"),
        (["--output", "r.csv", "--json"], 2, "--json prints to stdout; --output writes a file"),
    ],
)
def test_bad_output_flags_are_one_line_errors(args, status, message, tmp_path, capsys):
    image = str(IMAGES / "parrot.jpg")
    args = [a if a != "r.txt" and a != "r.csv" else str(tmp_path / a) for a in args]
    assert classify(image, *args) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from mobilenet_v2.cli import main\n"
        f"sys.exit(main(['classify', {str(IMAGES / 'parrot.jpg')!r}, '--model', "
        f"{str(FIXTURE_TFLITE)!r}, '--output', {str(tmp_path / 'r.parquet')!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "pip install 'mobilenet-v2[ray]'" in run.stderr
    assert not list(tmp_path.iterdir())


def test_the_tf_model_is_named_by_its_weights_file(tmp_path):
    out = tmp_path / "results.jsonl"
    args = ["classify", str(IMAGES / "parrot.jpg"), "--weights", str(FIXTURE_TFLITE)]
    assert main([*args, "--top", "1", "--output", str(out)]) == 0
    (row,) = read_results(out)
    assert row.model == f"TF float32 ({FIXTURE_TFLITE.name})"
    assert row.model_sha256 == file_sha256(FIXTURE_TFLITE) and row.names == ["macaw"]
