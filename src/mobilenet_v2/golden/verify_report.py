"""`verify`'s report: the table (one row per tensor, execution order, the first divergence
marked), the summary lines, and report.md / report.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.outputs import markdown_table, staged_directory
from mobilenet_v2.golden.verify import Report, TensorResult


def _fmt_diff(value: float, unit: str) -> str:
    if unit == "LSB":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
    return f"{value:.2e}" if value else "0"


def table_rows(report: Report) -> list[list[str]]:
    first = report.first_divergence
    rows = []
    for r in report.results:
        status = {"ok": "ok", "differs": f"{r.beyond} beyond"}.get(r.status, r.status)
        if r is first:
            status += "  <- first divergence"
        rows.append(
            [
                r.name,
                r.op,
                "x".join(map(str, r.shape)),
                r.layout
                if r.layout == r.expected_layout
                else f"{r.layout} (not {r.expected_layout})",
                f"{r.exact}/{r.elements}",
                _fmt_diff(r.max_diff, r.unit),
                _fmt_diff(r.mean_diff, r.unit),
                r.unit,
                status,
            ]
        )
    return rows


HEADERS = [
    "tensor",
    "op",
    "golden shape",
    "layout",
    "exact",
    "max |d|",
    "mean |d|",
    "unit",
    "status",
]


def summary(report: Report) -> list[str]:
    """The verdict, the first diverging tensor with its first bad element, and what was left
    out, as lines."""
    ok = sum(r.passed for r in report.results)
    tol = f"{report.tolerance} LSB, float {report.float_tolerance:g} relative"
    lines = [f"{ok} of {len(report.results)} tensors within tolerance ({tol})"]
    lines += [f"note: {note}" for note in report.notes]
    first = report.first_divergence
    if first is not None:
        lines.append(f"first divergence: {first.name} ({first.op or first.kind}): {_why(first)}")
        if first.first:
            e = first.first
            lines.append(
                f"  first element beyond tolerance: {e['index']}: golden {e['golden']}, "
                f"theirs {e['theirs']}"
            )
            if e.get("trace"):
                lines.append(f"  explain it: {e['trace']}")
    if report.missing:
        lines.append(
            f"{len(report.missing)} golden tensors have no file in {report.theirs} (not checked)"
        )
    if report.ignored:
        shown = ", ".join(report.ignored[:5]) + (", ..." if len(report.ignored) > 5 else "")
        lines.append(f"{len(report.ignored)} files match no golden tensor (ignored): {shown}")
    return lines


def _why(r: TensorResult) -> str:
    if r.status == "differs":
        return (
            f"{r.beyond} of {r.elements} elements beyond tolerance, max |d| "
            f"{_fmt_diff(r.max_diff, r.unit)} {r.unit}, mean {_fmt_diff(r.mean_diff, r.unit)}"
        )
    if r.status == "layout" and r.beyond == 0:
        return f"{r.note} (the values match once transposed)"
    return r.note


def markdown(report: Report) -> str:
    head = "\n".join(f"- {line.strip()}" for line in summary(report))
    table = markdown_table(HEADERS, table_rows(report), text_columns=4)
    return (
        f"# verify: {report.theirs} against {report.golden}\n\n{head}\n\n"
        f"Tensors in execution order; |d| in quantization steps (LSB) for integer tensors, "
        f"relative to the tensor's largest magnitude for float ones.\n\n{table}\n"
    )


def write_report(report: Report, directory: str | os.PathLike) -> Path:
    """report.md and report.json into `directory`, both or neither."""
    with staged_directory(directory) as staging:
        (staging / "report.md").write_text(markdown(report))
        data = _json_safe(report.to_json())
        (staging / "report.json").write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return Path(directory)


def _json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as the strings "nan", "inf", "-inf": strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
