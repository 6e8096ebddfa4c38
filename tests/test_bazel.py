"""The Bazel files stay in step with the sources, and stay offline.

These tests only read BUILD and WORKSPACE as text: they catch a file or program that falls
out of the build, not a build that fails. The real check is the Bazel run in .ci/run, which
builds //..., runs //:tflite_inference end to end and runs test targets with Debian's
bazel-bootstrap."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

DOWNLOADS = ("http_archive(", "http_file(", "git_repository(", "ctx.download", "pip_install(")
SEED_PROGRAMS = ["tf_inference", "tflite_converter", "tflite_inference"]


def build_list(name: str) -> list[str]:
    text = (ROOT / "BUILD").read_text()
    match = re.search(rf"^{name} = (\[.*?\])", text, re.S | re.M)
    assert match, f"BUILD defines no {name}"
    return ast.literal_eval(match.group(1))


def test_every_seed_program_has_a_py_binary():
    assert build_list("PROGRAMS") == SEED_PROGRAMS
    for program in SEED_PROGRAMS:
        assert (ROOT / f"{program}.py").is_file()
        # `bazel run` starts in the runfiles: the programs go back to the caller's directory.
        assert "BUILD_WORKING_DIRECTORY" in (ROOT / f"{program}.py").read_text()


def test_library_and_tests_are_globbed_so_they_cannot_fall_behind():
    text = (ROOT / "BUILD").read_text()
    assert 'glob(["src/mobilenet_v2/**/*.py"])' in text
    assert 'glob(["src/mobilenet_v2/base/data/*"])' in text
    assert 'TEST_FILES = glob(["tests/test_*.py"])' in text
    assert list((ROOT / "src" / "mobilenet_v2" / "base" / "data").iterdir())
    assert (ROOT / "tests" / "bazel_pytest.py").is_file()


def test_nothing_is_downloaded():
    for path in [ROOT / "WORKSPACE", *ROOT.glob("tools/bazel/**/*.bzl"), ROOT / "BUILD"]:
        text = path.read_text()
        for call in DOWNLOADS:
            assert call not in text, (path, call)
    workspace = (ROOT / "WORKSPACE").read_text()
    for repo in ("rules_cc", "rules_java", "remote_coverage_tools"):
        assert f'name = "{repo}"' in workspace
        assert (ROOT / "tools" / "bazel" / repo / "WORKSPACE").is_file()
    assert 'register_toolchains("@python_venv//:toolchain")' in workspace


def test_stand_in_rules_reexport_the_native_rules():
    cc = (ROOT / "tools" / "bazel" / "rules_cc" / "cc" / "defs.bzl").read_text()
    java = (ROOT / "tools" / "bazel" / "rules_java" / "java" / "defs.bzl").read_text()
    assert "cc_library = native.cc_library" in cc
    assert "java_library = native.java_library" in java


def test_the_toolchain_is_the_readme_venv():
    rule = (ROOT / "tools" / "bazel" / "python_venv.bzl").read_text()
    assert '.get_child(".venv").get_child("bin").get_child("python")' in rule
    assert "interpreter_path" in rule
    ignored = (ROOT / ".bazelignore").read_text().split()
    assert ".venv" in ignored  # TensorFlow's wheel ships BUILD files of its own
