"""Results as a directory of part files, written where the rows are computed: by the Ray
engine's workers, one part per batch, so that no row travels to the driver and the driver
holds one byte per input.

`--output rows/` (a name that ends in "/", or a directory that exists) with `--engine ray`:
the parts are Parquet, or CSV or JSON Lines when the directory's name ends in .csv or
.jsonl (`rows.csv/`), each with the columns of a single result file
(`mobilenet_v2.inference.results`). While the job runs they go to a staging directory beside
the output (`.NAME.partial/`); at the end the driver checks that the parts hold exactly one
row per input and renames the staging directory to the output, so an interrupted job leaves
no directory that looks complete.

A part is written whole or not at all (a temporary name, then a rename) and is named by the
run and the position of its batch's first input, so a batch that Ray runs again after its
worker died replaces its own part instead of adding rows. `--resume` reads the parts of the
output or of an interrupted job's staging directory: the rows of classified images are
kept, gathered into one part, and only the other inputs are classified.
"""

from __future__ import annotations

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
    path_key,
    read_rows,
    write_results,
)

KEPT_PART = "kept"  # the part that gathers what --resume keeps


def is_parts_output(output: str | os.PathLike) -> bool:
    """Whether `output` names a directory of part files: it ends in "/" or is a directory."""
    return str(output).endswith(("/", os.sep)) or Path(output).is_dir()


def parts_format(output: str | os.PathLike) -> str:
    """The parts' format from the directory's name: .csv or .jsonl, else Parquet."""
    suffix = Path(str(output).rstrip("/" + os.sep)).suffix.lower()
    return suffix[1:] if suffix in SUFFIXES else "parquet"


def staging_path(output: str | os.PathLike) -> Path:
    path = Path(str(output).rstrip("/" + os.sep))
    return path.with_name(f".{path.name}.partial")


def check_parts_output(output: str | os.PathLike) -> None:
    """Before any work: the format's library is there and the parts can be written beside
    where the output goes."""
    directory = Path(str(output).rstrip("/" + os.sep))
    if directory.exists() and not directory.is_dir():
        raise MobileNetV2Error(f"{directory}: exists and is not a directory")
    check_output(directory.with_name(f".{directory.name}.check.{parts_format(output)}"))


def read_parts(folder: Path, fmt: str) -> list[Row]:
    """Every row of the parts in `folder`; a part cut short by a kill counts only its whole
    rows (a text part's last line without its line end is not one; a Parquet part cut short
    cannot be read and counts none)."""
    rows: list[Row] = []
    for part in sorted(folder.glob(f"*.{fmt}")):
        if fmt == "parquet":
            try:
                rows += read_rows(part, fmt)
            except MobileNetV2Error:
                continue  # cut short: its images are classified again
            continue
        data = part.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if whole != data:
            part.write_bytes(whole)  # what follows the last line end is a cut record
        rows += read_rows(part, fmt, partial=True)
    return rows


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
        return Path(self.staging, f"part-{self.run}-{first:010d}.{self.format}")


class PartsWriter:
    """The driver's side of a job whose workers write the rows: what `--resume` keeps, the
    staging directory the workers write into (`staging`, `run`: the part names' prefix), and
    the check and rename at the end."""

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
        self.kept: list[Row] = []

    def start(self, sources: Sequence[Source]) -> list[Source]:
        """The sources still to classify, each once. The staging directory then holds the
        kept rows in one part and nothing else: that part is written first and the parts
        it gathers are removed after it, so an interruption in between leaves rows twice,
        never none (the next `--resume` keeps each once)."""
        earlier: list[Row] = []
        if self.resume:
            for folder in (self.output, self.staging):
                if folder.is_dir():
                    earlier += read_parts(folder, self.format)
        self.kept = classified_rows_to_keep(
            earlier, self.output, self.model, self.model_sha256, self.top
        )
        if not self.resume:
            shutil.rmtree(self.staging, ignore_errors=True)
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
            kept_part = self.staging / f"{KEPT_PART}-{self.run}.{self.format}"
            if self.kept:
                write_results(kept_part, self.kept, self.top)
            for part in self.staging.iterdir():
                if part != kept_part:
                    part.unlink()
        except OSError as exc:
            raise MobileNetV2Error(
                f"{self.staging}: cannot write ({exc.strerror or exc})"
            ) from None
        done = {r.path for r in self.kept}
        todo = []
        for source in sources:
            key = path_key(source)
            if key not in done:
                done.add(key)
                todo.append(source)
        return todo

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

    def finish(self, sources: Sequence[Source]) -> None:
        """Check that the parts hold one row per input, then make them the output in one
        rename (an earlier output of the same name goes, as a single file's would)."""
        rows = read_parts(self.staging, self.format)
        keys = [path_key(r.path) for r in rows]
        wanted = {path_key(s) for s in sources}
        if len(set(keys)) != len(keys) or not wanted <= set(keys):
            doubled = len(keys) - len(set(keys))
            raise RuntimeError(  # a bug, not a user error: the CLI reports it as internal
                f"{self.staging}: {doubled} rows doubled, {len(wanted - set(keys))} inputs "
                "without a row"
            )
        if self.output.exists():
            old = self.output.with_name(f".{self.output.name}.old.{self.run}")
            os.replace(self.output, old)
            os.replace(self.staging, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, self.output)
