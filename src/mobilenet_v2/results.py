"""Classification results as a file: one row per input image, streamed in batches to
Parquet, CSV or JSON Lines (by the output's suffix), written atomically.

A row: the image's `path`, the `model` (file name) and `model_sha256` (of the model file),
the top-k `synsets`, `names` and `scores` best first, and `error` (None when the image was
classified; then the three lists are empty). CSV has no lists: it spells them out as
`synset_1 … synset_k`, `name_1 …`, `score_1 …` columns. Parquet needs pyarrow (the `ray`
extra); CSV and JSON Lines need nothing beyond the core.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobilenet_v2.errors import InvalidArgumentError, MissingExtraError, MobileNetV2Error
from mobilenet_v2.outputs import atomic_file, check_writable

SUFFIXES = (".parquet", ".csv", ".jsonl")


@dataclass
class Row:
    path: str
    model: str
    model_sha256: str
    synsets: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str | None = None


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def result_format(path: str | os.PathLike) -> str:
    """The output's format from its suffix: parquet, csv or jsonl; anything else refused."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidArgumentError(
            f"{path}: unknown result format {suffix or '(no suffix)'!r}; use one of "
            + ", ".join(SUFFIXES)
        )
    return suffix[1:]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] != "pyarrow":
            raise
        raise MissingExtraError(
            "Parquet results need pyarrow, which is not installed; install it with: "
            "pip install 'mobilenet-v2[ray]' (or write .csv / .jsonl)"
        ) from exc
    return pyarrow


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
    record = {"path": row.path, "model": row.model, "model_sha256": row.model_sha256}
    for kind, values in (("synset", row.synsets), ("name", row.names), ("score", row.scores)):
        for i in range(top):
            value = values[i] if i < len(values) else ""
            # .9g: a float32 score round-trips exactly through the text
            record[f"{kind}_{i + 1}"] = f"{value:.9g}" if kind == "score" and value != "" else value
    record["error"] = row.error or ""
    return record


class ResultWriter:
    """Rows in, batch by batch, to a temporary file beside the output; `close()` renames it
    over the output, so an interrupted run leaves no file that looks complete."""

    def __init__(self, file: Any, fmt: str, top: int) -> None:
        self.fmt, self.top, self.rows = fmt, top, 0
        self._file = file
        if fmt == "parquet":
            pa = _pyarrow()
            self._pa = pa
            self._parquet = pa.parquet.ParquetWriter(file, _schema(pa))
        elif fmt == "csv":
            self._text = io.TextIOWrapper(file, encoding="utf-8", newline="")
            self._csv = csv.DictWriter(self._text, _csv_columns(top))
            self._csv.writeheader()
        else:
            self._text = io.TextIOWrapper(file, encoding="utf-8", newline="\n")

    def write(self, rows: Iterable[Row]) -> None:
        rows = list(rows)
        if not rows:
            return
        if self.fmt == "parquet":
            columns = {name: [getattr(r, name) for r in rows] for name in _schema(self._pa).names}
            self._parquet.write_table(self._pa.table(columns, schema=_schema(self._pa)))
        elif self.fmt == "csv":
            self._csv.writerows(_csv_record(r, self.top) for r in rows)
        else:
            self._text.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
        self.rows += len(rows)

    def finish(self) -> None:
        """Complete the file (Parquet's footer) and let go of it: the atomic file closes it."""
        if self.fmt == "parquet":
            self._parquet.close()
        else:
            self._text.detach()  # flushes; the binary file stays open for `atomic_file`


@contextmanager
def result_writer(path: str | os.PathLike, top: int) -> Iterator[ResultWriter]:
    """A `ResultWriter` for `path`; the file appears, complete, only if the block succeeds."""
    path = Path(path)
    fmt = result_format(path)
    if fmt == "parquet":
        _pyarrow()  # before any work: say which extra is missing now, not at the end
    check_writable(path)  # the directory: before any work, with a one-line error
    with atomic_file(path) as file:
        writer = ResultWriter(file, fmt, top)
        try:
            yield writer
        finally:  # on an error too, so that nothing writes to the file once it is gone
            writer.finish()


def read_results(path: str | os.PathLike) -> list[Row]:
    """The rows of an earlier result file (for --resume), in its own format."""
    path = Path(path)
    fmt = result_format(path)
    try:
        if fmt == "parquet":
            pa = _pyarrow()
            table = pa.parquet.read_table(path)
            return [Row(**record) for record in table.to_pylist()]
        with open(path, encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                return [Row(**json.loads(line)) for line in f if line.strip()]
            return [_row_from_csv(record) for record in csv.DictReader(f)]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise MobileNetV2Error(
            f"{path}: cannot read it as earlier {fmt} results to resume from ({reason})"
        ) from None


def _row_from_csv(record: dict[str, str]) -> Row:
    ranked = {kind: [] for kind in ("synset", "name", "score")}
    for kind, values in ranked.items():
        i = 1
        while f"{kind}_{i}" in record:
            if record[f"{kind}_{i}"] != "":
                values.append(record[f"{kind}_{i}"])
            i += 1
    return Row(
        path=record["path"],
        model=record["model"],
        model_sha256=record["model_sha256"],
        synsets=ranked["synset"],
        names=ranked["name"],
        scores=[float(s) for s in ranked["score"]],
        error=record["error"] or None,
    )
