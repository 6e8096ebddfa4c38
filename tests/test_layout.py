"""The package's rooms keep to what their names say they may import (see mobilenet_v2/__init__).

Two checks: importing every module outside `tf/` in a fresh interpreter loads neither
TensorFlow nor Keras; and, read from the source (AST: `import`, `from ... import` and
`importlib.import_module` with a literal name; relative and computed imports are refused),
`lite/` and `reference/` never import the TensorFlow room, TensorFlow or Keras, not even
inside a function, while the other rooms import them only inside functions that handle a
Keras model. Needs no ../shared data.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenet_v2"
# The documented `mobilenet_v2.layers`, `.weights` and `.MobileNetV2` are the TensorFlow
# room's under their old names: importing them loads TensorFlow just the same.
ALIASES_OF_TF = {"mobilenet_v2.layers", "mobilenet_v2.weights"}
TF_NAMES = ("tensorflow", "keras", "h5py", "mobilenet_v2.tf", "mobilenet_v2.MobileNetV2")
TF_NAMES += tuple(ALIASES_OF_TF)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(room: str | None = None) -> list[Path]:
    """The .py files of one room (a subfolder), or of the core (the top-level files)."""
    found = sorted((PACKAGE if room is None else PACKAGE / room).glob("*.py"))
    assert found, f"no modules in {room or 'the core'}: a room was renamed?"
    return found


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, runs at import time?) for every import in the file: True unless the
    import sits inside a function (a module-level `try:` or `if` still runs at import)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path.name}: relative import (the check reads names)"
                module = child.module or ""
                names = [module] + [f"{module}.{alias.name}" for alias in child.names]
                found.extend((name, not in_function) for name in names)
            elif isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module"):
                assert isinstance(child.args[0], ast.Constant), f"{path.name}: computed import"
                found.append((child.args[0].value, not in_function))
            functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            visit(child, in_function or isinstance(child, functions))

    visit(tree, False)
    return found


def touches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


NO_TF_ROOMS = ["lite", "reference"]


@pytest.mark.parametrize("room", NO_TF_ROOMS)
def test_lite_and_reference_never_import_tensorflow(room):
    for path in modules(room):
        bad = [name for name, _ in imports(path) if touches(name, TF_NAMES)]
        assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("room", NO_TF_ROOMS)
def test_lite_and_reference_stay_below_the_tools(room):
    """They are what the tools are built on: never the tools, the CLI, or the TF room."""
    above = ("mobilenet_v2.analysis", "mobilenet_v2.cli", "mobilenet_v2.classifier")
    for path in modules(room):
        bad = [name for name, _ in imports(path) if touches(name, above)]
        assert not bad, f"{path.name} imports {bad}"


def test_the_reference_runs_without_the_litert_interpreter():
    """NumPy only: LiteRT's pure-Python schema module is allowed, its interpreter is not."""
    forbidden = ("ai_edge_litert.interpreter", "mobilenet_v2.lite.interpreter")
    for path in modules("reference"):
        bad = [name for name, _ in imports(path) if touches(name, forbidden)]
        assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("room", [None, "analysis", "cli", "distributed"])
def test_other_rooms_import_tensorflow_only_inside_functions(room):
    """`mobilenet_v2/__init__` loads `MobileNetV2` through importlib in `__getattr__`, a
    function: on first use, not at import."""
    for path in modules(room):
        if module_name(path) in ALIASES_OF_TF:
            continue
        bad = [name for name, top in imports(path) if top and touches(name, TF_NAMES)]
        assert not bad, f"{path.name} imports {bad} at module level"


def test_the_core_imports_no_room_above_it():
    """The core (top-level modules) may use `lite` (the classifier's engine switch) but not
    the tools or the CLI; the documented aliases are the exception they exist to be."""
    above = ("mobilenet_v2.analysis", "mobilenet_v2.cli", "mobilenet_v2.distributed")
    for path in modules():
        if module_name(path) in {"mobilenet_v2.dump", *ALIASES_OF_TF}:
            continue
        bad = [name for name, _ in imports(path) if touches(name, above)]
        assert not bad, f"{path.name} imports {bad}"


def test_every_module_outside_tf_imports_without_tensorflow_or_ray():
    """Ray, too, loads only when `--engine ray` runs: a core install imports everything."""
    names = [
        module_name(path)
        for room in (None, "lite", "reference", "analysis", "cli", "distributed")
        for path in modules(room)
        if module_name(path) not in ALIASES_OF_TF
    ]
    assert len(names) > 25  # all rooms found (a wrong PACKAGE path would pass vacuously)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('tensorflow', 'keras', 'ray')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(loaded[:5])\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_documented_imports_keep_working():
    """The README's imports, in a fresh interpreter; TensorFlow only for the TF names."""
    code = (
        "import sys\n"
        "from mobilenet_v2 import decode_predictions, load_image\n"
        "from mobilenet_v2.dump import dequantize, read_tensor\n"
        "from mobilenet_v2.reference import ReferenceInterpreter\n"
        "assert 'tensorflow' not in sys.modules\n"
        "from mobilenet_v2 import MobileNetV2, layers\n"
        "from mobilenet_v2.layers import Conv2D\n"
        "from mobilenet_v2.weights import recalibrate_batch_norm\n"
        "import mobilenet_v2.weights, mobilenet_v2.tf.weights, mobilenet_v2.tf.layers\n"
        "assert mobilenet_v2.weights is mobilenet_v2.tf.weights\n"
        "assert layers is mobilenet_v2.tf.layers and Conv2D is layers.Conv2D\n"
        "assert MobileNetV2 and recalibrate_batch_norm\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
