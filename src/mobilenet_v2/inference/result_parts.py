"""Results as a directory of part files, written where the rows are computed: by the Ray
engine's workers, one part per batch, so that no row travels to the driver (it receives
positions and errors only).

`--output rows/` (a name that ends in "/") with `--engine ray`: the parts are Parquet, or
CSV or JSON Lines when the directory's name ends in .csv or .jsonl (`rows.csv/`), each with
the columns of a single result file (`mobilenet_v2.inference.results`). While the job runs
they go to a staging directory beside the output (`.NAME.partial/`); at the end the driver
checks that every batch of this run has its part, removes anything else there (a temporary
file of a worker killed while writing, parts of an abandoned run), adds a marker file
(`_mobilenet_v2.json`: readers of Parquet skip names that start with "_") and renames the
staging directory to the output, so an interrupted job leaves no directory that looks
complete. An existing directory is replaced only when its marker says this writer made it.

A part is written whole or not at all (a temporary name, then a rename) and is named by the
run and the position of its batch's first input, so a batch that Ray runs again after its
worker died replaces its own part instead of adding rows. `--resume` reads the rows of the
output's or an interrupted job's parts once, keeps those of classified images (one per
input) in one part, and classifies only the other inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.sources import Source
from mobilenet_v2.inference.results import (
    SUFFIXES,
    Row,
    check_output,
    classified_rows_to_keep,
    read_rows,
    still_to_classify,
    write_results,
)

KEPT_PART = "kept"  # the part that gathers what --resume keeps
MARKER = "_mobilenet_v2.json"  # what says a directory holds parts this writer committed


def is_parts_output(output: str | os.PathLike) -> bool:
    """Whether `output` names a directory of part files: a name that ends in "/"."""
    return str(output).endswith(("/", os.sep))


def parts_format(output: str | os.PathLike) -> str:
    """The parts' format from the directory's name: .csv or .jsonl, else Parquet."""
    suffix = Path(str(output).rstrip("/" + os.sep)).suffix.lower()
    return suffix[1:] if suffix in SUFFIXES else "parquet"


def staging_path(output: str | os.PathLike) -> Path:
    path = Path(str(output).rstrip("/" + os.sep))
    return path.with_name(f".{path.name}.partial")


def check_parts_output(output: str | os.PathLike) -> None:
    """Before any work: a directory name (not `.`, `..` or a root), not a file, not a
    folder of the user's (only one this writer committed is replaced), the format's library
    there, and the parts writable beside where the output goes."""
    directory = Path(str(output).rstrip("/" + os.sep))
    if directory.name in ("", ".", ".."):
        raise MobileNetV2Error(f"{output}: name the directory the parts go to, e.g. rows/")
    if directory.exists() and not directory.is_dir():
        raise MobileNetV2Error(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MARKER).exists():
        raise MobileNetV2Error(
            f"{directory}: a folder that holds no parts of mobilenet-v2's (no {MARKER}); "
            "name a new directory"
        )
    staging = staging_path(output)  # where the parts go first: its folder must be writable
    check_output(staging.with_name(f"{staging.name}.{parts_format(output)}"))


def is_part(path: Path, fmt: str) -> bool:
    """A part file, not a worker's temporary file (those start with ".") or the marker."""
    return path.name.startswith(("part-", f"{KEPT_PART}-")) and path.suffix == f".{fmt}"


def read_parts(folder: Path, fmt: str) -> list[Row]:
    """Every row of the part files in `folder` (each written whole: see the module's
    docstring), in the order of their names."""
    return [
        row
        for part in sorted(folder.iterdir())
        if is_part(part, fmt)
        for row in read_rows(part, fmt)
    ]


def part_name(run: str, first: int, fmt: str) -> str:
    """A run's part whose first input is at position `first`."""
    return f"part-{run}-{first:010d}.{fmt}"


