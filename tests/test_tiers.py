"""The test tiers select what they say: the quick tier (`-m "not integration and not slow"`)
collects no test that converts a model or starts Ray (tests/conftest.py marks them before
`-m` deselects, and fails an unmarked test that reaches such a fixture at run time)."""

from __future__ import annotations

import os
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


def test_an_unmarked_test_that_reaches_a_converting_fixture_fails(request):
    """`request.getfixturevalue("int8_model")` hides the fixture from collection: the
    conversion itself refuses to run for a test without the integration mark (before it
    converts anything)."""
    with pytest.raises(pytest.fail.Exception, match=r"converts a model: mark it `integration`"):
        conftest.converted(request, "never.tflite", "--quantize", "none")


def test_in_ci_missing_shared_data_fails_the_run_on_the_workers_too(tmp_path):
    """An xdist worker cannot stop the run with a usage error: each test that needs the
    data fails with the reason, and the run's status says so."""
    env = {**os.environ, "CI": "1", "MOBILENET_V2_SHARED": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_labels.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert f"shared test data not found at {tmp_path}; set MOBILENET_V2_SHARED" in run.stdout
