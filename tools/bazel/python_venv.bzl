"""The Python that the README installs (`.venv`), as Bazel's Python toolchain, plus the
absolute paths that tests need. A local repository rule: nothing is downloaded."""

def _python_venv_impl(ctx):
    root = ctx.path(Label("//:WORKSPACE")).dirname
    python = root.get_child(".venv").get_child("bin").get_child("python")
    if not python.exists:
        fail("%s not found: run the README's install command first " % python +
             "(python3 -m venv .venv && .venv/bin/pip install -e '.[dev]')")
    shared = ctx.os.environ.get("MOBILENET_V2_SHARED", str(root.dirname) + "/shared")
    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "venv_python3",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "venv_runtime_pair",
    py3_runtime = ":venv_python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":venv_runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))
    ctx.file("defs.bzl", 'PYTHON = "{}"\nSHARED = "{}"\nWORKSPACE_ROOT = "{}"\n'.format(
        python,
        shared,
        root,
    ))

python_venv = repository_rule(
    implementation = _python_venv_impl,
    environ = ["MOBILENET_V2_SHARED"],
    local = True,
)
