"""Every command behaves the same way (issue 24): the version, help texts, flag names."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from conftest import FIXTURE_TFLITE, IMAGES

from mobilenet_v2 import __version__
from mobilenet_v2.cli import build_parser, main


def test_version_prints_the_program_and_its_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mobilenet-v2 {__version__}\n"


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, from the top parser built as `mobilenet_v2.cli` builds it."""
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def _states_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    text = parser._get_formatter()._expand_help(action)
    default = action.default
    spellings = {str(default), f"{default:g}" if isinstance(default, float) else str(default)}
    return "default" in text or any(f"({s}" in text or f" {s})" in text for s in spellings)


def test_every_flag_of_every_command_has_help_stating_its_default():
    missing, silent = [], []
    for name, parser in subcommand_parsers().items():
        for action in parser._actions:
            if action.option_strings[:1] == ["-h"] or action.help == argparse.SUPPRESS:
                continue
            flag = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(flag)
            elif action.default not in (None, False) and not _states_default(parser, action):
                silent.append(flag)
    assert not missing, f"flags without help: {missing}"
    assert not silent, f"help that does not state the default: {silent}"


def visible_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        flag: action
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    }


def test_a_flag_name_means_one_thing_in_every_command():
    """--engine is where the work runs (default|ray), --kernels LiteRT's kernels, --replace
    replaces an earlier output, --force calibrates on fewer images: the same in every command
    that shows them."""
    seen: dict[str, dict[str, tuple]] = {}
    for name, parser in subcommand_parsers().items():
        for flag, action in visible_flags(parser).items():
            seen.setdefault(flag, {})[name] = tuple(action.choices or ())
    assert set(seen["--engine"].values()) == {("default", "ray")}, seen["--engine"]
    assert set(seen["--kernels"].values()) == {("reference", "optimized")}
    assert set(seen["--interpreter"]) == {"dump"}
    assert set(seen["--replace"]) == {"dump", "export"}
    assert set(seen["--force"]) == {"convert", "dump"}  # dump --quantize converts as convert


def test_old_spellings_stay_as_hidden_aliases(capsys):
    parsers = subcommand_parsers()
    dump = parsers["dump"].parse_args(["IMG", "--output", "O", "--engine", "reference"])
    assert dump.interpreter == "reference"
    assert parsers["dump"].parse_args(["IMG", "--output", "O"]).interpreter == "litert"
    export = parsers["export"].parse_args(["--saved-model", "D", "--force"])
    assert export.force is True and export.replace is False  # run() takes either
    assert "--force" not in parsers["export"].format_help()
    assert "--engine" not in parsers["dump"].format_help()


@pytest.mark.parametrize(
    ("command", "seeds"),
    [
        ("convert", "--calibration-size images"),
        ("dump", "--calibration-size images"),
        ("evaluate", "the --limit sample"),
        ("compare", "the --limit sample"),
        ("train", "split, shuffle, augmentation and head initialization"),
    ],
)
def test_seed_is_the_seed_of_the_commands_random_choices_and_says_which(command, seeds):
    action = visible_flags(subcommand_parsers()[command])["--seed"]
    help_text = " ".join(action.help.split())
    assert help_text.startswith("seeds this command's random choice") and seeds in help_text


@pytest.mark.parametrize("flag", ["--replace", "--force"])
def test_export_c_array_refuses_replace_in_the_spelling_typed(flag, tmp_path, capsys):
    argv = ["export", "--c-array", str(tmp_path / "m.cc"), "--model", "m.tflite", flag]
    assert main(argv) == 2
    assert f"{flag} applies to --saved-model" in capsys.readouterr().err


