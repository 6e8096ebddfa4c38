"""How to feed a `.tflite` classifier and name its classes: the policy that combines the
standard TFLite metadata (`model_metadata`), our own record (`record`) and the input's
quantization into one preprocessing, with notes on what was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.errors import MissingExtraError, ModelFileError
from mobilenet_v2.base.preprocess import (
    DEFAULT_PREPROCESSING,
    check_normalization,
    check_resize,
)
from mobilenet_v2.lite import model_metadata
from mobilenet_v2.lite.model_metadata import StandardMetadata
from mobilenet_v2.lite.record import read_metadata

# What a caller gives where a model's own normalization cannot be applied.
GIVE = "give one mean and std for all channels (--input-mean and --input-std; mean= and std=)"


@dataclass(frozen=True)
class ModelDescription:
    """How to feed a classifier and name its classes, from its metadata (standard first)."""

    preprocessing: dict
    label_offset: int  # 1 for TF-slim's 1001 classes (index 0 = background)
    labels: tuple[str, ...] | None  # the model's own name per class (offset applied), or None
    standard: StandardMetadata | None
    notes: tuple[str, ...]  # what a user should know: defaults used, metadata ignored
    # Why the preprocessing's mean and std are None (a normalization we cannot apply), and
    # which flags to give instead; None when they are set.
    normalization_problem: str | None = None


def describe_model(
    model_bytes: bytes, path: str | Path, grid: dict[str, float], classes: int | None
) -> ModelDescription:
    """Read both metadata: the standard one and our own record (`read_preprocessing`).
    A model without metadata gets the defaults, with a note saying so; a label file that
    does not fit the output is ignored, with a note."""
    notes = []
    try:
        # Through its module: a reader replaced there (as a LiteRT-only install's test does)
        # is the one used.
        standard = model_metadata.read_standard_metadata(model_bytes, path)
    except MissingExtraError:
        standard = None
        notes.append(
            f"{path}: its standard TFLite metadata needs MediaPipe's schema to be read "
            "(pip install 'mobilenet-v2[metadata]'); using our own record, if it has one, "
            "else the defaults and ImageNet's class names"
        )
    if standard is not None:
        notes += [f"{path}: {problem}; ignored" for problem in standard.problems]
    preprocessing = read_preprocessing(model_bytes, path, grid, standard)
    problem = None
    unreadable = standard.normalization_problem if standard is not None else None
    if preprocessing["mean"] is None and unreadable:
        problem = f"{path}: {unreadable}, so the float input's mean and std are unknown; {GIVE}"
    elif preprocessing["mean"] is None:
        problem = (
            f"{path}: its metadata normalizes each channel differently (mean "
            f"[{_shown(standard.mean)}], std [{_shown(standard.std)}]), which needs one value "
            f"for all channels here; {GIVE}"
        )
    elif unreadable:  # the input's pixel grid or our own record says it instead
        notes.append(f"{path}: {unreadable}; ignored")
    offset = 1 if classes == 1001 else 0
    labels = standard.labels if standard is not None else None
    record = read_metadata(model_bytes)
    own = record.get("labels") if isinstance(record, dict) else None
    if labels is None and isinstance(own, list) and len(own) != 1000 and len(own) == classes:
        # A model trained on a user's classes (`mobilenet-v2 train`): our record names them
        # too, so that an install without MediaPipe's schema still does.
        labels = tuple(str(label) for label in own)
    if standard is not None and standard.label_problem:
        notes.append(f"{path}: {standard.label_problem}; using ImageNet's class names")
    if labels is not None and classes is not None and len(labels) != classes:
        notes.append(
            f"{path}: its label file {standard.label_file} has {len(labels)} lines for "
            f"{classes} classes; using ImageNet's class names"
        )
        labels = None
    if standard is None and record is None and not notes:
        notes.append(f"{path}: no metadata; using the default preprocessing and labels")
    return ModelDescription(
        preprocessing=preprocessing,
        label_offset=offset,
        labels=None if labels is None else labels[offset:],
        standard=standard,
        notes=tuple(notes),
        normalization_problem=problem,
    )


def read_preprocessing(
    model_bytes: bytes,
    path: str | os.PathLike,
    grid: dict[str, float] | None = None,
    standard: StandardMetadata | None = None,
) -> dict[str, Any]:
    """The preprocessing a model records, over the defaults, checked: a record that is not
    JSON, not an object, or cannot normalize pixels is a ModelFileError naming the file.

    The standard metadata's NormalizationOptions (`standard`, a `StandardMetadata`) come
    first for float inputs. An 8-bit input gets `grid`, the exact pixel grid of its
    quantization (`pixel_grid`), as MediaPipe and the Task Library feed such models raw
    pixels whatever their metadata says: the fixture's mean and std of 127.5 would shift half
    the levels by one step and merge 254 with 255. Our own record (crop, resize; the mean and
    std it was calibrated with) fills in what the standard does not say.
    """
    float_input = not grid
    try:
        record = read_metadata(model_bytes) or {}
        recorded = record.get("preprocessing", {}) if isinstance(record, dict) else None
        if not isinstance(recorded, dict):
            raise TypeError("not a JSON object")
        if "mean" in recorded or "std" in recorded:
            grid = {}
        prep = {**DEFAULT_PREPROCESSING, **(grid or {}), **recorded}
        unknown = standard is not None and standard.normalization_problem is not None
        if float_input and unknown and "mean" not in recorded:
            prep["mean"] = prep["std"] = None  # a float input needs it: the caller decides
        elif float_input and standard is not None and standard.mean and standard.std:
            if len(set(standard.mean)) == 1 and len(set(standard.std)) == 1:
                prep["mean"], prep["std"] = float(standard.mean[0]), float(standard.std[0])
            else:  # our pipelines normalize every channel alike: the user's flags decide
                prep["mean"] = prep["std"] = None
        if prep["mean"] is not None:
            check_normalization(prep["mean"], prep["std"])
        check_resize(prep["resize"], prep["crop_fraction"])
    except (ValueError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ModelFileError(f"{path}: invalid recorded preprocessing ({exc})") from None
    return prep


def _shown(values: tuple[float, ...] | None) -> str:
    return ", ".join(f"{v:g}" for v in values or ())


def pixel_grid(dtype: Any, scales: Any, zero_points: Any) -> dict[str, float]:
    """{mean, std} that map pixel p exactly to the quantized input p (uint8) or p - 128
    (int8): the input is (q - zero_point) * scale, so mean = zero_point (+ 128 for int8) and
    std = 1 / scale. Empty for float inputs and for inputs without one scale."""
    offset = {np.dtype(np.uint8): 0, np.dtype(np.int8): 128}.get(np.dtype(dtype))
    scales, zero_points = np.atleast_1d(scales), np.atleast_1d(zero_points)
    if offset is None or scales.size != 1 or not float(scales[0]) > 0:
        return {}
    zero_point = int(zero_points[0]) if zero_points.size else 0
    return {"mean": float(zero_point + offset), "std": 1.0 / float(scales[0])}
