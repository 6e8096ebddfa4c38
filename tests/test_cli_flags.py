"""Every command behaves the same way (issue 24): the version, help texts, flag names."""

from __future__ import annotations

import argparse

import pytest

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
