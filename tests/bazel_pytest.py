"""`bazel test` entry point: run the test files given as arguments with pytest, from the
runfiles tree, with pytest's temporary files under Bazel's per-test TEST_TMPDIR."""

import os
import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1] if "TEST_SRCDIR" not in os.environ else Path.cwd()
    tmp = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / "pytest"
    args = [*sys.argv[1:], "-c", str(root / "pyproject.toml"), "--rootdir", str(root)]
    args += ["-p", "no:cacheprovider", f"--basetemp={tmp}", "-n", "0"]  # one file: one process
    sys.exit(pytest.main(args))
