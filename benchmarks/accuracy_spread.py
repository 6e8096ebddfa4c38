"""How much the accuracy of each TFLite variant moves with the kernels that run it, and how
far the known regressions move it: the figures the test thresholds are derived from (issue 10).

    python benchmarks/accuracy_spread.py [--out DIR] [--kernels xnnpack builtin reference]

The 500 shared sample images split by class index as tests/test_tflite.py splits them:
calibration = index % 4 == 0 (250), evaluation = index % 4 == 2 (250). Float-input models
that need no calibration are also measured on all 500. Per model and kernel set: top-1,
top-5, top-1 agreement with the TF float model, top-5 overlap with it and the cosine
similarity of the probability vectors (both per image, then averaged). Regressions measured
alongside: INT8 calibrated on the (x - 127.5) / 127.5 grid, our INT8 model fed through a
127.5 mean/std at inference, INT8 calibrated on few images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"
SAMPLE = SHARED / "data" / "imagenet" / "sample"
KERNELS = ("xnnpack", "builtin", "reference")
MODELS = (
    "int8",
    "int8 calibrated at 127.5",
    "int8 fed at 127.5",
    "int8 calibrated on 8",
    "int8 calibrated on 32",
    "float16",
    "dynamic",
    "float32",
    "fixture uint8",
)


def split(directory: Path, keep) -> list[Path]:
    from mobilenet_v2.base.labels import synset_to_index

    directory.mkdir(parents=True, exist_ok=True)
    for image in sorted(SAMPLE.glob("*.JPEG")):
        if keep(synset_to_index()[image.name.split("_")[0]]):
            (directory / image.name).symlink_to(image)
    return sorted(directory.iterdir())


def statistics(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    ranks = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    ref_ranks = np.argsort(-reference, axis=1, kind="stable")[:, :5]
    overlap = [len(set(a) & set(b)) / 5 for a, b in zip(ranks, ref_ranks, strict=True)]
    cosine = (probs * reference).sum(1) / (
        np.linalg.norm(probs, axis=1) * np.linalg.norm(reference, axis=1)
    )
    return {
        "images": len(labels),
        "top1": float((ranks[:, 0] == labels).mean()),
        "top5": float((ranks == labels[:, None]).any(1).mean()),
        "agreement_top1": float((ranks[:, 0] == ref_ranks[:, 0]).mean()),
        "top5_overlap": float(np.mean(overlap)),
        "cosine": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/mobilenet_v2_spread")
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), help="rows to measure"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from mobilenet_v2.analysis.evaluate import label_of
    from mobilenet_v2.base.machine import describe, machine_info
    from mobilenet_v2.inference.classifier import load_for, load_keras
    from mobilenet_v2.lite.interpreter import TFLiteClassifier
    from mobilenet_v2.tf.convert import convert_file

    tmp = Path(tempfile.mkdtemp(prefix="spread-"))
    calibration = tmp / "calibration"
    split(calibration, lambda i: i % 4 == 0)
    evaluation = split(tmp / "evaluation", lambda i: i % 4 == 2)
    everything = sorted(SAMPLE.glob("*.JPEG"))
    sets = {"eval250": evaluation, "all500": everything}

    def make(name: str, **kwargs) -> Path:
        path = out / f"{name}.tflite"
        if not path.exists():
            start = time.perf_counter()
            convert_file(path, str(WEIGHTS), calibration_dir=calibration, **kwargs)
            print(f"converted {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return path

    # name -> (the model, made on demand; preprocessing overrides; image sets)
    models = {
        "int8": (lambda: make("int8"), {}, ("eval250",)),
        "int8 calibrated at 127.5": (
            lambda: make("int8_127", preprocessing={"mean": 127.5, "std": 127.5}),
            {},
            ("eval250",),
        ),
        "int8 fed at 127.5": (lambda: make("int8"), {"mean": 127.5, "std": 127.5}, ("eval250",)),
        "int8 calibrated on 8": (lambda: make("int8_cal8", calibration_size=8), {}, ("eval250",)),
        "int8 calibrated on 32": (
            lambda: make("int8_cal32", calibration_size=32),
            {},
            ("eval250",),
        ),
        "float16": (
            lambda: make("float16", quantize="float16", io_type="float32"),
            {},
            tuple(sets),
        ),
        "dynamic": (
            lambda: make("dynamic", quantize="dynamic", io_type="float32"),
            {},
            tuple(sets),
        ),
        "float32": (lambda: make("float32", quantize="none", io_type="float32"), {}, tuple(sets)),
        "fixture uint8": (lambda: WEIGHTS, {}, ("eval250", "all500")),
    }
    assert tuple(models) == MODELS
    float_model = load_keras(str(WEIGHTS))
    cache: dict = {}

    def predict(classifier, images: list[Path], overrides: dict) -> np.ndarray:
        return np.concatenate(
            [
                classifier.predict(np.stack([load_for(classifier, p, **overrides) for p in chunk]))
                for chunk in (images[i : i + 50] for i in range(0, len(images), 50))
            ]
        )

    reference = {name: predict(float_model, images, {}) for name, images in sets.items()}
    labels = {name: np.array([label_of(p) for p in images]) for name, images in sets.items()}
    rows = [
        {"model": "TF float32", "kernels": "tf", "set": name, **statistics(p, p, labels[name])}
        for name, p in reference.items()
    ]
    for name in args.models:
        made, overrides, set_names = models[name]
        path = made()
        for kernels in args.kernels:
            if kernels == "reference" and name in ("float16", "float32"):
                continue  # float arithmetic: no integer rounding for kernels to differ in
            classifier = TFLiteClassifier(
                path, xnnpack=kernels == "xnnpack", reference_kernels=kernels == "reference"
            )
            for set_name in set_names:
                key = (path, kernels, set_name, tuple(sorted(overrides.items())))
                start = time.perf_counter()
                probs = cache.get(key)
                if probs is None:
                    probs = cache[key] = predict(classifier, sets[set_name], overrides)
                stats = statistics(probs, reference[set_name], labels[set_name])
                rows.append({"model": name, "kernels": kernels, "set": set_name, **stats})
                print(
                    f"{name:26} {kernels:9} {set_name}: top-1 {stats['top1']:.3f} agreement "
                    f"{stats['agreement_top1']:.3f} cosine {stats['cosine']:.4f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                )
    report = {"machine": machine_info(), "rows": rows}
    (out / "spread.json").write_text(json.dumps(report, indent=1))
    print(markdown(rows))
    print(f"\nMeasured on: {describe()}")


def markdown(rows: list[dict]) -> str:
    from mobilenet_v2.base.outputs import markdown_table

    headers = ["model", "kernels", "images", "top-1", "top-5", "agreement", "top-5 overlap"]
    headers += ["cosine", "min cosine"]
    table = [
        [
            r["model"],
            r["kernels"],
            r["images"],
            f"{100 * r['top1']:.1f} %",
            f"{100 * r['top5']:.1f} %",
            f"{100 * r['agreement_top1']:.1f} %",
            f"{r['top5_overlap']:.3f}",
            f"{r['cosine']:.4f}",
            f"{r['cosine_min']:.3f}",
        ]
        for r in rows
    ]
    return markdown_table(headers, table, text_columns=2)


if __name__ == "__main__":
    main()
