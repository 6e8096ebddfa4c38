"""The layers-to-tensor map written out: one row per (operator, tensor) pair as CSV, the
per-layer Markdown table and the Excel workbook that `inspect` and a golden set's
`manifest.csv` give. The tables themselves are built in `analysis.tensor_map`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from mobilenet_v2.analysis.tensor_map import ModelTable, OpInfo

CSV_COLUMNS = [
    "op_index",
    "op_type",
    "keras_layer",
    "role",
    "tensor_index",
    "tensor_name",
    "file_name",
    "dtype",
    "shape",
    "layout",
    "scales",
    "zero_points",
    "quantized_dimension",
    "macs",
    "params",
]


def tensor_rows(table: ModelTable) -> list[dict[str, Any]]:
    """One row per (operator, tensor) pair: the graph's inputs first (op_index -1), then each
    op's inputs, weights and outputs (MACs and params on its last output row), then tensors
    that no op names (an interpreter's scratch tensors; op_index -1)."""
    rows = []

    def row(op: OpInfo | None, role: str, index: int) -> dict[str, Any]:
        t = table.tensors[index]
        return {
            "op_index": op.index if op else -1,
            "op_type": op.type if op else "",
            "keras_layer": op.keras_layer if op else t.keras_layer,
            "role": role,
            "tensor_index": t.index,
            "tensor_name": t.name,
            "file_name": t.file_name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "layout": t.layout,
            "scales": [float(s) for s in t.scales],
            "zero_points": [int(z) for z in t.zero_points],
            "quantized_dimension": int(t.quantized_dimension) if t.scales.size else "",
            "macs": "",
            "params": "",
        }

    for t in table.tensors.values():
        if t.kind == "input":
            rows.append(row(None, "model_input", t.index))
    for op in table.ops:
        rows += [row(op, "input", i) for i in op.inputs]
        rows += [row(op, table.tensors[i].kind, i) for i in op.weights]
        outs = [row(op, "output", i) for i in op.outputs]
        if outs:
            outs[-1]["macs"], outs[-1]["params"] = op.macs, op.params
        rows += outs
    listed = {r["tensor_index"] for r in rows}
    rows += [row(None, t.kind, t.index) for t in table.tensors.values() if t.index not in listed]
    return rows


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(v) for k, v in r.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """Lists as JSON in one cell: exact, and readable by any CSV or JSON reader."""
    return json.dumps(value) if isinstance(value, list) else value


def markdown(table: ModelTable) -> str:
    from tabulate import tabulate

    rows = []
    for op in table.ops:
        outs = "<br>".join(table.tensors[i].describe() for i in op.outputs)
        weights = "<br>".join(table.tensors[i].describe() for i in op.weights)
        rows.append(
            [op.index, op.type, op.keras_layer, outs, weights, f"{op.macs:,}", f"{op.params:,}"]
        )
    totals = table.totals
    rows.append(
        [
            "",
            "**total**",
            "",
            "",
            f"kernel weights {totals['weights']:,}",
            f"{totals['macs']:,}",
            f"{totals['params']:,}",
        ]
    )
    headers = ["#", "op", "Keras layer", "output", "weights", "MACs", "params"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True) + "\n"


def xlsx_bytes(table: ModelTable) -> bytes:
    """A workbook: `ops` (one row per op), `tensors` (one row per op and tensor), `totals`."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    ops = book.active
    ops.title = "ops"
    ops.append(
        [
            "op",
            "type",
            "Keras layer",
            "inputs",
            "outputs",
            "weights",
            "MACs",
            "kernel weights",
            "params",
        ]
    )
    for op in table.ops:
        ops.append(
            [
                op.index,
                op.type,
                op.keras_layer,
                "\n".join(table.tensors[i].describe() for i in op.inputs),
                "\n".join(table.tensors[i].describe() for i in op.outputs),
                "\n".join(table.tensors[i].describe() for i in op.weights),
                op.macs,
                op.kernel_weights,
                op.params,
            ]
        )
    sheet = book.create_sheet("tensors")
    sheet.append(CSV_COLUMNS)
    for r in tensor_rows(table):
        sheet.append([_xlsx_cell(r[c]) for c in CSV_COLUMNS])
    totals = book.create_sheet("totals")
    totals.append(["model", table.source])
    for key, value in table.totals.items():
        totals.append([key, value])
    for ws in (ops, sheet):
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
        for column in range(1, ws.max_column + 1):
            width = max(
                len(str(c.value or "").split("\n")[0]) for c in ws[get_column_letter(column)]
            )
            ws.column_dimensions[get_column_letter(column)].width = min(60, max(8, width + 2))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(value: Any) -> Any:
    text = _cell(value)
    # A cell holds at most 32,767 characters; 1280 float scales fit, but stay safe.
    return text if not isinstance(text, str) or len(text) < 32000 else text[:31990] + " …]"