@dataclass(frozen=True)
class PartSpec:
    """What a worker needs to write its batch's rows as a part: where, in which format, the
    run's name for its parts, and what every row names (the model, and its classes' names:
    None for ImageNet's)."""

    staging: str
    format: str
    run: str
    model: str
    model_sha256: str
    top: int
    names: tuple[str, ...] | None = None

    def part(self, first: int) -> Path:
        """The part of the batch whose first input is at position `first`."""
        return Path(self.staging, part_name(self.run, first, self.format))


class PartsWriter:
    """The driver's side of a job whose workers write the rows: what `--resume` keeps
    (read when it is made, so that a refusal comes before any work), the staging directory
    the workers write into (`staging`; `run` names this run's parts), and the check and
    rename at the end."""

    def __init__(
        self,
        output: str | os.PathLike,
        model: str,
        model_sha256: str,
        top: int,
        resume: bool = False,
    ) -> None:
        self.output = Path(str(output).rstrip("/" + os.sep))
        self.format = parts_format(output)
        self.staging = staging_path(output)
        self.model, self.model_sha256, self.top = model, model_sha256, top
        self.resume = resume
        self.run = uuid.uuid4().hex[:12]
        earlier: list[Row] = []
        if resume:
            for folder in (self.output, self.staging):
                if folder.is_dir():
                    earlier += read_parts(folder, self.format)
        self.kept = classified_rows_to_keep(earlier, self.output, model, model_sha256, top)
        self.kept_part = self.staging / f"{KEPT_PART}-{self.run}.{self.format}"

    def start(self, sources: Sequence[Source]) -> list[Source]:
        """The sources still to classify, each once. The staging directory then holds the
        kept rows in one part and nothing else: that part is written first and the parts
        it gathers are removed after it, so an interruption in between leaves rows twice,
        never none (the next `--resume` keeps each once)."""
        if not self.resume:
            shutil.rmtree(self.staging, ignore_errors=True)
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
            if self.kept:
                write_results(self.kept_part, self.kept, self.top)
            self._remove_all_but(set())
        except OSError as exc:
            raise MobileNetV2Error(
                f"{self.staging}: cannot write ({exc.strerror or exc})"
            ) from None
        return still_to_classify(sources, self.kept)

    def spec(self, names: Sequence[str] | None) -> PartSpec:
        """What the workers need to write this job's parts."""
        return PartSpec(
            str(self.staging.resolve()),
            self.format,
            self.run,
            self.model,
            self.model_sha256,
            self.top,
            tuple(names) if names is not None else None,
        )

    def parts_so_far(self) -> int:
        """Part files in the staging directory: kept from before and written by this run."""
        if not self.staging.is_dir():
            return 0
        return sum(is_part(path, self.format) for path in self.staging.iterdir())

    def abandon(self) -> None:
        """After a failure before any row was kept or written: no staging directory left."""
        if self.staging.is_dir() and not any(self.staging.iterdir()):
            self.staging.rmdir()

    def finish(self, firsts: set[int]) -> None:
        """Check that every part the workers reported is there (`firsts`: the position of
        each part's first input, which names it), remove anything else (temporary files of a
        worker killed while writing, a part of a call whose rows came back through another,
        parts of an abandoned run still going), then make the staging directory the output
        in one rename, with the marker. The rows are not read again: the driver counted
        each input's row once, and each reported part holds the rows that came with it."""
        expected = {part_name(self.run, first, self.format) for first in firsts}
        missing = expected - {p.name for p in self.staging.iterdir()}
        if missing:
            raise MobileNetV2Error(
                f"{self.staging}: {len(missing)} of this run's parts are not there (e.g. "
                f"{sorted(missing)[0]}): is it on a filesystem every Ray node mounts?"
            )
        self._remove_all_but(expected)
        marker = {"format": self.format, "run": self.run, "model": self.model}
        (self.staging / MARKER).write_text(json.dumps(marker) + "\n")
        if self.output.exists():
            old = self.output.with_name(f".{self.output.name}.old.{self.run}")
            os.replace(self.output, old)
            os.replace(self.staging, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, self.output)

    def _remove_all_but(self, parts: set[str]) -> None:
        """Everything in the staging directory but `parts` and the kept part."""
        for path in self.staging.iterdir():
            if path.name not in parts and path != self.kept_part:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
