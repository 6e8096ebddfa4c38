"""A golden set on disk: `manifest.json` (how the set was made, the ops, one entry per tensor:
dtype, shapes and layouts as the engine has them and as written, quantization, files) and
`manifest.csv`; writing one tensor's entry and files, and reading them back (`read_tensor`
for one file, `load_golden` for the whole set as `verify` matches against it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.analysis.tensor_map import ModelTable, TensorInfo, written_layout
from mobilenet_v2.analysis.tensor_map_formats import CSV_COLUMNS, tensor_rows, to_csv
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.quantization import dequantize as base_dequantize
from mobilenet_v2.golden.formats import (
    EXTENSIONS,
    DumpedTensor,
    parse_tensor_text,
    read_file,
    read_npy,
    write_file,
)
from mobilenet_v2.golden.tensor_file import TensorFileError, TensorSpec

MANIFEST = "manifest.json"

MODEL_FILE = "model.tflite"  # the model itself, in a golden set that includes it

# manifest.csv's columns after the table's: how and where each tensor was written.
WRITTEN_COLUMNS = ("written_shape", "written_layout", "written_quantized_dimension", "files")

# --- Writing ---------------------------------------------------------------------------------


def write_tensor(
    staging: Path,
    t: TensorInfo,
    array: np.ndarray | None,
    kinds: tuple[str, ...],
    data_format: str,
    op_types: dict[int, str],
    c_name: str,
) -> dict[str, Any]:
    """Write tensor `t` (`array`, None where the engine has no data) as each of the file
    `kinds`, in the layout `data_format` gives it, into `staging`; its manifest entry. A
    kernel's scratch tensor and a tensor without data get an entry and a note, no files."""
    layout, axes = written_layout(t.layout, data_format)
    qdim = int(t.quantized_dimension)
    entry: dict[str, Any] = {
        "index": t.index,
        "name": t.name,
        "kind": t.kind,
        "keras_layer": t.keras_layer,
        "op": None if t.producer is None else {"index": t.producer, "type": op_types[t.producer]},
        "dtype": t.dtype,
        "shape": list(t.shape),
        "layout": t.layout,
        "written_shape": list(t.shape),
        "written_layout": layout,
        "transpose": list(axes) if axes else None,
        "scales": [float(s) for s in t.scales],
        "zero_points": [int(z) for z in t.zero_points],
        "quantized_dimension": qdim,
        "written_quantized_dimension": axes.index(qdim) if axes and qdim < len(axes) else qdim,
        "files": [],
    }
    if array is None:
        entry["note"] = "no data in the interpreter"
        return entry
    if t.kind == "scratch":
        entry["note"] = "a kernel's working memory (e.g. im2col), not a result: not written"
        return entry
    if axes and array.ndim != len(axes):
        axes, entry["transpose"], entry["written_layout"] = None, None, t.layout
        entry["written_quantized_dimension"] = qdim
    written = np.ascontiguousarray(np.transpose(array, axes) if axes else array)
    entry["written_shape"] = list(written.shape)
    entry["dtype"] = written.dtype.name
    # What a test bench needs to read .bin and .hex files (fread, $readmemh).
    entry["element_size"] = written.dtype.itemsize
    entry["byte_order"] = "little"
    if "h" in kinds:
        entry["c_name"] = c_name
    for kind in kinds:
        path = inside(staging, f"{t.file_name}.{kind}")
        write_file(path, kind, written, entry)
        entry["files"].append(path.name)
    return entry


def inside(directory: Path, name: str) -> Path:
    """Defence in depth: `name` was made safe, and still must land directly in `directory`."""
    path = directory / name
    if path.resolve().parent != directory.resolve() or path.exists():
        raise MobileNetV2Error(f"{directory}: refusing file name {name!r}")
    return path


def write_manifests(
    staging: Path, manifest: dict[str, Any], table: ModelTable, entries: list[dict[str, Any]]
) -> None:
    """`manifest.json` and `manifest.csv` (the table's rows with where each tensor went)."""
    by_index = {e["index"]: e for e in entries}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    rows = []
    for r in tensor_rows(table):
        e = by_index[r["tensor_index"]]
        rows.append({**r, **{k: e[k] for k in WRITTEN_COLUMNS}})
    columns = CSV_COLUMNS + list(WRITTEN_COLUMNS)
    (staging / "manifest.csv").write_text(to_csv(rows, columns))


# --- Reading one file ------------------------------------------------------------------------


def load_manifest(path: Path) -> dict[str, Any]:
    """A manifest's JSON; OSError and ValueError for the caller to word."""
    return json.loads(path.read_text())


