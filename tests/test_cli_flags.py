"""Every command behaves the same way (issue 24): the version, help texts, flag names."""

from __future__ import annotations

import pytest

from mobilenet_v2 import __version__
from mobilenet_v2.cli import main


def test_version_prints_the_program_and_its_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mobilenet-v2 {__version__}\n"
