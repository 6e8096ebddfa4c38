"""The shared 500-image sample as the INT8 benchmarks split it (as tests/test_tflite.py
does): calibration images are those with class index % 4 == 0, held-out ones % 4 == 2."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"
SAMPLE = SHARED / "data" / "imagenet" / "sample"


@dataclass
class SampleSplit:
    images: list[Path]  # all 500, sorted by name
    labels: np.ndarray  # their class indices
    held_out: np.ndarray  # True for the 250 held-out images
    x: np.ndarray  # all 500 preprocessed as the INT8 models are calibrated (mean/std 128)
    preprocessing: dict
    calibration_dir: Path  # a temporary folder of links to the 250 calibration images
    tmp: Path  # the temporary folder holding it: the caller removes it


def sample_split(prefix: str) -> SampleSplit:
    from mobilenet_v2.base.labels import synset_to_index
    from mobilenet_v2.base.preprocess import DEFAULT_PREPROCESSING, load_image
    from mobilenet_v2.tf.convert import INT8_INPUT

    images = sorted(SAMPLE.glob("*.JPEG"))
    labels = np.array([synset_to_index()[p.name.split("_")[0]] for p in images])
    prep = {**DEFAULT_PREPROCESSING, **INT8_INPUT}
    prep.pop("size", None)
    x = np.stack([load_image(p, **prep) for p in images])
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    calibration_dir = tmp / "calibration"
    calibration_dir.mkdir()
    for p, label in zip(images, labels, strict=True):
        if label % 4 == 0:
            (calibration_dir / p.name).symlink_to(p)
    return SampleSplit(images, labels, labels % 4 == 2, x, prep, calibration_dir, tmp)
