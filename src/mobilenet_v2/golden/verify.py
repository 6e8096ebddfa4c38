"""Check someone's layer outputs against a golden dump (`mobilenet-v2 verify`).

The golden side is a directory `dump` wrote (its manifest.json says every tensor's dtype,
shape, layout and quantization); the other side is the user's tensors, named like ours (any
subset), in any format `dump` writes: text, `.npy`, raw little-endian `.bin`, `$readmemh`
`.hex` or C headers `.h`. Formats without a shape (bin, hex, a plain list of numbers) take
the golden tensor's dtype and element count.

For each tensor in both: the layout (a transposed NHWC/NCHW/NCWH tensor is recognised from its
values and reported as a layout mismatch, not as garbage), the exact-match count, the largest
and mean |difference| in quantization steps (LSB) for integer tensors or relative to the
tensor's largest magnitude for float ones, and the first element beyond the tolerance with
its (n, c, h, w) index and the `trace` command that explains it. Rows come in execution
order; the first failing one is the layer to debug, later ones inherit its error.

Both sides are read through the same readers that dump's writers pair with (`formats`), the
golden set through `manifest`; the table and report files are `verify_report`'s. No
TensorFlow: it runs in the LiteRT-only install, wherever the user's kernels are tested.
"""

from __future__ import annotations

import difflib
import itertools
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.analysis.tensor_map import written_layout
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.golden.formats import EXTENSIONS, READ_FORMATS, read_file
from mobilenet_v2.golden.manifest import (
    MANIFEST,
    MODEL_FILE,
    Golden,
    GoldenTensor,
    files_by_tensor,
    load_golden,
    load_manifest,
)
from mobilenet_v2.golden.tensor_file import wrong_size

FORMATS = ("auto", *READ_FORMATS)
LAYOUTS = ("auto", "NCHW", "NHWC")
_SUFFIX = {fmt: ext for ext, fmt in EXTENSIONS.items()}
# The user's layout -> the data format whose written layouts they follow (weights too:
# NCHW goes with OIHW and C1HW, NHWC with TFLite's own OHWI and 1HWC).
_DATA_FORMATS = {"NCHW": "channel_first", "NHWC": "channel_last"}
# A different layout is reported only when it fits at least this much better: noise makes
# every ordering of garbage fit about equally badly, a transposed tensor fits one exactly.
_CLEARLY_BETTER = 0.5
DEFAULT_FLOAT_TOLERANCE = 1e-5


class VerifyError(MobileNetV2Error):
    """What verify cannot work with: an unknown layout or format, no file of theirs named
    like a tensor, ... (an unreadable golden set or file is a `TensorFileError`)."""


@dataclass
class TensorResult:
    name: str
    op: str  # "3 CONV_2D", or "" for the model input and constants
    kind: str
    dtype: str
    shape: list[int]
    file: str
    status: str  # ok, differs, layout, shape, dtype
    expected_layout: str
    layout: str  # the layout their values are in
    elements: int = 0
    exact: int = 0
    beyond: int = 0  # elements off by more than the tolerance
    unit: str = "LSB"  # LSB (integer tensors) or relative (float: |d| / max |golden|)
    max_diff: float = 0.0
    mean_diff: float = 0.0
    first: dict[str, Any] | None = None  # the first element beyond the tolerance
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@dataclass
class Report:
    golden: str
    theirs: str
    layout: str
    tolerance: int
    float_tolerance: float
    results: list[TensorResult]
    notes: list[str] = field(default_factory=list)  # e.g. THEIRS is a dump of another run
    missing: list[str] = field(default_factory=list)  # golden tensors they have no file for
    ignored: list[str] = field(default_factory=list)  # their files named like no tensor

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def first_divergence(self) -> TensorResult | None:
        return next((r for r in self.results if not r.passed), None)

    def to_json(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            **{k: v for k, v in asdict(self).items() if k != "results"},
            "passed": self.passed,
            "first_divergence": first and first.name,
            "tensors": [asdict(r) for r in self.results],
        }


# --- Comparing -------------------------------------------------------------------------------


