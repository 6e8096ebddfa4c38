"""The package's rooms keep to the ladder (the README's "Layout" table, mobilenet_v2/__init__).

Rooms, bottom first: base, lite, reference, tf, inference, analysis, golden, cli. Read from
the source (AST: `import`, `from ... import` and `importlib.import_module` with a literal name;
relative and computed imports are refused), a room imports only the rooms below it, even
inside a function; base, lite and reference never import TensorFlow or Keras; the rooms above
tf import them only inside functions that handle a Keras model. And importing every module
outside `tf/` in a fresh interpreter loads neither TensorFlow, Keras nor Ray. No two modules
import each other, through any chain and by any import. Needs no ../shared data.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenet_v2"
# The ladder, bottom first: a room imports only the rooms below it (and itself), never one
# above. The README's "Layout" table states the same order.
LADDER = ("base", "lite", "reference", "tf", "inference", "analysis", "golden", "cli")
TF_NAMES = ("tensorflow", "keras", "h5py", "mobilenet_v2.tf", "mobilenet_v2.MobileNetV2")
ROOT = "mobilenet_v2"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(room: str) -> list[Path]:
    """The .py files of one room (a subfolder)."""
    found = sorted((PACKAGE / room).glob("*.py"))
    assert found, f"no modules in {room}: a room was renamed?"
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


def assert_runs_in_a_fresh_interpreter(code: str) -> None:
    """`code` exits 0 in a new Python, where nothing this test process loaded is loaded."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def room_of(name: str) -> str | None:
    """The room a module name belongs to (None: the package itself, or outside it)."""
    parts = name.split(".")
    return parts[1] if parts[0] == ROOT and len(parts) > 1 and parts[1] in LADDER else None


def test_every_module_lives_in_a_room_of_the_ladder():
    """The package's top level holds only `__init__`: every module is in one of the rooms."""
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    rooms = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert not loose, f"modules outside the rooms: {loose}"
    assert rooms == sorted(LADDER), f"rooms {rooms} against the ladder {LADDER}"


@pytest.mark.parametrize("room", LADDER)
def test_imports_only_point_down_the_ladder(room):
    """Not even inside a function: an import of a room above, or of the package itself (whose
    `__init__` reaches the TF room), is an upward import."""
    allowed = LADDER[: LADDER.index(room) + 1]
    for path in modules(room):
        for name, _ in imports(path):
            if name == ROOT or (name.startswith(ROOT + ".") and room_of(name) is None):
                pytest.fail(f"{path.name} imports {name}: the package's top, not a room")
            target = room_of(name)
            assert target is None or target in allowed, f"{room}/{path.name} imports {name}"


NO_TF_ROOMS = ["base", "lite", "reference"]


@pytest.mark.parametrize("room", NO_TF_ROOMS)
def test_base_lite_and_reference_never_import_tensorflow(room):
    for path in modules(room):
        bad = [name for name, _ in imports(path) if touches(name, TF_NAMES)]
        assert not bad, f"{path.name} imports {bad}"


def test_the_reference_runs_without_the_litert_interpreter():
    """NumPy only: LiteRT's pure-Python schema module is allowed, its interpreter is not."""
    forbidden = ("ai_edge_litert.interpreter", "mobilenet_v2.lite.interpreter")
    for path in modules("reference"):
        bad = [name for name, _ in imports(path) if touches(name, forbidden)]
        assert not bad, f"{path.name} imports {bad}"


ABOVE_TF = LADDER[LADDER.index("tf") + 1 :]


@pytest.mark.parametrize("room", ABOVE_TF)
def test_rooms_above_tf_import_tensorflow_only_inside_functions(room):
    """`mobilenet_v2/__init__` loads `MobileNetV2` through importlib in `__getattr__`, a
    function: on first use, not at import."""
    for path in modules(room):
        bad = [name for name, top in imports(path) if top and touches(name, TF_NAMES)]
        assert not bad, f"{path.name} imports {bad} at module level"


def test_every_module_outside_tf_imports_without_tensorflow_or_ray():
    """Ray, too, loads only when `--engine ray` runs: a core install imports everything."""
    names = [ROOT] + [
        module_name(path) for room in LADDER if room != "tf" for path in modules(room)
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
    assert_runs_in_a_fresh_interpreter(code)


def test_documented_imports_keep_working():
    """The README's imports, in a fresh interpreter; TensorFlow only for the TF names."""
    code = (
        "import sys\n"
        "from mobilenet_v2 import decode_predictions, load_image, __version__\n"
        "from mobilenet_v2.golden.manifest import dequantize, read_tensor\n"
        "from mobilenet_v2.reference import ReferenceInterpreter\n"
        "assert 'tensorflow' not in sys.modules\n"
        "from mobilenet_v2 import MobileNetV2\n"
        "from mobilenet_v2.tf.layers import Conv2D\n"
        "from mobilenet_v2.tf.weights import recalibrate_batch_norm\n"
        "from mobilenet_v2.tf.train import train\n"
        "assert MobileNetV2 and recalibrate_batch_norm and Conv2D and train\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_command_line_parser_loads_no_tensorflow():
    """Building every subcommand's parser (what `--help` and every LiteRT command do first)
    stays below `tf/`: a default or help text taken from a TF module would load TensorFlow."""
    code = (
        "import contextlib, io, sys\n"
        "from mobilenet_v2.cli import main\n"
        "for command in ('classify', 'evaluate', 'convert', 'train', 'dump', 'verify',\n"
        "                'export', 'inspect', 'compare', 'trace', 'benchmark'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([command, '--help'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    assert_runs_in_a_fresh_interpreter(code)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, every import counted: at module level,
    inside functions and under `if TYPE_CHECKING:`. An imported name resolves to the longest
    prefix of it that is a module of the package (`from a.b import c`: a.b.c where c is a
    module, else a.b)."""
    names = {module_name(path, package): path for path in package.rglob("*.py")}
    graph = {}
    for name, path in names.items():
        targets = set()
        for imported, _ in imports(path):
            parts = imported.split(".")
            prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
            found = next((prefix for prefix in prefixes if prefix in names), None)
            if found is not None and found != name:
                targets.add(found)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: dict[str, str] = {}  # "open": on the current path; "done": no circle through it
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_circle_among_the_package_modules():
    """Not even one that Python tolerates (an import inside a function, or for type hints
    only): modules import one way, as the rooms do."""
    graph = import_graph(PACKAGE)
    assert len(graph) > 25 and any(graph.values())  # the package was read, imports were found
    cycle = find_cycle(graph)
    assert not cycle, f"import circle: {' -> '.join(cycle)}"


def test_the_circle_check_finds_a_circle_and_names_its_modules(tmp_path):
    """Two modules that import each other, the ways the package once did: one under
    `if TYPE_CHECKING:`, the other inside a function; a third imports one of them only."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    )
    (package / "b.py").write_text("def f():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg", "pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (package / "b.py").write_text("")
    assert find_cycle(import_graph(package)) == []
