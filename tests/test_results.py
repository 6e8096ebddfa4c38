"""`classify --output`: one row per input image in Parquet, CSV or JSON Lines, errors as rows,
written atomically, and `--resume` that continues a finished or an interrupted run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
from conftest import BAD_IMAGES, FIXTURE_TFLITE, GOOD_IMAGES, IMAGES, good_and_bad_images

from mobilenet_v2.base.outputs import atomic_directory, write_atomic
from mobilenet_v2.base.provenance import file_sha256
from mobilenet_v2.cli import main
from mobilenet_v2.inference.results import (
    Row,
    journal_path,
    path_key,
    read_results,
    write_results,
)

pytestmark = pytest.mark.shared

GOOD, BAD = GOOD_IMAGES, BAD_IMAGES


@pytest.fixture
def images(tmp_path):
    return good_and_bad_images(tmp_path / "images")


def classify(*args: str, model=FIXTURE_TFLITE, top: int = 3) -> int:
    return main(["classify", *args, "--model", str(model), "--top", str(top)])


def leftovers(directory):
    """Staging files and journals beside the outputs (names starting with a dot)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_one_row_per_image_with_errors_as_rows(images, tmp_path, capsys, suffix):
    out = tmp_path / f"results{suffix}"
    assert classify(str(images), "--output", str(out)) == 1  # three bad files: exit 1
    err = capsys.readouterr().err
    assert f"wrote {out}: 4 of 7 images classified, 3 with an error" in err
    assert "error: 3 of 7 images could not be classified" in err
    rows = {r.path: r for r in read_results(out)}
    assert sorted(rows) == sorted(str(p) for p in images.iterdir())
    assert {path for path, r in rows.items() if r.error} == {str(images / n) for n in BAD}
    digest = file_sha256(FIXTURE_TFLITE)
    assert all(r.model_sha256 == digest and r.model == FIXTURE_TFLITE.name for r in rows.values())
    # The same classes and scores as the stdout (--json) output; scores exact in every format.
    assert classify(*(str(images / n) for n in GOOD), "--json") == 0
    for line in capsys.readouterr().out.splitlines():
        shown = json.loads(line)
        row = rows[shown["image"]]
        assert row.error is None
        assert row.synsets == [p["synset"] for p in shown["predictions"]]
        assert row.names == [p["name"] for p in shown["predictions"]]
        assert row.scores == [p["score"] for p in shown["predictions"]]
    assert leftovers(tmp_path) == []