def test_dump_refusals_name_the_interpreter_flag(capsys):
    argv = ["dump", "CAT", "--output", "OUT", "--quantize", "float16", "--engine", "reference"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--interpreter reference runs integer models: --quantize int8" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["benchmark"], "nothing to measure: give MODEL.tflite files, or --weights W"),
        (["benchmark", "--runs", "1"], "nothing to measure"),
        (["benchmark", "m.tflite", "./m.tflite"], "the same model is given twice: ./m.tflite"),
    ],
)
def test_benchmark_refuses_nothing_to_measure_and_one_model_twice(argv, message, capsys):
    """No model and no --weights used to download ImageNet weights and fail offline; one file
    twice is refused as evaluate refuses it: usage errors, before any work."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.endswith("(see --help)\n")


@pytest.mark.shared  # measures the fixture's weights
def test_benchmark_without_flags_measures_the_weights_variables_file(monkeypatch, capsys):
    """$MOBILENET_V2_WEIGHTS names something to measure: no usage error, one TF row."""
    monkeypatch.setenv("MOBILENET_V2_WEIGHTS", str(FIXTURE_TFLITE))
    assert main(["benchmark", "--size", "96", "--runs", "1", "--warmup", "0", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 1 and str(FIXTURE_TFLITE.name) in json.dumps(results[0])


@pytest.mark.shared  # reads ../shared's images
@pytest.mark.parametrize(
    ("lone", "message"),
    [
        (b"not an image", "no readable image for class 'b'"),
        (None, "one image; a validation split needs two or more per class"),
    ],
)
def test_train_says_no_readable_image_when_a_class_has_only_an_unreadable_one(
    tmp_path, capsys, lone, message
):
    good = (IMAGES / "cat.bmp").read_bytes()
    for name in ("a/1.bmp", "a/2.bmp", "b/only.bmp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(good if lone is None or name[0] == "a" else lone)
    argv = ["train", str(tmp_path), "--output", str(tmp_path / "m.keras"), "--weights", "none"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'b'}: {message}" in err


def _commands_on(model: str, tmp: Path) -> dict[str, list[str]]:
    image = str(IMAGES / "cat.bmp")
    return {
        "classify": ["classify", image, "--model", model],
        "classify --weights": ["classify", image, "--weights", model],
        "evaluate": ["evaluate", str(IMAGES), "--model", model],
        "inspect": ["inspect", model],
        "trace": ["trace", model, image, "--tensor", "x", "--index", "0"],
        "dump": ["dump", image, "--model", model, "--output", str(tmp / "litert")],
        "dump --interpreter reference": [
            *("dump", image, "--model", model, "--output", str(tmp / "numpy")),
            *("--interpreter", "reference"),
        ],
        "export --c-array": ["export", "--c-array", str(tmp / "m.cc"), "--model", model],
        "benchmark": ["benchmark", model, "--runs", "1", "--warmup", "0"],
    }


@pytest.mark.shared  # cuts the real model of ../shared
@pytest.mark.parametrize("keep", [100_000, 4096])
def test_every_command_gives_one_message_for_a_truncated_model(keep, tmp_path, capsys):
    """Not LiteRT's words for some commands and Python's struct internals ("unpack_from
    requires a buffer of at least ... bytes") for others: the same line everywhere."""
    model = tmp_path / "cut.tflite"
    model.write_bytes(FIXTURE_TFLITE.read_bytes()[:keep])
    expected = f"mobilenet-v2: error: {model}: corrupt or truncated TFLite model\n"
    said = {}
    for name, argv in _commands_on(str(model), tmp_path).items():
        status = main(argv)
        said[name] = (status, capsys.readouterr().err)
    assert said == {name: (1, expected) for name in said}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tflite"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "x.jpg", "--top", "five"], "--top: must be an integer >= 1, got five"),
        (["convert", "--alpha", "wide"], "--alpha: must be a number, got wide"),
        (["benchmark", "m.tflite", "--runs", "1e3"], "--runs: must be an integer >= 1, got 1e3"),
        (["train", "d", "--validation-split", "x"], "--validation-split: must be a number, got x"),
    ],
)
def test_a_value_of_the_wrong_kind_is_named_in_words_not_by_a_function_name(argv, message, capsys):
    """argparse names a type that raises ValueError by its function ("invalid positive_int
    value"): every type says what it wants instead."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    expected = f"mobilenet-v2 {argv[0]}: error: argument {message} (see --help)\n"
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize(
    "flags, warns",
    [(["--per-tensor"], True), (["--per-tensor", "--equalize"], False), ([], False)],
    ids=["per-tensor", "equalized", "per-channel"],
)
def test_per_tensor_without_equalization_warns(flags, warns, capsys):
    """Per-tensor weights alone leave MobileNetV2 about 12 % top-1: said before the work."""
    from mobilenet_v2.cli.convert import conversion_options

    args = build_parser().parse_args(["convert", "--output", "m.tflite", *flags])
    args.prog = "mobilenet-v2"  # as `main` sets it
    options = conversion_options(args)
    assert options["steps"] == (["equalize"] if "--equalize" in flags else [])
    assert ("without --equalize" in capsys.readouterr().err) == warns