def _candidates(golden: GoldenTensor, array: np.ndarray) -> dict[str, np.ndarray]:
    """The golden tensor in every layout its values could be in (every order of its axes),
    named by its axis letters ("NHWC"). Orders that leave the values in the same sequence
    (axes of size 1 moved) give the same array object, so that callers can tell that such
    layouts cannot be told apart."""
    layout = golden.layout
    if array.ndim < 2 or len(layout) != array.ndim or len(set(layout)) != array.ndim:
        return {layout: array}
    out: dict[str, np.ndarray] = {}
    by_key: dict[tuple, np.ndarray] = {}
    for axes in itertools.permutations(range(array.ndim)):
        key = (
            tuple(array.shape[a] for a in axes),
            tuple(a for a in axes if array.shape[a] > 1),
        )
        if key not in by_key:
            by_key[key] = np.transpose(array, axes)
        out["".join(layout[a] for a in axes)] = by_key[key]
    return out


def _distinct(candidates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One name per distinct arrangement: the first (the written layout comes first)."""
    seen: set[int] = set()
    out = {}
    for name, array in candidates.items():
        if id(array) not in seen:
            seen.add(id(array))
            out[name] = array
    return out


def expected_layout(golden: Golden, tensor: GoldenTensor, layout: str) -> str:
    """The layout their copy of `tensor` should be in when they say `layout` (NCHW/NHWC)."""
    if layout not in _DATA_FORMATS:
        return tensor.layout
    engine = tensor.entry.get("layout") or ""
    theirs, _ = written_layout(engine, _DATA_FORMATS[layout])
    if sorted(theirs) != sorted(tensor.layout):
        return tensor.layout  # a layout that does not change with the data format (C, NC)
    return theirs


def _difference(golden: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """theirs - golden: exact int64 for integers, float64 for floats (NaN = NaN: 0)."""
    if golden.dtype.kind in "iub" and theirs.dtype.kind in "iub":
        return theirs.astype(np.int64) - golden.astype(np.int64)
    diff = theirs.astype(np.float64) - golden.astype(np.float64)
    both_nan = np.isnan(golden.astype(np.float64)) & np.isnan(theirs.astype(np.float64))
    diff[both_nan] = 0.0
    same_inf = np.isinf(golden.astype(np.float64)) & (golden == theirs)
    diff[same_inf] = 0.0
    return diff


def _fit(golden: np.ndarray, theirs_flat: np.ndarray) -> float:
    """How far their values are from `golden` read in the same order: mean |difference|
    over the comparable (not NaN) elements."""
    d = np.abs(_difference(golden.reshape(-1), theirs_flat))
    d = d[~np.isnan(d)] if d.dtype.kind == "f" else d
    return float(np.mean(d)) if d.size else 0.0


def best_layout(
    golden: GoldenTensor, array: np.ndarray, theirs: np.ndarray, shape: tuple | None
) -> tuple[str, dict[str, float]]:
    """Which layout their values are in, judged by the values: the candidate they fit best,
    among those whose shape is theirs (when their file has a shape)."""
    fits = {}
    flat = theirs.reshape(-1)
    for name, candidate in _distinct(_candidates(golden, array)).items():
        if shape is not None and tuple(candidate.shape) != tuple(shape):
            continue
        fits[name] = _fit(candidate, flat)
    if not fits:
        return "", fits
    return min(fits, key=lambda n: fits[n]), fits


@dataclass
class _Theirs:
    path: Path
    fmt: str
    values: np.ndarray
    shape: tuple | None


def compare_tensor(
    golden: Golden,
    tensor: GoldenTensor,
    theirs: _Theirs,
    expected: str,
    tolerance: int,
    float_tolerance: float,
) -> TensorResult:
    """One row of the report: their values against the golden tensor."""
    array = tensor.read()
    entry = tensor.entry
    op = entry.get("op")
    if op:
        where = f"{op['index']} {op['type']}"
    else:  # a weight, a bias or the model input: the op that reads it first
        reader = golden.op_types.get(tensor.order[0])
        where = f"{tensor.order[0]} {reader} (input)" if reader else ""
    result = TensorResult(
        name=tensor.name,
        op=where,
        kind=entry.get("kind", ""),
        dtype=str(tensor.dtype),
        shape=list(tensor.shape),
        file=theirs.path.name,
        status="ok",
        expected_layout=expected,
        layout=expected,
        elements=int(array.size),
        unit="LSB" if tensor.dtype.kind in "iub" else "relative",
    )
    if (tensor.dtype.kind == "f") != (theirs.values.dtype.kind == "f"):
        result.status = "dtype"
        result.note = f"their values are {theirs.values.dtype}, the golden tensor's {tensor.dtype}"
        return result
    candidates = _candidates(tensor, array)
    shape = theirs.shape
    if expected in candidates and (shape is None or candidates[expected].shape == shape):
        golden_as_theirs = candidates[expected]
        fit = _fit(golden_as_theirs, theirs.values.reshape(-1))
    else:
        golden_as_theirs, fit = None, float("inf")
    if fit > 0:  # not exact as expected: which layout are their values in?
        layout, fits = best_layout(tensor, array, theirs.values, shape)
        if not layout:
            result.status = "shape"
            result.layout = "?"
            result.note = (
                f"their shape {list(shape or ())} is no arrangement of {list(tensor.shape)}"
            )
            return result
        same = candidates.get(layout) is candidates.get(expected)  # not told apart
        if not same and fits[layout] <= _CLEARLY_BETTER * fit:
            result.status = "layout"
            result.layout = layout
            result.note = f"their values are in {layout} order, expected {expected}"
            golden_as_theirs = candidates[layout]
        elif golden_as_theirs is None:  # their shape fits only another layout
            result.status = "layout"
            result.layout = layout
            result.note = f"their shape {list(shape or ())} is {layout}, expected {expected}"
            golden_as_theirs = candidates[layout]
    _measure(result, golden_as_theirs, theirs.values, tensor, tolerance, float_tolerance, golden)
    return result


def _measure(
    result: TensorResult,
    golden_array: np.ndarray,
    values: np.ndarray,
    tensor: GoldenTensor,
    tolerance: int,
    float_tolerance: float,
    golden: Golden,
) -> None:
    diff = np.abs(_difference(golden_array.reshape(-1), values.reshape(-1)))
    result.exact = int(np.count_nonzero(diff == 0))
    if result.unit == "LSB":
        limit = float(tolerance)
        scaled = diff.astype(np.float64)
    else:
        magnitude = float(np.nanmax(np.abs(golden_array))) if golden_array.size else 0.0
        scaled = diff / (magnitude or 1.0)
        limit = float_tolerance
    beyond = ~(scaled <= limit)  # NaN against a number counts as beyond
    result.beyond = int(np.count_nonzero(beyond))
    if scaled.size:
        # NaN against a number (a NaN difference) counts as infinitely far, in both figures
        scaled = np.where(np.isnan(scaled), np.inf, scaled)
        result.max_diff = float(np.max(scaled))
        result.mean_diff = float(np.mean(scaled)) if np.isfinite(scaled).all() else float("inf")
    if result.beyond and result.status == "ok":
        result.status = "differs"
    if result.beyond:
        flat = int(np.argmax(beyond))
        position = np.unravel_index(flat, golden_array.shape)
        result.first = _first_element(golden_array, values, position, result, tensor, golden)


def _first_element(
    golden_array: np.ndarray,
    values: np.ndarray,
    position: tuple,
    result: TensorResult,
    tensor: GoldenTensor,
    golden: Golden,
) -> dict[str, Any]:
    """The element, its index by axis letter and as trace's n,c,h,w, and the trace command."""
    letters = result.layout if len(result.layout) == len(position) else ""
    named = {letters[i]: int(p) for i, p in enumerate(position)} if letters else {}
    element = {
        "position": [int(p) for p in position],
        "layout": letters,
        "index": ", ".join(f"{k.lower()}={v}" for k, v in named.items())
        or str([int(p) for p in position]),
        "golden": golden_array[position].item(),
        "theirs": values.reshape(golden_array.shape)[position].item(),
    }
    if set(named) == set("NCHW"):
        element["nchw"] = [named[a] for a in "NCHW"]
    elif set(named) == set("NC"):
        element["nchw"] = [named["N"], named["C"]]
    element["trace"] = trace_command(golden, tensor, element.get("nchw"))
    return element


def trace_command(golden: Golden, tensor: GoldenTensor, nchw: list[int] | None) -> str | None:
    """`mobilenet-v2 trace MODEL IMAGE --tensor NAME --index n,c,h,w` for an element of an
    activation in a dump of a quantized model (trace explains the NumPy reference's integer
    steps); None where it does not apply (float dumps, weights)."""
    manifest = golden.manifest
    if nchw is None or manifest.get("engine") not in ("litert", "numpy-reference"):
        return None
    if tensor.entry.get("kind") not in ("activation", "output") or tensor.dtype.kind == "f":
        return None
    model = manifest["model"]
    if MODEL_FILE in manifest.get("files", ()):  # a set that carries its model: wherever it is
        model = str((golden.directory / MODEL_FILE).resolve())
    argv = ["mobilenet-v2", "trace", model, manifest["image"]]
    argv += ["--tensor", tensor.name, "--index", ",".join(map(str, nchw))]
    argv += list(manifest.get("input_flags") or ())
    return shlex.join(argv)


# --- Whole directories -----------------------------------------------------------------------


def their_files(
    golden: Golden, theirs: Path, fmt: str, tensor: str | None
) -> tuple[dict[str, tuple[Path, str]], list[str]]:
    """Their files by golden tensor name, with the format each is read as, and the names of
    their files that match no tensor."""
    if tensor is not None and not theirs.exists():
        raise VerifyError(f"{theirs}: no such file")
    if theirs.is_file():
        if tensor is None and theirs.stem not in golden.tensors:
            raise VerifyError(
                f"{theirs}: no tensor of {golden.directory} is named {theirs.stem!r}; "
                "give --tensor NAME"
            )
        match = find_golden(golden, tensor or theirs.stem)
        kind = fmt if fmt != "auto" else EXTENSIONS.get(theirs.suffix.lower())
        if kind is None:
            raise VerifyError(
                f"{theirs}: cannot tell the format from the extension {theirs.suffix!r}; "
                f"give --format ({', '.join(FORMATS[1:])})"
            )
        return {match.name: (theirs, kind)}, []
    if tensor is not None:
        raise VerifyError(f"{theirs}: --tensor goes with a single file, not a directory")
    if not theirs.is_dir():
        raise VerifyError(f"{theirs}: no such file or directory")
    found: dict[str, tuple[Path, str]] = {}
    ignored = []
    same_tensor = files_by_tensor(theirs)
    suffixes = list(EXTENSIONS) if fmt == "auto" else [_SUFFIX[fmt]]
    for path in sorted(theirs.iterdir()):
        suffix = path.suffix.lower()
        if suffix not in suffixes or not path.is_file():
            if suffix in EXTENSIONS and path.stem in golden.tensors:
                ignored.append(path.name)  # a tensor file in another format than --format
            continue
        if path.stem not in golden.tensors:
            if not _umbrella(path):
                ignored.append(path.name)
            continue
        earlier = found.get(path.stem)
        if earlier is not None and {earlier[0].name, path.name} <= same_tensor.get(
            path.stem, set()
        ):
            # a `--format both` dump: its manifest says both files hold the same tensor
            if list(EXTENSIONS).index(suffix) < list(EXTENSIONS).index(earlier[0].suffix.lower()):
                found[path.stem] = (path, EXTENSIONS[suffix])
            continue
        if earlier is not None:  # which one is theirs? never pick silently
            raise VerifyError(
                f"{theirs}: {earlier[0].name} and {path.name} are both tensor {path.stem}; "
                "give --format to choose"
            )
        found[path.stem] = (path, EXTENSIONS[suffix])
    if not found:
        example = next(iter(golden.tensors), "Conv1_relu")
        raise VerifyError(
            f"{theirs}: no {'' if fmt == 'auto' else fmt + ' '}file is named like a tensor of "
            f"{golden.directory} (e.g. {example}{_SUFFIX.get(fmt, '.npy')})"
        )
    return found, ignored


def _umbrella(path: Path) -> bool:
    """A header that only includes others (dump's tensors.h): no tensor, nothing ignored."""
    return path.suffix.lower() == ".h" and "{" not in path.read_text(errors="replace")


def find_golden(golden: Golden, name: str) -> GoldenTensor:
    """A golden tensor by file stem, engine name or index."""
    if name in golden.tensors:
        return golden.tensors[name]
    for t in golden.tensors.values():
        if name in (t.entry.get("name"), str(t.entry.get("index"))):
            return t
    close = difflib.get_close_matches(name, list(golden.tensors), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise VerifyError(f"{golden.directory}: no tensor named {name!r}{hint}")


def verify(
    golden_dir: str | os.PathLike,
    theirs: str | os.PathLike,
    layout: str = "auto",
    fmt: str = "auto",
    tolerance: int = 0,
    float_tolerance: float = DEFAULT_FLOAT_TOLERANCE,
    tensor: str | None = None,
) -> Report:
    """Compare their tensors with the golden dump; see the module's docstring."""
    if layout not in LAYOUTS:
        raise VerifyError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if fmt not in FORMATS:
        raise VerifyError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if tolerance < 0 or not float_tolerance >= 0:
        raise VerifyError("tolerances must not be negative")
    golden = load_golden(golden_dir)
    theirs = Path(theirs)
    files, ignored = their_files(golden, theirs, fmt, tensor)
    loaded = {}
    for name, (path, kind) in files.items():
        values, shape = read_file(path, kind, golden.tensors[name].spec)
        if values.size != int(np.prod(golden.tensors[name].shape)):
            found = f"{values.size} values" + (f" of shape {list(shape)}" if shape else "")
            raise wrong_size(path, golden.tensors[name].spec, found)
        loaded[name] = _Theirs(path, kind, values, shape)
    if layout == "auto":
        layout = _vote(golden, loaded)
    results = []
    for name, t in golden.tensors.items():
        if name in loaded:
            expected = expected_layout(golden, t, layout)
            results.append(
                compare_tensor(golden, t, loaded[name], expected, tolerance, float_tolerance)
            )
    # One file checks one tensor: the others are not "missing".
    missing = [] if theirs.is_file() else [n for n in golden.tensors if n not in loaded]
    return Report(
        notes=_provenance_notes(golden, theirs),
        golden=str(golden.directory),
        theirs=str(theirs),
        layout=layout,
        tolerance=tolerance,
        float_tolerance=float_tolerance,
        results=results,
        missing=missing,
        ignored=ignored,
    )


def _provenance_notes(golden: Golden, theirs: Path) -> list[str]:
    """When THEIRS is itself a dump (it has a manifest): the differences in model, image and
    preprocessing that make its tensors differ for reasons other than the kernels."""
    path = (theirs if theirs.is_dir() else theirs.parent) / MANIFEST
    if path == golden.directory / MANIFEST or not path.is_file():
        return []
    try:
        other = load_manifest(path)
    except (OSError, ValueError):
        return []
    ours = golden.manifest
    notes = []
    for key, what in (
        ("model_sha256", "model"),
        ("image", "image"),
        ("preprocessing", "preprocessing"),
    ):
        if ours.get(key) is not None and other.get(key) is not None and ours[key] != other[key]:
            if key == "image" and Path(ours[key]).name == Path(other[key]).name:
                continue
            notes.append(
                f"THEIRS was dumped with another {what} ({key}: {other[key]}, ours: {ours[key]})"
            )
    return notes


def _vote(golden: Golden, loaded: dict[str, _Theirs]) -> str:
    """`--layout auto`: NCHW or NHWC, whichever more of their 4-D tensors are in (judged by
    shape and values); a tie keeps the golden dump's own. One layout for the whole set, so
    that a single tensor in another one is reported as a layout mismatch."""
    own = "NHWC" if golden.data_format == "channel_last" else "NCHW"
    votes = dict.fromkeys(_DATA_FORMATS, 0)
    for name, theirs in loaded.items():
        tensor = golden.tensors[name]
        kinds = {tensor.dtype.kind == "f", theirs.values.dtype.kind == "f"}
        if len(tensor.shape) != 4 or len(kinds) > 1:
            continue
        candidates = _candidates(tensor, tensor.read())
        layouts = {fmt: expected_layout(golden, tensor, fmt) for fmt in _DATA_FORMATS}
        arrays = [candidates.get(layouts[fmt]) for fmt in _DATA_FORMATS]
        if any(a is None for a in arrays) or arrays[0] is arrays[1]:
            continue  # the two layouts are the same sequence here: no evidence
        fits = {}
        for fmt, a in zip(_DATA_FORMATS, arrays, strict=True):
            if theirs.shape is None or tuple(a.shape) == tuple(theirs.shape):
                fits[fmt] = _fit(a, theirs.values.reshape(-1))
        if len(fits) == 1:  # their shape allows one of the two
            votes[next(iter(fits))] += 1
        elif fits and min(fits.values()) <= _CLEARLY_BETTER * max(fits.values()):
            votes[min(fits, key=lambda f: fits[f])] += 1  # garbage values are no evidence
    if votes["NCHW"] == votes["NHWC"]:
        return own
    return max(votes, key=lambda f: votes[f])