def test_resume_classifies_only_what_the_file_lacks(images, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results.jsonl"
    assert classify(*(str(images / n) for n in GOOD[:2]), "--output", str(out)) == 0
    first = out.read_text().splitlines()
    capsys.readouterr()
    # The same images spelled relative and given twice: one row each.
    monkeypatch.chdir(images)
    again = [*GOOD, GOOD[0], str(images / GOOD[1])]
    assert classify(*again, "--output", str(out), "--resume") == 0
    assert "2 of 2 images classified (2 kept from before)" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[:2] == first  # the earlier rows, unchanged
    assert len(lines) == 4


def test_resume_from_another_folder_matches_the_files_the_first_run_classified(
    images, tmp_path, capsys, monkeypatch
):
    """Rows hold absolute paths, resolved where the first run ran: a resume from elsewhere,
    with paths spelled relative to there or absolute, classifies only what is new."""
    out = tmp_path / "results.csv"
    monkeypatch.chdir(images)
    assert classify(*GOOD[:2], "--output", str(out)) == 0
    assert [r.path for r in read_results(out)] == [str(images / n) for n in GOOD[:2]]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    again = [str(images / GOOD[0]), *(os.path.join("..", images.name, n) for n in GOOD)]
    assert classify(*again, "--output", str(out), "--resume") == 0
    assert "2 of 2 images classified (2 kept from before)" in capsys.readouterr().err
    assert [r.path for r in read_results(out)] == [str(images / n) for n in GOOD]


def test_a_file_written_with_relative_paths_is_resumed_with_them_made_absolute(
    images, tmp_path, capsys, monkeypatch
):
    """An output written before rows held absolute paths: resumed from its folder, its rows
    match their images (nothing classified twice) and come out absolute like the new one."""
    out = tmp_path / "results.jsonl"
    monkeypatch.chdir(images)
    assert classify(*GOOD[:2], "--output", str(out)) == 0
    old = [replace(r, path=os.path.basename(r.path)) for r in read_results(out)]
    write_results(out, old, 3)
    capsys.readouterr()
    assert classify(*GOOD[:3], "--output", str(out), "--resume") == 0
    assert "1 of 1 images classified (2 kept from before)" in capsys.readouterr().err
    assert [r.path for r in read_results(out)] == [str(images / n) for n in GOOD[:3]]


def test_an_input_is_known_by_its_url_or_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("https://example.com/images/cat.jpg", "file:///data/images/cat.jpg"):
        assert path_key(url) == url  # never joined to the current folder
    assert path_key("images/../cat.jpg") == str(tmp_path / "cat.jpg")
    assert path_key(tmp_path / "cat.jpg") == str(tmp_path / "cat.jpg")


def test_resume_tries_failed_images_again(images, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert classify(str(images), "--output", str(out)) == 1
    for name in BAD:  # repaired since
        shutil.copy(IMAGES / "cat.bmp", images / name)
    capsys.readouterr()
    assert classify(str(images), "--output", str(out), "--resume") == 0
    assert "3 of 3 images classified (4 kept from before), 0 with an error" in (
        capsys.readouterr().err
    )
    rows = read_results(out)
    assert len(rows) == 7 and not [r for r in rows if r.error]


def test_an_interrupted_run_leaves_a_journal_that_resume_continues(images, tmp_path, monkeypatch):
    """A failure after the first batch: no output that looks complete, a journal with the
    first batch's rows, and --resume classifies only the rest."""
    from mobilenet_v2.lite.interpreter import TFLiteClassifier

    calls = []
    predict = TFLiteClassifier.predict_pixels

    def failing(self, batch, mean, std):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return predict(self, batch, mean, std)

    monkeypatch.setattr(TFLiteClassifier, "predict_pixels", failing)
    out = tmp_path / "results.parquet"
    assert classify(str(images), "--output", str(out), "--batch-size", "2") == 130
    assert not out.exists() and leftovers(tmp_path) == [journal_path(out).name]
    assert len(journal_path(out).read_text().splitlines()) == 2  # the first batch
    assert classify(str(images), "--output", str(out), "--batch-size", "2", "--resume") == 1
    # Kept: cat. Tried (again, for cut.jpg's error row): cut, empty, grace_hopper, hot_dog,
    # parrot, text in batches of two; predict takes the ones that decode: 0, 2, 1.
    assert calls[2:] == [2, 1]
    assert len(read_results(out)) == 7 and leftovers(tmp_path) == []


def test_resume_refuses_another_models_results(images, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert classify(str(images / GOOD[0]), "--output", str(out)) == 0
    capsys.readouterr()
    other = tmp_path / "other.tflite"
    other.write_bytes(FIXTURE_TFLITE.read_bytes() + b"\0")  # another file, another hash
    before = out.read_bytes()
    assert classify(str(images), "--output", str(out), "--resume", model=other) == 1
    err = capsys.readouterr().err
    assert "holds results of another model" in err and err.count("\n") == 1
    assert out.read_bytes() == before


def test_resume_refuses_a_narrower_top(images, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert classify(str(images / GOOD[2]), "--output", str(out), top=5) == 0
    capsys.readouterr()
    assert classify(str(images), "--output", str(out), "--resume", top=2) == 1
    assert "holds top-5 results; resume with --top 5 or more" in capsys.readouterr().err


def test_file_names_that_are_not_utf8_are_kept_visible(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    try:
        shutil.copy(IMAGES / "parrot.jpg", folder / name)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses non-UTF-8 names")
    out = tmp_path / "results.parquet"
    assert classify(str(folder), "--output", str(out)) == 0
    (row,) = read_results(out)
    assert row.path.endswith("caf\\xe9.jpg") and row.names[0] == "macaw"


# Characters that `str.splitlines()` ends a line at and a file name may hold (JSON escapes
# those below 0x20; U+2028, U+2029 and U+0085 reach the file as they are).
LINE_BREAKS_TO_SPLITLINES = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_file_names_holding_what_splitlines_calls_a_line_break_are_one_row_each(
    tmp_path, capsys, suffix
):
    """The journal and a JSON Lines output are read by "\\n" only: a name with U+2028 or
    U+0085 is one row, through an interrupted run's journal and --resume alike."""
    folder = tmp_path / "images"
    folder.mkdir()
    names = [f"photo{mark}{i}.jpg" for i, mark in enumerate(LINE_BREAKS_TO_SPLITLINES)]
    for name in names:
        shutil.copy(IMAGES / "parrot.jpg", folder / name)
    paths = [str(folder / name) for name in names]
    out = tmp_path / f"results{suffix}"
    assert classify(*paths[:3], "--output", str(out)) == 0
    assert [r.path for r in read_results(out)] == paths[:3]
    # An interrupted run's journal (one row, then a line a kill cut short) to resume from.
    journal = journal_path(out)
    kept = Row(paths[3], FIXTURE_TFLITE.name, file_sha256(FIXTURE_TFLITE), ["n1"], ["macaw"], [1.0])
    journal.write_text(json.dumps(asdict(kept), ensure_ascii=False) + '\n{"path": "cut', "utf-8")
    capsys.readouterr()
    assert classify(*paths, "--output", str(out), "--resume") == 0
    assert f"{len(paths) - 4} of {len(paths) - 4} images classified (4 kept" in (
        capsys.readouterr().err
    )
    rows = read_results(out)
    assert [r.path for r in rows] == paths and rows[3] == kept
    assert all(r.names[0] == "macaw" for r in rows) and not journal.exists()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_path_reads_back_exactly_from_every_format(tmp_path, suffix):
    """What --resume matches on: a path with line breaks of any kind, quotes, commas and
    separators reads back as it was written."""
    paths = [
        "/images/new\nline.jpg",
        "/images/windows\r\nline.jpg",
        "/images/carriage\rreturn.jpg",
        '/images/"quoted", with a comma.jpg',
        "/images/trailing newline.jpg\n",
        *(f"/images/{mark}.jpg" for mark in LINE_BREAKS_TO_SPLITLINES),
    ]
    rows = [Row(p, "m.tflite", "0" * 64, ["n1"], ["tench"], [0.5]) for p in paths]
    out = tmp_path / f"results{suffix}"
    write_results(out, rows, top=1)
    assert read_results(out) == rows


def test_a_failed_write_names_the_output(images, tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mobilenet_v2.inference.results.atomic_file", full)
    out = tmp_path / "results.csv"
    assert classify(str(images / GOOD[0]), "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"error: {out}: cannot write (No space left on device)\n"), err


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--output", "{tmp}/r.txt"], 2, "unknown result format; use a name ending in .parquet"),
        (["--resume"], 2, "--resume continues an --output file"),
        (["--output", "{tmp}/r.csv", "--json"], 2, "--json prints to stdout; --output writes"),
        (["--output", "{tmp}/fifo.csv", "--resume"], 1, "fifo.csv: output path exists and is"),
    ],
)
def test_bad_output_flags_are_one_line_errors(args, status, message, tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.csv")
    args = [a.format(tmp=tmp_path) for a in args]
    assert classify(str(IMAGES / "parrot.jpg"), *args) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert [p.name for p in tmp_path.iterdir()] == ["fifo.csv"]


def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from mobilenet_v2.cli import main\n"
        f"sys.exit(main(['classify', {str(IMAGES / 'parrot.jpg')!r}, '--model', "
        f"{str(FIXTURE_TFLITE)!r}, '--output', {str(tmp_path / 'r.parquet')!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "pip install 'mobilenet-v2[parquet]'" in run.stderr
    assert not list(tmp_path.iterdir())


def test_the_tf_model_is_named_by_its_weights_file(tmp_path, monkeypatch):
    """--weights FILE, and `imagenet` (named or by default) resolved to the file it loads
    (here the one $MOBILENET_V2_WEIGHTS names): the row's hash is that file's."""
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", str(FIXTURE_TFLITE))
    for flags in (["--weights", str(FIXTURE_TFLITE)], ["--weights", "imagenet"], []):
        out = tmp_path / f"{len(flags)}.jsonl"
        args = ["classify", str(IMAGES / "parrot.jpg"), *flags, "--top", "1"]
        assert main([*args, "--output", str(out)]) == 0
        (row,) = read_results(out)
        assert row.model_sha256 == file_sha256(FIXTURE_TFLITE) and row.names == ["macaw"]


def test_an_image_whose_classes_all_score_zero_is_a_row_with_no_classes(tmp_path, monkeypatch):
    """Quantized scores can all round to 0: nothing is ranked, and it is not an error."""
    import numpy as np

    from mobilenet_v2.lite.interpreter import TFLiteClassifier

    monkeypatch.setattr(
        TFLiteClassifier, "predict_pixels", lambda self, x, mean, std: np.zeros((len(x), 1000))
    )
    out = tmp_path / "results.jsonl"
    assert classify(str(IMAGES / "parrot.jpg"), "--output", str(out)) == 0
    (row,) = read_results(out)
    assert (row.synsets, row.names, row.scores, row.error) == ([], [], [], None)


# --- Result files get the user's umask without the process umask ever being changed ------------


def test_writing_a_result_never_sets_the_process_umask(tmp_path, monkeypatch):
    """os.umask can only learn the umask by setting it; in that instant another thread's new
    file would be 0666. Writing must read it instead, and still honour it."""
    old = os.umask(0o027)
    try:

        def refused(mask):
            raise AssertionError("os.umask called while writing a result")

        monkeypatch.setattr(os, "umask", refused)
        written = write_atomic(tmp_path / "result.csv", b"a,b\n")
        with atomic_directory(tmp_path / "set") as staging:
            (staging / "x").write_text("x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert os.stat(written).st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "set").st_mode & 0o777 == 0o750
