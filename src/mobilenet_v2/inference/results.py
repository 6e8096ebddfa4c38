"""Classification results as a file: one row per input image in Parquet, CSV or JSON Lines
(by the output's suffix), written atomically, and resumable after an interruption.

A row: the image's `path` (its absolute path, or its URL: `path_key`), the `model` and
`model_sha256` (of the file its weights came from), the top-k `synsets`, `names` and `scores`
best first, and `error` (None when the image was classified; then the lists are empty). CSV
has no lists: it spells them out as `synset_1 … synset_k`, `name_1 …`, `score_1 …` columns.

While a run goes on, its rows are appended to a journal beside the output
(`.NAME.partial.jsonl`, flushed every batch); the output itself is written from the earlier
rows and the journal at the end, through a staging name and a rename, and then the journal is
removed. An interrupted run therefore leaves no output that looks complete, and a journal that
`--resume` continues from. Parquet needs pyarrow (the `parquet` extra, part of `dev`); CSV
and JSON Lines need nothing beyond the core.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.extras import pyarrow_for
from mobilenet_v2.base.labels import named
from mobilenet_v2.base.outputs import atomic_file, check_writable
from mobilenet_v2.base.sources import Source, is_url

SUFFIXES = (".parquet", ".csv", ".jsonl")
ROW_GROUP = 65_536  # Parquet rows per row group: a few groups for a million images


@dataclass
class Row:
    path: str
    model: str
    model_sha256: str
    synsets: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str | None = None


COLUMNS = [f.name for f in fields(Row)]


def path_text(path: str | os.PathLike) -> str:
    """A file name as text every format can hold: bytes that are not UTF-8 (possible on
    POSIX) are kept visible as \\xNN escapes instead of failing the write."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_key(path: str | os.PathLike) -> str:
    """What identifies an input across runs, and what a result file's `path` holds: a URL as
    it is, a local file's absolute path as text (`..` folded, symlinks not followed). Rows
    store it resolved against the folder of the run that classified them, so that a
    `--resume` from another folder matches inputs that name the same files."""
    if is_url(path):
        return str(path)
    return path_text(os.path.abspath(os.fsencode(path)))


def result_format(path: str | os.PathLike) -> str | None:
    """The output's format from its suffix: parquet, csv or jsonl; None for anything else."""
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in SUFFIXES else None


def journal_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.partial.jsonl")


def check_output(path: str | os.PathLike) -> None:
    """Before any work: the format's library is there and the output can be written."""
    if result_format(path) == "parquet":
        _pyarrow()
    check_writable(path)


def _pyarrow() -> Any:
    return pyarrow_for("Parquet results", "or write .csv / .jsonl")


def _schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("path", pa.string()),
            ("model", pa.string()),
            ("model_sha256", pa.string()),
            ("synsets", pa.list_(pa.string())),
            ("names", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float32())),
            ("error", pa.string()),
        ]
    )


def _csv_columns(top: int) -> list[str]:
    ranked = [f"{kind}_{i}" for kind in ("synset", "name", "score") for i in range(1, top + 1)]
    return ["path", "model", "model_sha256", *ranked, "error"]


def _csv_record(row: Row, top: int) -> dict[str, Any]:
    record: dict[str, Any] = {"path": row.path, "model": row.model}
    record["model_sha256"] = row.model_sha256
    for kind, values in (("synset", row.synsets), ("name", row.names), ("score", row.scores)):
        for i in range(top):
            value = values[i] if i < len(values) else ""
            # .9g: a float32 score round-trips exactly through the text
            record[f"{kind}_{i + 1}"] = f"{value:.9g}" if kind == "score" and value != "" else value
    record["error"] = row.error or ""
    return record


