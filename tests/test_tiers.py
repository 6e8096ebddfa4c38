"""The test tiers select what they say: the quick tier (`-m "not integration and not slow"`)
collects no test that converts a model or starts Ray (tests/conftest.py marks them before
`-m` deselects, and fails an unmarked test that reaches such a fixture at run time)."""

from __future__ import annotations

import re
import subprocess
import sys

import conftest
import pytest
from conftest import INTEGRATION_FIXTURES, ROOT

QUICK = "not integration and not slow"


def fixtures_per_test(marks: str) -> list[str]:
    """Every fixture name each collected test uses, as pytest's `--fixtures-per-test` lists
    them (`name -- where`), for the tests that `-m marks` selects."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # a listing: no workers to start
            "--fixtures-per-test",
            "-m",
            marks,
            "tests",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return re.findall(r"^(\w+) -- ", run.stdout, re.MULTILINE)


def test_the_quick_tier_converts_no_model_and_starts_no_ray():
    used = fixtures_per_test(QUICK)
    assert "tmp_path" in used  # the listing was read (an empty one would pass vacuously)
    assert not set(used) & INTEGRATION_FIXTURES, sorted(set(used) & INTEGRATION_FIXTURES)


class _Test:
    """A stand-in for the running test item, with or without the integration mark."""

    def __init__(self, marked: bool) -> None:
        self.nodeid, self.marked = "tests/test_x.py::test_x", marked

    def get_closest_marker(self, name: str):
        return name if self.marked and name == "integration" else None


def test_an_unmarked_test_that_reaches_a_converting_fixture_fails(monkeypatch):
    """`request.getfixturevalue("int8_model")` hides the fixture from collection: the
    fixture itself refuses to convert for a test without the integration mark."""
    monkeypatch.setattr(conftest, "_running", [_Test(marked=False)])
    with pytest.raises(pytest.fail.Exception, match=r"test_x converts a model: mark it `integ"):
        conftest.require_integration("converts a model")
    monkeypatch.setattr(conftest, "_running", [_Test(marked=True)])
    conftest.require_integration("converts a model")  # marked: no complaint
