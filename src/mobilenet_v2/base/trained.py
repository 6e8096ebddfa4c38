"""The record that a model trained on a user's classes (`mobilenet-v2 train`) carries inside
its `.keras` archive: its class labels, width and input size.

Why inside the archive and not in a sidecar file: a `.keras` file is copied, renamed and
uploaded on its own, and a label list that can be separated from its weights will sooner or
later name the wrong classes. A `.keras` file is a zip archive whose loaders read only the
members they know (`config.json`, `metadata.json`, `model.weights.h5`, `assets/`), so an extra
member `mobilenet_v2.json` travels with the weights and `keras.saving.load_model` still loads
the file unchanged. Reading it needs no TensorFlow (`classify --model` never loads it).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mobilenet_v2.base.errors import ModelFileError, WeightsError

RECORD_MEMBER = "mobilenet_v2.json"


@dataclass(frozen=True)
class TrainedRecord:
    """What it takes to rebuild and name a trained model: its classes in output order."""

    labels: tuple[str, ...]
    alpha: float
    size: int

    def to_json(self) -> str:
        return json.dumps(
            {"labels": list(self.labels), "alpha": self.alpha, "size": self.size}, indent=1
        )


def read_record(path: str | os.PathLike) -> TrainedRecord | None:
    """The record of a trained `.keras` file; None for any other weights file (an ImageNet
    `.keras`, an `.h5`, a `.tflite`). A record that is present but unreadable is an error
    naming the file: guessing ImageNet's labels for it would name the classes wrongly."""
    try:
        with zipfile.ZipFile(path) as archive:
            if RECORD_MEMBER not in archive.namelist():
                return None
            data = json.loads(archive.read(RECORD_MEMBER).decode("utf8"))
    except (zipfile.BadZipFile, OSError, EOFError):
        return None  # not a zip: the weights loader says what is wrong with it
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupt {RECORD_MEMBER} in the archive ({exc})") from None
    try:
        labels = tuple(str(label) for label in data["labels"])
        record = TrainedRecord(labels, float(data["alpha"]), int(data["size"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: corrupt {RECORD_MEMBER} in the archive ({exc})") from None
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ModelFileError(f"{path}: {RECORD_MEMBER} needs two or more distinct labels")
    return record


class ModelSpec(NamedTuple):
    """What to build the TF model for some weights with."""

    alpha: float
    size: int
    labels: tuple[str, ...] | None  # a trained model's classes; None: ImageNet's 1000

    @property
    def classes(self) -> int:
        return 1000 if self.labels is None else len(self.labels)


def model_spec(
    weights: str | os.PathLike | None, alpha: float | None = None, size: int | None = None
) -> ModelSpec:
    """The width, input size and classes for `weights`: a trained model's own (`size`, when
    given, overrides its input size; another `alpha` is refused, since its weights could
    not load), otherwise `alpha` and `size`, or 1.0 and 224, and ImageNet's classes."""
    path = None if weights in (None, "imagenet") else weights
    record = read_record(path) if path is not None and os.path.isfile(path) else None
    if record is None:
        return ModelSpec(alpha or 1.0, size or 224, None)
    if alpha is not None and alpha != record.alpha:
        raise WeightsError(
            f"{weights} was trained at width {record.alpha:g}, not --alpha {alpha:g}"
        )
    return ModelSpec(record.alpha, size or record.size, record.labels)


def add_record(path: Path, record: TrainedRecord) -> None:
    """Append the record to a `.keras` archive just written (before it is renamed into place,
    so that no complete-looking file lacks its labels)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(RECORD_MEMBER, record.to_json())


def labels_text(labels: tuple[str, ...] | list[str]) -> str:
    """One label per line, in output order: the label file format TFLite metadata uses."""
    return "".join(f"{label}\n" for label in labels)
