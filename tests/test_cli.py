"""The programs end to end: `mobilenet-v2 classify` and the seed's `tf_inference.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_TFLITE, IMAGES, ROOT, SAMPLE

from mobilenet_v2.cli import main

pytestmark = pytest.mark.shared  # all tests here but one read ../shared: simpler to mark all

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


@pytest.mark.integration  # end to end, in fresh processes
def test_tf_inference_prints_the_seeds_top5_and_nothing_else():
    result = run(sys.executable, "tf_inference.py", "-i", str(IMAGES / "grace_hopper.bmp"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == GRACE_HOPPER_TOP5
    assert result.stderr == ""  # no TensorFlow start-up banners


@pytest.mark.integration  # end to end, in fresh processes
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


@pytest.mark.integration  # end to end, in fresh processes
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


def test_python_dash_m_runs_the_same_command():
    """`python -m mobilenet_v2.cli` is `mobilenet-v2` (as it was before the CLI became a
    package): the same output for the same arguments."""
    args = ("classify", str(IMAGES / "parrot.jpg"), "--model", str(FIXTURE_TFLITE), "--top", "1")
    as_module = run(sys.executable, "-m", "mobilenet_v2.cli", *args)
    assert as_module.returncode == 0, as_module.stderr
    assert as_module.stdout == run(COMMAND, *args).stdout
    assert as_module.stdout.startswith("n01818515 macaw ")


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


@pytest.mark.integration  # end to end, in fresh processes
def test_corrupt_weights_subprocess_has_no_traceback(tmp_path):
    weights = tmp_path / "cut.tflite"
    weights.write_bytes(FIXTURE_TFLITE.read_bytes()[:100_000])
    result = run(COMMAND, "classify", str(IMAGES / "cat.bmp"), "--weights", str(weights))
    assert result.returncode == 1
    assert result.stderr.startswith(f"mobilenet-v2: error: {weights}: corrupt or truncated")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


# --- Flags and inputs that cannot work are refused in one line -------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input-std", "0"], "argument --input-std: must be a positive number that float32"),
        (["--input-std", "-1"], "argument --input-std: must be a positive number that float32"),
        (["--input-std", "1e-50"], "float32 can divide by, got 1e-50"),  # 0 in float32
        (["--input-std", "nan"], "argument --input-std: must be a finite number, got nan"),
        (["--input-mean", "nan"], "argument --input-mean: must be a finite number, got nan"),
        (["--input-mean", "-3"], "argument --input-mean: must be a pixel value in [0, 255]"),
    ],
)
def test_a_normalization_that_cannot_map_pixels_is_refused(capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE), *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("mobilenet-v2 classify: error: ") and message in err


def test_load_image_refuses_a_zero_std():
    from mobilenet_v2 import load_image

    with pytest.raises(ValueError, match="std must be a positive number"):
        load_image(IMAGES / "cat.bmp", std=0.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "CAT", "--model", "FIX", "--alpha", "0.5"], "--alpha sets the TF model"),
        (["classify", "CAT", "--model", "FIX", "--size", "96"], "--size sets the TF model"),
        (["classify", "CAT", "--model", "FIX", "--weights", "FIX"], "not both"),
        (["classify", "CAT", "--weights", "FIX", "--num-threads", "2"], "applies to LiteRT"),
        (["classify", "CAT", "--weights", "FIX", "--no-xnnpack"], "--no-xnnpack applies to"),
        (["evaluate", "DIR", "--model", "FIX", "--alpha", "0.5"], "--alpha sets the TF model"),
        (["dump", "CAT", "--output", "OUT", "--model", "FIX", "--size", "96"], "--size sets"),
        (["dump", "CAT", "--output", "OUT", "--kernels", "optimized"], "chooses LiteRT's"),
        (["inspect", "FIX", "--alpha", "0.5"], "--alpha sets the TF model"),
        (["benchmark", "FIX", "--size", "96"], "--size sets the TF model"),
        (["benchmark", "--weights", "FIX", "--no-xnnpack"], "applies to .tflite models"),
        (
            ["convert", "--output", "OUT", "--quantize", "none", "--seed", "0"],
            "--seed applies to --quantize int8",  # 0 is a value the user typed, not unset
        ),
        (
            ["convert", "--output", "OUT", "--quantize", "float16", "--io-type", "uint8"],
            "--io-type uint8 needs --quantize int8",
        ),
        (["evaluate", "DIR", "--model", "FIX", "--seed", "1"], "--seed draws the --limit sample"),
        (
            ["convert", "--output", "OUT", "--quantize", "float16", "--calibration-size", "8"],
            "--calibration-size applies to --quantize int8",
        ),
        (
            ["convert", "--output", "OUT", "--quantize", "float16", "--per-tensor"],
            "--per-tensor applies to --quantize int8",
        ),
        (
            ["convert", "--output", "OUT", "--quantize", "float16", "--equalize"],
            "--equalize prepares the model for --quantize int8",
        ),
        (
            ["convert", "--output", "OUT", "--quantize", "none", "--bias-correction"],
            "--bias-correction prepares the model for --quantize int8",
        ),
        (
            ["convert", "--output", "OUT", "--quantize", "dynamic", "--relu"],
            "--relu prepares the model for --quantize int8",
        ),
        (["convert", "--output", "OUT", "--relu"], "--relu prepares --equalize"),
        (
            ["dump", "CAT", "--output", "OUT", "--weights", "FIX", "--absorb-bias"],
            "--absorb-bias applies to --quantize (convert the TF model first)",
        ),
        (
            ["convert", "--output", "OUT", "--weights", "FIX", "--init-seed", "1"],
            "--init-seed seeds random weights: it goes with --weights none",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--weights", "FIX", "--init-seed", "0"],
            "--init-seed seeds random weights: it goes with --weights none",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--model", "FIX", "--init-seed", "0"],
            "--init-seed seeds random weights: it goes with --weights none",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--model", "FIX", "--quantize", "int8"],
            "--quantize converts the TF model (--weights); --model is converted",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--weights", "none", "--calibration-size", "32"],
            "--calibration-size applies to --quantize (convert the TF model first)",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--quantize", "none", "--seed", "1"],
            "--seed applies to --quantize int8 and int16x8 (calibration)",
        ),
        (
            ["dump", "CAT", "--output", "OUT", "--quantize", "float16", "--engine", "reference"],
            "--interpreter reference runs integer models: --quantize int8",
        ),
    ],
)
def test_flags_the_chosen_engine_would_ignore_are_refused(tmp_path, capsys, argv, message):
    names = {
        "CAT": str(IMAGES / "cat.bmp"),
        "FIX": str(FIXTURE_TFLITE),
        "DIR": str(IMAGES),
        "OUT": str(tmp_path / "out"),
    }
    assert main([names.get(a, a) for a in argv]) == 2  # a usage error, as argparse's are
    err = capsys.readouterr().err
    assert err.startswith(f"mobilenet-v2 {argv[0]}: error: ") and err.endswith(" (see --help)\n")
    assert message in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration  # converts a model
def test_weights_none_is_random_initialization_everywhere(tmp_path, capsys, monkeypatch):
    assert main(["classify", str(IMAGES / "cat.bmp"), "--weights", "none", "--top", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    evaluate = ["evaluate", str(tmp_path), "--weights", "NONE", "--json"]
    (tmp_path / "n01818515_parrot.jpg").symlink_to(IMAGES / "parrot.jpg")
    assert main(evaluate) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["model"] == "TF float32 (random init)"
    out = tmp_path / "random.tflite"
    convert = ["convert", "--output", str(out), "--weights", "none", "--quantize", "none"]
    assert main([*convert, "--size", "96"]) == 0
    capsys.readouterr()
    from mobilenet_v2.lite.record import read_metadata

    record = read_metadata(out.read_bytes())  # convert seeds random weights (0 by default)
    assert record["weights"] == "none (random initialization, seed 0)"
    assert record["init_seed"] == 0
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", "None")  # the variable takes the same word
    assert main(["classify", str(IMAGES / "cat.bmp"), "--top", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_a_file_named_tflite_that_is_not_one_is_called_invalid(tmp_path, capsys):
    fake = tmp_path / "fake.tflite"
    fake.write_text("this is not a model")
    assert main(["classify", str(IMAGES / "cat.bmp"), "--weights", str(fake)]) == 1
    expected = f"{fake}: not a valid TFLite model (no TFL3 flatbuffer identifier)"
    assert capsys.readouterr().err == f"mobilenet-v2: error: {expected}\n"


def test_evaluate_of_a_missing_directory_says_not_found(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(["evaluate", str(missing), "--model", str(FIXTURE_TFLITE)]) == 1
    assert capsys.readouterr().err == f"mobilenet-v2: error: {missing}: directory not found\n"


def test_a_closed_pipe_ends_the_run_quietly_with_sigpipes_status():
    """`mobilenet-v2 classify DIR | head -1`: the reader has gone; no error, no traceback,
    and the status a program killed by SIGPIPE reports (128 + 13), as `yes | head` does."""
    process = subprocess.Popen(
        [COMMAND, "classify", str(IMAGES), "--model", str(FIXTURE_TFLITE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    process.stdout.close()  # the reader goes away before the first result is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and stderr == ""


@pytest.mark.integration  # end to end, in fresh processes
def test_seed_scripts_name_themselves_and_their_own_flags(tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for name in ("parrot.jpg", "cat.bmp"):
        (few / name).symlink_to(IMAGES / name)
    result = run(
        sys.executable,
        "tflite_converter.py",
        "--save_to",
        str(tmp_path / "out"),
        "--calibration_dir",
        str(few),
    )
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("tflite_converter.py: error: ")
    assert "--calibration_size" in result.stderr and "--force" in result.stderr
    assert "--calibration-size" not in result.stderr
    assert not (tmp_path / "out").exists()  # the directory it would have made is gone again


def test_seed_converter_download_hint_names_its_own_flag(tmp_path, monkeypatch, capsys):
    import runpy

    from mobilenet_v2.tf import convert

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(convert, "IMAGENETTE_URL", "http://127.0.0.1:9/imagenette2-160.tgz")
    monkeypatch.setattr(sys, "argv", ["tflite_converter.py", "--save_to", str(tmp_path / "m")])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "tflite_converter.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("tflite_converter.py: error: ")
    assert "--calibration_dir" in err and "--calibration-dir" not in err


@pytest.mark.parametrize("script", ["tflite_converter.py", "tflite_inference.py"])
def test_seed_scripts_check_save_to_before_any_work(tmp_path, script):
    args = ["--save_to", str(tmp_path / "missing" / "x")]
    if script == "tflite_inference.py":
        args += ["-i", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
    result = run(sys.executable, script, *args)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr.startswith(f"{script}: error: ") and "does not exist" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("script", "flag", "value"),
    [
        ("tf_inference.py", "--input_std", "1e-50"),  # float32 cannot divide by it
        ("tflite_inference.py", "--input_std", "1e-50"),
        ("tflite_inference.py", "--num_threads", "1000"),  # more than LiteRT can start
    ],
)
def test_seed_scripts_refuse_a_value_the_command_would_in_their_own_spelling(script, flag, value):
    args = ["-i", str(IMAGES / "cat.bmp"), flag, value]
    if script == "tflite_inference.py":
        args += ["--model", str(FIXTURE_TFLITE)]
    result = run(sys.executable, script, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"{script}: error: argument {flag}: "), result.stderr
    assert len(result.stderr.splitlines()) == 1


# --- Unexpected errors are bugs: a short line, the traceback one flag away (issue 11) ---------


def test_an_unexpected_exception_is_not_dressed_up_as_a_user_error(capsys, monkeypatch):
    from mobilenet_v2.inference import classifier

    def broken(*args, **kwargs):
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(classifier, "preprocessing_for", broken)
    monkeypatch.setattr("mobilenet_v2.inference.runner.preprocessing_for", broken)
    argv = ["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
    assert main(argv) == 70  # EX_SOFTWARE
    err = capsys.readouterr().err
    assert err == (
        "mobilenet-v2: internal error: ValueError: internal invariant broken (a bug: run with "
        "--debug for the traceback)\n"
    )
    assert main([*argv, "--debug"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "internal invariant" in err


def test_keras_argument_errors_stay_one_line_user_errors(capsys):
    argv = ["classify", str(IMAGES / "cat.bmp"), "--weights", str(FIXTURE_TFLITE), "--size", "20"]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "mobilenet-v2: error: Input size must be at least 32x32; Received: "
        "input_shape=(20, 20, 3)\n"
    )


def test_a_tflite_model_with_invalid_recorded_preprocessing_is_refused(tmp_path, capsys):
    from mobilenet_v2.lite.record import embed_metadata

    bad = tmp_path / "bad_prep.tflite"
    record = {"preprocessing": {"mean": 128.0, "std": 0.0}}
    bad.write_bytes(embed_metadata(FIXTURE_TFLITE.read_bytes(), record))
    assert main(["classify", str(IMAGES / "cat.bmp"), "--model", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mobilenet-v2: error: {bad}: invalid recorded preprocessing (input std")


@pytest.mark.integration  # end to end, in fresh processes
def test_without_tensorflow_litert_commands_run_and_tf_commands_name_the_extra(tmp_path):
    """A LiteRT-only install (`pip install mobilenet-v2`, no `[tf]`), simulated by making
    `import tensorflow` fail; .ci/run also checks a real one, in its own environment."""
    parrot, fixture = str(IMAGES / "parrot.jpg"), str(FIXTURE_TFLITE)
    code = "\n".join(
        [
            "import sys",
            "sys.modules['tensorflow'] = sys.modules['keras'] = None  # import fails",
            "from mobilenet_v2.cli import main",
            f"assert main(['classify', {parrot!r}, '--model', {fixture!r}, '--top', '1']) == 0",
            f"assert main(['dump', {parrot!r}, '--model', {fixture!r}, '--output', "
            f"{str(tmp_path / 'dump')!r}]) == 0",
            f"sys.exit(main(['convert', '--output', {str(tmp_path / 'm.tflite')!r}]))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("n01818515 macaw ")
    assert result.stderr == (
        "mobilenet-v2: error: this needs TensorFlow and Keras, which are not installed "
        "(tensorflow); install them with: pip install 'mobilenet-v2[tf]'\n"
    )
    assert (tmp_path / "dump" / "manifest.json").is_file() and not (tmp_path / "m.tflite").exists()


def test_a_negative_seed_is_refused_as_a_flag_value(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(IMAGES), "--limit", "2", "--seed", "-1"])
    assert exit_.value.code == 2 and "argument --seed: must be an integer >= 0" in (
        capsys.readouterr().err
    )


def test_a_model_whose_record_is_not_an_object_is_a_file_error_for_every_engine(tmp_path, capsys):
    from mobilenet_v2.lite.record import embed_metadata

    bad = tmp_path / "list_record.tflite"
    bad.write_bytes(embed_metadata(FIXTURE_TFLITE.read_bytes(), ["not", "an", "object"]))
    image = str(IMAGES / "cat.bmp")
    for argv in (
        ["classify", image, "--model", str(bad)],
        ["trace", str(bad), image, "--tensor", "Conv1_relu", "--index", "0,0,0,0"],
    ):
        assert main(argv) == 1
        assert capsys.readouterr().err == (
            f"mobilenet-v2: error: {bad}: invalid recorded preprocessing (not a JSON object)\n"
        )


def test_an_output_that_is_not_a_regular_file_is_never_replaced(tmp_path, capsys):
    """A FIFO here; as root, /dev/full would otherwise be renamed over."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert main(["inspect", str(FIXTURE_TFLITE), "--csv", str(fifo)]) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"{fifo}: output path exists and is not a regular file\n")
    assert fifo.is_fifo()