class Journal:
    """Rows appended as JSON Lines and flushed per batch, so that an interrupted run's work
    survives for `--resume`."""

    def __init__(self, output: str | os.PathLike) -> None:
        self.output = Path(output)
        self.path = journal_path(output)
        self._file = None

    def append(self, rows: Iterable[Row]) -> None:
        text = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
        try:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            raise MobileNetV2Error(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def rewrite(self, rows: Iterable[Row]) -> None:
        """Start the journal over with `rows` (replacing any earlier one in one rename)."""
        self.close()
        staging = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(staging, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
            os.replace(staging, self.path)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise MobileNetV2Error(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def rows(self) -> list[Row]:
        return read_rows(self.path, "jsonl", partial=True) if self.path.exists() else []

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class ResultWriter:
    """The one writer of a result file: what `--resume` keeps from an earlier run, the
    journal that each batch's rows are appended to, and the output written at the end in
    the inputs' order. `start(sources)` says which sources are left to classify."""

    def __init__(
        self,
        output: str | os.PathLike,
        model: str,
        model_sha256: str,
        top: int,
        resume: bool = False,
    ) -> None:
        self.output = Path(output)
        self.journal = Journal(self.output)
        self.model, self.model_sha256, self.top = model, model_sha256, top
        self.kept: list[Row] = self._earlier(self.output, top) if resume else []
        self.written = 0  # rows appended by this run

    def _earlier(self, output: Path, top: int) -> list[Row]:
        """What the output and an interrupted run's journal hold, minus failures, each by
        its input's identity (a file written before rows held it: its relative paths are
        resolved here, against the folder they were written from, as they were matched)."""
        rows = read_results(output) + self.journal.rows()
        return classified_rows_to_keep(rows, output, self.model, self.model_sha256, top)

    def start(self, sources: Sequence[Source]) -> list[Source]:
        """The sources still to classify, each once however often or however spelled it
        was given; the journal starts over with the rows kept."""
        todo = still_to_classify(sources, self.kept)
        self.journal.rewrite(self.kept)
        return todo

    def append(self, rows: list[Row]) -> None:
        """Rows journaled by their inputs' identity: a relative path is made absolute here,
        while the folder it is relative to is known."""
        self.journal.append(replace(row, path=path_key(row.path)) for row in rows)
        self.written += len(rows)

    @property
    def rows_so_far(self) -> int:
        """Rows the journal holds: kept from before and written by this run."""
        return self.written + len(self.kept)

    def close(self) -> None:
        """After an interruption: the journal stays for `--resume`."""
        self.journal.close()

    def finish(self, sources: Sequence[Source]) -> None:
        """The output from the journal, atomically, then no journal: in the inputs' order
        (rows kept from an earlier run for other inputs first)."""
        self.journal.close()
        order: dict[str, int] = {}
        for i, source in enumerate(sources):  # an input given twice: where it first appears
            order.setdefault(path_key(source), i)
        rows = sorted(self.journal.rows(), key=lambda r: order.get(r.path, -1))  # keyed
        write_results(self.output, rows, self.top)
        self.journal.remove()


def still_to_classify(sources: Sequence[Source], kept: list[Row]) -> list[Source]:
    """The sources without a `kept` row (which hold their `path_key`), each once however
    often or however spelled it was given."""
    done = {r.path for r in kept}
    todo = []
    for source in sources:
        key = path_key(source)
        if key not in done:
            done.add(key)
            todo.append(source)
    return todo


def ranked_row(
    path: str,
    model: str,
    model_sha256: str,
    error: str,
    classes: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str] | None = None,
) -> Row:
    """An input's row: the classes (best first, -1 for none) that score above 0 with their
    names (`names`: a model's own labels; None: ImageNet's), or the `error` that kept it
    from being classified ("" when there was none)."""
    row = Row(path, model, model_sha256)
    if error:
        row.error = error
        return row
    ranked = named(classes[classes >= 0], scores[classes >= 0], names)
    # A quantized output rounds every unlikely class to exactly 0; their order would be
    # the class index (tench, goldfish, ...): they are not ranked.
    shown = [(synset, name, score) for synset, name, score in ranked if score > 0]
    row.synsets = [synset for synset, _, _ in shown]
    row.names = [name for _, name, _ in shown]
    row.scores = [score for _, _, score in shown]
    return row


def classified_rows_to_keep(
    rows: list[Row], output: Path, model: str, model_sha256: str, top: int
) -> list[Row]:
    """What `--resume` keeps of an earlier run's `rows`: one per input by its identity,
    failures left out (they are classified again); rows of another model, or of a wider
    top-k than `top`, are refused in one line naming `output`."""
    kept = {path_key(r.path): replace(r, path=path_key(r.path)) for r in rows}
    earlier = [r for r in kept.values() if r.error is None]
    identity = (model, model_sha256)
    other = next((r for r in earlier if (r.model, r.model_sha256) != identity), None)
    if other is not None:
        raise MobileNetV2Error(
            f"{output}: holds results of another model ({other.model}, sha256 "
            f"{other.model_sha256[:12]}…); write to a new file, or drop --resume"
        )
    widest = max((len(r.synsets) for r in earlier), default=0)
    if widest > top:
        raise MobileNetV2Error(
            f"{output}: holds top-{widest} results; resume with --top {widest} or more"
        )
    return earlier


def write_results(path: str | os.PathLike, rows: list[Row], top: int) -> None:
    """All rows to `path` in its format, atomically; a failure names the output."""
    path = Path(path)
    fmt = result_format(path)
    try:
        with atomic_file(path) as file:
            if fmt == "parquet":
                pa = _pyarrow()
                schema = _schema(pa)
                with pa.parquet.ParquetWriter(file, schema) as writer:
                    for start in range(0, max(len(rows), 1), ROW_GROUP):
                        chunk = rows[start : start + ROW_GROUP]
                        columns = {name: [getattr(r, name) for r in chunk] for name in COLUMNS}
                        writer.write_table(pa.table(columns, schema=schema))
            else:
                text = io.TextIOWrapper(file, encoding="utf-8", newline="")
                if fmt == "csv":
                    width = max([top, *(len(r.synsets) for r in rows)])
                    table = csv.DictWriter(text, _csv_columns(width))
                    table.writeheader()
                    table.writerows(_csv_record(r, width) for r in rows)
                else:
                    text.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
                text.detach()  # flushed; the binary file stays open for `atomic_file`
    except OSError as exc:
        raise MobileNetV2Error(f"{path}: cannot write ({exc.strerror or exc})") from None


def read_results(path: str | os.PathLike) -> list[Row]:
    """The rows of an earlier result file (for --resume), in its own format; none when the
    file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return read_rows(path, result_format(path))


def read_rows(path: Path, fmt: str | None, partial: bool = False) -> list[Row]:
    """Rows from a file of format `fmt`; anything that is not such a file is a one-line
    error naming it. `partial`: a journal, whose last line may have been cut by a kill."""

    def refuse(reason: str) -> MobileNetV2Error:
        return MobileNetV2Error(f"{path}: not {fmt} results to resume from ({reason})")

    try:
        if fmt == "parquet":
            pa = _pyarrow()
            try:
                table = pa.parquet.read_table(path)
            except (pa.ArrowException, ValueError) as exc:
                raise refuse(str(exc).split("\n")[0]) from None
            missing = [c for c in COLUMNS if c not in table.column_names]
            if missing:
                raise refuse(f"no column {missing[0]!r}")
            return [Row(**{c: record[c] for c in COLUMNS}) for record in table.to_pylist()]
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except OSError as exc:
        raise MobileNetV2Error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if fmt == "jsonl":
        # Lines end at "\n" only: JSON escapes every control character below 0x20, but a file
        # name's U+2028, U+2029 or U+0085 stays as it is, and `str.splitlines()` would end a
        # line there.
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # what follows the last "\n"
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if partial and number == len(lines):
                    break  # the line a kill cut short: that image is classified again
                raise refuse(f"line {number} is not JSON") from None
            if not isinstance(record, dict) or set(COLUMNS) - set(record):
                raise refuse(f"line {number} is not a result row")
            rows.append(Row(**{c: record[c] for c in COLUMNS}))
        return rows
    # The csv module splits the records itself, so that a quoted field keeps its line breaks
    # as written ("\n", "\r\n", "\r"): a file name reads back exactly.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    needed = ("path", "model", "model_sha256", "error")
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise refuse(f"no column {missing[0]!r}")
    # line_num: where the record ends in the file, a quoted line break counted
    return [_row_from_csv(path, record, reader.line_num) for record in reader]


def _row_from_csv(path: Path, record: dict[str, str], number: int) -> Row:
    ranked: dict[str, list[str]] = {kind: [] for kind in ("synset", "name", "score")}
    for kind, values in ranked.items():
        i = 1
        while f"{kind}_{i}" in record:
            if record[f"{kind}_{i}"]:
                values.append(record[f"{kind}_{i}"])
            i += 1
    try:
        scores = [float(s) for s in ranked["score"]]
    except ValueError:
        raise MobileNetV2Error(
            f"{path}: not csv results to resume from (line {number}: a score that is not a number)"
        ) from None
    return Row(
        path=record["path"],
        model=record["model"],
        model_sha256=record["model_sha256"],
        synsets=ranked["synset"],
        names=ranked["name"],
        scores=scores,
        error=record["error"] or None,
    )
