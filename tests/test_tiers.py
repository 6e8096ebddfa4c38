"""The test tiers select what they say: the quick tier (`-m "not integration and not slow"`)
collects no test that converts a model (tests/conftest.py marks them before `-m` deselects)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import CONVERTING_FIXTURES, ROOT

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


def test_the_quick_tier_converts_no_model():
    used = fixtures_per_test(QUICK)
    assert "tmp_path" in used  # the listing was read (an empty one would pass vacuously)
    assert not set(used) & CONVERTING_FIXTURES, sorted(set(used) & CONVERTING_FIXTURES)