def test_the_seed_scripts_take_the_debug_flag_their_hint_names():
    result = run(
        sys.executable,
        "tflite_inference.py",
        "-i",
        str(IMAGES / "cat.bmp"),
        "--model",
        str(FIXTURE_TFLITE),
        "--debug",
    )
    # The fixture's own label file names the class (README, "Converted models carry ...").
    assert result.returncode == 0 and result.stdout.startswith("n02124075 Egyptian cat")


def offline_with_two_classes(tmp_path, monkeypatch) -> None:
    """tmp_path/data: two classes of three sample images; no Keras cache, no network."""
    from mobilenet_v2.tf import weights

    sample = sorted(SAMPLE.iterdir())
    for label, images in (("a", sample[:3]), ("b", sample[3:6])):
        (tmp_path / "data" / label).mkdir(parents=True)
        for image in images:
            (tmp_path / "data" / label / image.name).symlink_to(image.resolve())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(weights, "BASE_WEIGHT_PATH", "http://127.0.0.1:9/")


def test_train_offline_names_only_the_weights_training_takes(tmp_path, monkeypatch):
    """Offline, `train`'s hint lists what training starts from (a .tflite or a no-top file),
    in the caller's terms: `weights=PATH` from Python, no command-line flag or variable."""
    from mobilenet_v2.base.errors import DownloadError
    from mobilenet_v2.tf.train import train

    offline_with_two_classes(tmp_path, monkeypatch)
    with pytest.raises(DownloadError) as failure:
        train(tmp_path / "data", size=96, epochs=1, fine_tune_epochs=0)
    message = str(failure.value)
    assert "_no_top.h5: download failed" in message
    assert "pass weights=PATH (a MobileNetV2 .tflite, or a no-top .h5" in message
    assert "--weights" not in message and "MOBILENET_V2_WEIGHTS" not in message


def test_train_offline_on_the_command_line_names_its_flag(tmp_path, monkeypatch, capsys):
    """The same hint from `mobilenet-v2 train`: the flag and the variable, not Python's."""
    offline_with_two_classes(tmp_path, monkeypatch)
    argv = ["train", str(tmp_path / "data"), "--output", str(tmp_path / "m.keras")]
    assert main([*argv, "--size", "96", "--epochs", "1", "--fine-tune-epochs", "0"]) == 1
    err = capsys.readouterr().err
    assert "pass --weights PATH (a MobileNetV2 .tflite, or a no-top .h5" in err
    assert "weights=PATH" not in err and len(err.strip().splitlines()) == 1
