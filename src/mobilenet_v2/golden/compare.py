"""Per-layer comparison of the float model and its INT8 conversion.

Both run on the same preprocessed images (the INT8 model's recorded preprocessing, so the
comparison measures quantization alone). Every Keras layer that the INT8 model computes is
paired by its dump name (`block_1_expand_relu`, `predictions_logits`, ...); its INT8 output is
dequantized with the interpreter's own parameters. Over all images together, per layer:
cosine similarity, SQNR = 10 log10(sum f^2 / sum (f - q)^2) in dB, max and mean absolute error.

These errors accumulate through the network (each layer sees INT8 inputs from the layers
before it), unlike TensorFlow's QuantizationDebugger, which feeds each float op the
dequantized inputs of the quantized model and so measures each op's own error.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import MobileNetV2Error, ModelFileError

_CLASSIFIER = ("predictions", "predictions_logits")
_CHUNK = 8  # images per float run: all layer outputs of 8 images take ~250 MB


class _Stats:
    def __init__(self) -> None:
        self.f2 = self.q2 = self.fq = self.err2 = self.abs_err = 0.0
        self.max_abs = 0.0
        self.count = 0

    def add(self, f: np.ndarray, q: np.ndarray) -> None:
        f, q = f.astype(np.float64).ravel(), q.astype(np.float64).ravel()
        err = f - q
        self.f2 += float(f @ f)
        self.q2 += float(q @ q)
        self.fq += float(f @ q)
        self.err2 += float(err @ err)
        self.abs_err += float(np.abs(err).sum())
        self.max_abs = max(self.max_abs, float(np.abs(err).max(initial=0.0)))
        self.count += f.size

    def result(self) -> dict[str, float]:
        norm = math.sqrt(self.f2 * self.q2)
        return {
            "sqnr_db": 10 * math.log10(self.f2 / self.err2) if self.err2 else math.inf,
            "cosine": self.fq / norm if norm else (1.0 if self.f2 == self.q2 else 0.0),
            "max_abs_error": self.max_abs,
            "mean_abs_error": self.abs_err / self.count if self.count else 0.0,
            "rms_float": math.sqrt(self.f2 / self.count) if self.count else 0.0,
        }


def compare(
    images: list[Path],
    model: str | os.PathLike,
    weights: str | None,
    alpha: float | None = None,
    kernels: str = "reference",
    **preprocessing: Any,
) -> dict[str, Any]:
    """Per-layer float vs dequantized INT8 statistics over `images`; layers in network order."""
    from mobilenet_v2.analysis.tensor_map import tflite_table
    from mobilenet_v2.base.provenance import weights_label
    from mobilenet_v2.golden.dump import keras_tensors
    from mobilenet_v2.golden.manifest import dequantize
    from mobilenet_v2.inference.classifier import (
        load_for,
        load_keras,
        preprocessing_record,
    )
    from mobilenet_v2.lite.interpreter import TFLiteClassifier
    from mobilenet_v2.lite.tflite_file import parse_tflite

    if not images:
        raise MobileNetV2Error("no images to compare on")
    quantized = TFLiteClassifier(
        model, xnnpack=False, reference_kernels=kernels == "reference", preserve_all_tensors=True
    )
    table = tflite_table(parse_tflite(quantized.raw, quantized.path))
    interpreter = quantized.interpreter
    details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
    # Tensors that Keras computes too, paired by their shared dump names.
    by_name = {
        t.file_name: t
        for t in table.tensors.values()
        if t.kind in ("input", "activation", "output") and t.keras_layer
    }
    if not by_name:  # map_tflite found no MobileNetV2 layer to pair with the float model
        raise ModelFileError(
            f"{quantized.path}: not a MobileNetV2 model (its operators do not line up with "
            "MobileNetV2's layers), so no layer pairs with the float model"
        )
    height, width = quantized.input_size
    if height != width:  # the float model is built square, as the conversions are
        raise ModelFileError(
            f"{quantized.path}: input is {height}x{width}; compare needs a square input"
        )
    float_model = load_keras(weights, alpha, height)
    float_model.model = converted_from(float_model.model, quantized.raw, quantized.path)
    stats: dict[str, _Stats] = {}
    order: list[str] = []
    agree = 0
    for start in range(0, len(images), _CHUNK):
        batch = np.stack(
            [load_for(quantized, p, **preprocessing) for p in images[start : start + _CHUNK]]
        )
        float_table, float_arrays = keras_tensors(float_model.model, batch)
        float_by_name = {t.file_name: t.index for t in float_table.tensors.values()}
        for i, x in enumerate(batch):
            quantized.invoke(quantized.quantize_input(x[None]))
            for name, t in by_name.items():
                if name not in float_by_name:
                    continue
                f = float_arrays[float_by_name[name]][i]
                params = details[t.index]["quantization_parameters"]
                q = dequantize(interpreter.get_tensor(t.index), params)
                if q.size == f.size + 1 and name in _CLASSIFIER:
                    q = q.reshape(-1)[1:]  # TF-slim's background class
                if q.size != f.size:
                    raise MobileNetV2Error(
                        f"{quantized.path}: tensor {t.name!r} has {q.size} values, the float "
                        f"layer {name!r} {f.size}: not this model's conversion"
                    )
                if name not in stats:
                    stats[name] = _Stats()
                    order.append(name)
                stats[name].add(f, q)
                if name == "predictions":
                    agree += int(np.argmax(f) == np.argmax(q.reshape(-1)))
    layers = []
    for position, name in enumerate(order):
        t = by_name[name]
        layers.append(
            {
                "position": position,
                "layer": name,
                "keras_layer": t.keras_layer,
                "op": t.producer,
                "op_type": next((op.type for op in table.ops if op.index == t.producer), ""),
                "tensor": t.name,
                "shape": list(t.shape),
                "scale": float(t.scales[0]) if t.scales.size else None,
                **stats[name].result(),
            }
        )
    return {
        "model": str(quantized.path),
        "weights": weights_label(weights),
        "kernels": kernels,
        "images": [str(p) for p in images],
        "preprocessing": preprocessing_record(quantized, preprocessing),
        "metadata_notes": list(quantized.notes),  # e.g. none found: defaults used
        # The float model compared with is the one the INT8 model was converted from.
        "float_rewrites": float_rewrites(quantized.raw),
        "top1_agreement": agree / len(images) if "predictions" in stats else None,
        "layers": layers,
    }


def float_rewrites(raw: bytes) -> list[str]:
    """The rewrites of the float model that the INT8 model records (`convert --equalize ...`)
    and that its float counterpart needs redone; bias correction is left out: it makes the
    float model differ on purpose, so that the INT8 one computes like the model before it."""
    from mobilenet_v2.lite.record import read_metadata

    record = read_metadata(raw) or {}
    return [step for step in record.get("steps") or () if step != "bias_correction"]


def converted_from(model: Any, raw: bytes, path: Path) -> Any:
    """The float model that `raw` was converted from: `model` through `float_rewrites(raw)`,
    so that each layer compares with its own rescaled channels. Where a rewrite used the
    calibration images (equalization under ReLU6, absorption), they are drawn again as the
    record says and must be the same images (their SHA-256)."""
    from mobilenet_v2.base.calibration import calibration_images, images_digest
    from mobilenet_v2.lite.record import read_metadata
    from mobilenet_v2.tf.equalization import rewrite

    steps = float_rewrites(raw)
    if not steps:
        return model
    record = read_metadata(raw)
    images = None
    if "absorb_bias" in steps or ("equalize" in steps and "relu" not in steps):
        calibration = record.get("calibration") or {}
        source = calibration.get("source")
        redo = f"{path}: compare redoes its rewrites ({', '.join(steps)}) on its calibration images"
        if not source or not Path(source).is_dir():
            raise MobileNetV2Error(f"{redo}, recorded in {source!r}, which is not a folder here")
        if not calibration.get("sha256"):
            raise MobileNetV2Error(f"{redo}, and records no digest of them: convert it again")
        prep = {**record["preprocessing"], "size": int(model.input_shape[1])}
        images = calibration_images(
            source, calibration["images"], calibration["seed"], prep, force=True, warn=_quiet
        )
        if images_digest(images) != calibration["sha256"]:
            raise MobileNetV2Error(
                f"{redo}, and {source} no longer gives the same ones (images added, removed or "
                "changed since, or decoded by another Pillow)"
            )
    return rewrite(model, steps, images, per_channel=not record.get("per_tensor"))


def _quiet(message: str) -> None:
    """Calibration warnings while redrawing: a changed folder fails on the digest instead."""


# --- Report ----------------------------------------------------------------------------------

_COLUMNS = [
    ("layer", "layer"),
    ("op_type", "op"),
    ("sqnr_db", "SQNR (dB)"),
    ("cosine", "cosine"),
    ("max_abs_error", "max abs err"),
    ("mean_abs_error", "mean abs err"),
    ("rms_float", "float RMS"),
    ("scale", "INT8 scale"),
]


def worst_first(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(report["layers"], key=lambda r: (r["sqnr_db"], r["position"]))


def _table(report: dict[str, Any], fmt: str) -> str:
    from tabulate import tabulate

    rows = []
    for r in worst_first(report):
        rows.append([_fmt(r[key]) for key, _ in _COLUMNS])
    return tabulate(rows, [title for _, title in _COLUMNS], tablefmt=fmt, disable_numparse=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    return "" if value is None else str(value)


def summary(report: dict[str, Any]) -> list[str]:
    final = {r["layer"]: r for r in report["layers"]}
    lines = [
        f"model: {report['model']} ({report['kernels']} kernels)",
        f"float weights: {report['weights']}"
        + (
            f", rewritten as the model was ({', '.join(report['float_rewrites'])})"
            if report.get("float_rewrites")
            else ""
        ),
        f"images: {len(report['images'])}",
    ]
    for name in ("predictions_logits", "predictions"):
        if name in final:
            r = final[name]
            lines.append(
                f"{name}: cosine {r['cosine']:.6f}, SQNR {r['sqnr_db']:.2f} dB, "
                f"max abs error {r['max_abs_error']:.4g}"
            )
    if report["top1_agreement"] is not None:
        lines.append(f"top-1 agreement with the float model: {report['top1_agreement']:.1%}")
    return lines


def markdown(report: dict[str, Any]) -> str:
    head = "\n".join(f"- {line}" for line in summary(report))
    return (
        "# Float vs INT8, layer by layer (worst SQNR first)\n\n"
        f"{head}\n\n![SQNR per layer](sqnr.png)\n\n{_table(report, 'github')}\n"
    )


def html(report: dict[str, Any]) -> str:
    from html import escape

    head = "".join(f"<li>{escape(line)}</li>" for line in summary(report))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Float vs INT8 per layer"
        "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,td:nth-child(2){text-align:left}</style></head><body>"
        "<h1>Float vs INT8, layer by layer (worst SQNR first)</h1>"
        f"<ul>{head}</ul><img src='sqnr.png' alt='SQNR per layer'>"
        f"{_table(report, 'html')}</body></html>\n"
    )


def plot(report: dict[str, Any]) -> bytes:
    """SQNR per layer in network order, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    values = [min(r["sqnr_db"], 100.0) for r in layers]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.16 * len(layers) + 2), 4.8))
    ax.plot(range(len(layers)), values, marker="o", markersize=3, lw=1)
    ax.set_xticks(range(len(layers)), [r["layer"] for r in layers], rotation=90, fontsize=6)
    ax.set_ylabel("SQNR (dB), float vs dequantized INT8")
    ax.set_title(
        f"{Path(report['model']).name}: SQNR per layer over {len(report['images'])} images "
        "(identical tensors drawn at 100 dB)"
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def to_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report with an infinite SQNR (identical tensors) as the string "inf": strict JSON."""
    layers = [
        {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in r.items()}
        for r in report["layers"]
    ]
    return {**report, "layers": layers}


def write_report(report: dict[str, Any], output: str | os.PathLike) -> Path:
    """report.md, report.html, sqnr.png and report.json in `output`, all or nothing."""
    from mobilenet_v2.base.outputs import staged_directory

    out = Path(output)
    with staged_directory(out) as staging:
        (staging / "report.json").write_text(json.dumps(to_json(report), indent=1) + "\n")
        (staging / "report.md").write_text(markdown(report))
        (staging / "report.html").write_text(html(report))
        (staging / "sqnr.png").write_bytes(plot(report))
    return out
