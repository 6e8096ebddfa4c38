"""Writing results safely: a file through a temporary file and a rename, a directory of
files through a staging directory, a whole directory (a SavedModel) through a staging
directory and a rename; an error leaves no half-written output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from mobilenet_v2.base.errors import MobileNetV2Error

# The file every TensorFlow SavedModel directory has: the sign that `export --saved-model
# --replace` may replace a directory (`check_new_directory`).
SAVED_MODEL_FILE = "saved_model.pb"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary file beside it, renamed over it when
    the block ends normally, removed when it raises. Never a half-written `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary file beside `path` (ending in `suffix`, for writers that go by it) for a
    library to write, renamed over `path` when the block ends normally, removed when it
    raises: never a half-written `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode(0o666))  # mkstemp makes 0600; a result is the user's file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(headers: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    """A Markdown (pipe) table of already formatted cells: the first `text_columns` columns
    left-aligned, the numbers after them right-aligned; cells are printed as given."""
    from tabulate import tabulate

    align = ("left",) * text_columns + ("right",) * (len(headers) - text_columns)
    return tabulate(rows, headers, tablefmt="pipe", colalign=align, disable_numparse=True)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (`atomic_file`); failures name the file."""
    path = Path(path)
    check_writable(path)
    try:
        with atomic_file(path) as f:
            f.write(data)
    except OSError as exc:
        raise MobileNetV2Error(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Fail before the (slow) conversion when the output cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise MobileNetV2Error(f"{path}: output path is a directory")
    if path.exists() and not path.is_file():  # a device or socket: never renamed over
        raise MobileNetV2Error(f"{path}: output path exists and is not a regular file")
    if not path.parent.is_dir():
        raise MobileNetV2Error(f"{path}: output directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise MobileNetV2Error(f"{path}: output directory {path.parent} is not writable")


def check_output_dir(output: str | os.PathLike) -> None:
    """Fail before any work when a directory of results cannot be written."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise MobileNetV2Error(f"{out}: exists and is not a directory")
    if not out.parent.is_dir():
        raise MobileNetV2Error(f"{out}: parent directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK) or (out.is_dir() and not os.access(out, os.W_OK)):
        raise MobileNetV2Error(f"{out}: directory is not writable")


def check_new_directory(
    output: str | os.PathLike, replace: bool = False, marker: str | None = None
) -> None:
    """Fail before any work when `output` cannot become a new directory (written whole, by
    `atomic_directory`): its parent must be a writable directory, and `output` absent or an
    empty directory. A non-empty one is replaced only with `replace`, and only when it holds
    `marker` (e.g. `saved_model.pb`), the sign of an earlier output of the same kind, so
    that a mistyped path never deletes a folder of the user's."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise MobileNetV2Error(f"{out}: exists and is not a directory")
    if out.parent.exists() and not out.parent.is_dir():
        raise MobileNetV2Error(f"{out}: {out.parent} is not a directory")
    if not out.parent.is_dir():
        raise MobileNetV2Error(f"{out}: parent directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise MobileNetV2Error(f"{out}: parent directory {out.parent} is not writable")
    if out.is_dir() and any(out.iterdir()):
        earlier = marker is None or (out / marker).exists()
        if not replace:
            hint = " (--replace replaces it)" if earlier else f", and holds no {marker}"
            raise MobileNetV2Error(f"{out}: directory is not empty{hint}")
        if not earlier:
            raise MobileNetV2Error(
                f"{out}: directory is not empty and holds no {marker}; not replaced"
            )


@contextlib.contextmanager
def atomic_directory(
    output: str | os.PathLike, replace: bool = False, marker: str | None = None
) -> Iterator[Path]:
    """Yield an empty staging directory beside `output` (same filesystem, so renames are
    atomic); when the block succeeds, it becomes `output` by a rename, and when it raises it
    is removed: never a half-written `output`. An earlier `output` that may be replaced
    (`check_new_directory`) is renamed aside first and removed last, so that it is only
    missing for the instant between the two renames."""
    out = Path(output)
    check_new_directory(out, replace, marker)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        os.chmod(staging, _default_mode(0o777))  # mkdtemp makes 0700; a result is the user's
    except OSError as exc:
        raise MobileNetV2Error(f"{out}: cannot write ({exc.strerror or exc})") from None
    old = None
    try:
        yield staging
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old)  # over the empty directory just made: a rename, no copy
        os.replace(staging, out)  # also over an empty `out`, which rename(2) allows
    except OSError as exc:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the earlier output back
            old = None
        raise MobileNetV2Error(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(output: str | os.PathLike, last: str | None = None) -> Iterator[Path]:
    """Yield an empty staging directory beside `output`; when the block succeeds, its files
    move into `output` (created if needed; `last` moves last, so that its presence means a
    complete set). An earlier `last` manifest is removed first, and the files it lists that
    were not rewritten before the new one moves in: interrupted midway, `output` holds no
    manifest, never a mix of two sets that one manifest calls complete."""
    out = Path(output)
    check_output_dir(out)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        os.chmod(staging, _default_mode(0o777))
    except OSError as exc:
        raise MobileNetV2Error(f"{out}: cannot write ({exc.strerror or exc})") from None
    try:
        yield staging
        if not out.exists():
            os.replace(staging, out)
            return
        stale = _listed_files(out / last) if last else set()
        if last:
            (out / last).unlink(missing_ok=True)
        names = sorted(p.name for p in staging.iterdir() if p.name != last)
        for name in names:
            os.replace(staging / name, out / name)
        for name in stale - set(names):
            (out / name).unlink(missing_ok=True)
        if last and (staging / last).exists():
            os.replace(staging / last, out / last)
    except OSError as exc:
        raise MobileNetV2Error(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _default_mode(mode: int) -> int:
    """`mode` less the process umask: what open() or mkdir() would have given."""
    return mode & ~_umask()


def _umask() -> int:
    """The process umask, read without setting it: os.umask can only learn it by setting it,
    and a file another thread created in between would get mode 0666. Linux says it in
    /proc/self/status (since 4.7); elsewhere, the umask this module found on import."""
    mask = _proc_umask()
    return _IMPORT_UMASK if mask is None else mask


def _proc_umask() -> int | None:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    """Where /proc cannot say it: set and set back, once. The mask in force for that instant
    is the most private one, so a file another thread creates then is 0600, never 0666."""
    mask = _proc_umask()
    if mask is None:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_at_import()


def _listed_files(manifest: Path) -> set[str]:
    """The plain file names an earlier manifest lists (`tensors[].files`, and `files`: those of
    the whole set, such as a dump's umbrella C header)."""
    try:
        data = json.loads(manifest.read_text())
        names = {f for e in data["tensors"] for f in e["files"]} | set(data.get("files", []))
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if isinstance(n, str) and "/" not in n and not n.startswith(".")}