def read_tensor(path: str | os.PathLike) -> DumpedTensor:
    """The exact array of a dump file and its metadata (the text header, or for `.npy` the
    manifest entry beside it)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            array = read_npy(path)
            return DumpedTensor(array, manifest_entry(path))
        text = path.read_text()
    except (OSError, ValueError) as exc:
        raise MobileNetV2Error(f"{path}: cannot read tensor file ({exc})") from None
    return parse_tensor_text(text, path)


def manifest_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of a dump file, keyed as a text file's header is (`type`, `shape`
    and `quantized_dimension` as written), for files without a header of their own."""
    manifest = path.parent / MANIFEST
    try:
        for entry in load_manifest(manifest)["tensors"]:
            if path.name in entry["files"]:
                return {
                    **entry,
                    "type": entry["dtype"],
                    "shape": entry["written_shape"],
                    "quantized_dimension": entry["written_quantized_dimension"],
                    "original_quantized_dimension": entry["quantized_dimension"],
                }
    except (OSError, ValueError, KeyError) as exc:
        raise MobileNetV2Error(f"{manifest}: cannot read the manifest ({exc})") from None
    raise MobileNetV2Error(f"{path}: not listed in {manifest}")


def dequantize(array: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """`(q - zero_point) * scale` with the file's own parameters (per channel along
    `quantized_dimension` as written); float tensors come back as float32."""
    axis = int(meta.get("quantized_dimension", 0))
    return base_dequantize(array, meta.get("scales", []), meta.get("zero_points"), axis)


# --- Reading the whole set -------------------------------------------------------------------


@dataclass
class GoldenTensor:
    """One tensor of the golden dump, from its manifest entry."""

    name: str  # the file stem, which the user's files share
    entry: dict[str, Any]
    path: Path  # one of its files
    order: tuple[int, int]  # (op, 0 before / 1 after it): execution order
    _array: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.entry["written_shape"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.entry["dtype"])

    @property
    def layout(self) -> str:
        return self.entry.get("written_layout") or ""

    @property
    def spec(self) -> TensorSpec:
        """What a file of this tensor must hold (the dtype and size of bin, hex, lists)."""
        return TensorSpec(self.name, self.shape, self.dtype)

    def read(self) -> np.ndarray:
        """The golden values in the written shape (read once)."""
        if self._array is None:
            array, _ = read_file(self.path, EXTENSIONS[self.path.suffix], self.spec)
            self._array = array.reshape(self.shape)
        return self._array


@dataclass
class Golden:
    directory: Path
    manifest: dict[str, Any]
    tensors: dict[str, GoldenTensor]  # by file stem, in execution order

    @property
    def data_format(self) -> str:
        return self.manifest.get("data_format", "channel_first")

    @property
    def op_types(self) -> dict[int, str]:
        return {op["index"]: op["type"] for op in self.manifest.get("ops", ())}


def load_golden(directory: str | os.PathLike) -> Golden:
    """The dump in `directory`: every tensor with a file, in execution order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TensorFileError(f"{directory}: not a directory (give a dump directory as GOLDEN)")
    path = directory / MANIFEST
    if not path.is_file():
        raise TensorFileError(
            f"{directory}: no {MANIFEST}, so not a dump directory (mobilenet-v2 dump "
            "--output DIR writes one)"
        )
    try:
        manifest = load_manifest(path)
        entries = manifest["tensors"]
        ops = manifest.get("ops", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TensorFileError(f"{path}: not a dump manifest ({exc})") from None
    order = _execution_order(ops)
    tensors = []
    for entry in entries:
        files = [f for f in entry.get("files", ()) if Path(f).suffix in EXTENSIONS]
        if not files:
            continue  # scratch tensors, optional inputs: nothing was written
        files.sort(key=lambda f: list(EXTENSIONS).index(Path(f).suffix))
        tensors.append(
            GoldenTensor(
                name=Path(files[0]).stem,
                entry=entry,
                path=directory / files[0],
                order=order.get(entry["index"], (len(ops), 0)),
            )
        )
    tensors.sort(key=lambda t: (t.order, t.entry["index"]))
    return Golden(directory, manifest, {t.name: t for t in tensors})


def _execution_order(ops: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Tensor index -> (op, 1) for what an op computes, (op, 0) for what it reads first
    (the model input, weights, biases): weights precede the output they make."""
    order: dict[int, tuple[int, int]] = {}
    for op in ops:
        for index in op.get("outputs", ()):
            order.setdefault(index, (op["index"], 1))
    for op in ops:
        for index in (*op.get("inputs", ()), *op.get("weights", ())):
            order.setdefault(index, (op["index"], 0))
    return order


def files_by_tensor(directory: Path) -> dict[str, set[str]]:
    """When `directory` is one of our dumps: each tensor's files (by stem), from its
    manifest; else nothing."""
    try:
        entries = load_manifest(directory / MANIFEST)["tensors"]
        return {Path(e["files"][0]).stem: set(e["files"]) for e in entries if e["files"]}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}
