"""One interface over the TF float model and TFLite models: `predict(images) -> scores`.

The engine switch: LiteRT models load through `mobilenet_v2.lite`, the TF float model through
`mobilenet_v2.tf` on demand, so that importing this module never loads TensorFlow."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol

import numpy as np

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.base.preprocess import load_image, normalize
from mobilenet_v2.base.provenance import file_sha256
from mobilenet_v2.lite.interpreter import TFLiteClassifier
from mobilenet_v2.lite.model_description import GIVE


class Classifier(Protocol):
    name: str
    input_size: tuple[int, int]
    preprocessing: dict[str, Any]

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def load_keras(
    weights: str | None,
    alpha: float | None = None,
    size: int | None = None,
    init_seed: int | None = None,
) -> Classifier:
    """Our TensorFlow MobileNetV2 (needs the `tf` extra, which `mobilenet_v2.tf` checks).
    `alpha`/`size` None: the trained model's own (its `.keras` record), else 1.0/224;
    `init_seed` seeds random weights (`weights=None`)."""
    from mobilenet_v2.tf.classifier import KerasClassifier

    return KerasClassifier(weights, alpha=alpha, size=size, init_seed=init_seed)


def model_identity(classifier: Classifier) -> tuple[str, str]:
    """(name, SHA-256) of the file the classifier's weights come from, for result rows:
    the .tflite itself, or the TF model's weights file ("" for random initialization)."""
    raw = getattr(classifier, "raw", None)
    if raw is not None:
        return os.path.basename(str(classifier.path)), hashlib.sha256(raw).hexdigest()
    weights = getattr(classifier, "weights_file", None)
    if weights is None:
        return classifier.name, ""
    return classifier.name, file_sha256(weights)


def kernels_of(classifier: Classifier) -> str:
    """Which kernels compute a classifier's scores: tf, xnnpack or builtin (LiteRT)."""
    if not hasattr(classifier, "xnnpack"):
        return "tf"
    return "xnnpack" if classifier.xnnpack else "builtin"


def load_tflite(
    path: str | os.PathLike, num_threads: int | None = None, xnnpack: bool | None = None
) -> Classifier:
    classifier = TFLiteClassifier(path, num_threads=num_threads, xnnpack=xnnpack)
    classifier.name = os.path.basename(str(path))
    return classifier


def preprocessing_for(classifier: Classifier, **overrides: Any) -> dict[str, Any]:
    """The classifier's own preprocessing (recorded in the model) with explicit flags on top,
    as keyword arguments for `load_image`."""
    prep = {**classifier.preprocessing, **{k: v for k, v in overrides.items() if v is not None}}
    prep["size"] = classifier.input_size
    if prep["mean"] is None or prep["std"] is None:  # the model's own cannot be applied
        raise ModelFileError(
            getattr(classifier, "normalization_problem", None)
            or f"{classifier.name}: no usable input normalization; {GIVE}"
        )
    return {k: prep[k] for k in ("size", "resize", "crop_fraction", "mean", "std")}


def preprocessing_record(classifier: Classifier, overrides: dict[str, Any]) -> dict[str, Any]:
    """`preprocessing_for` as JSON-ready values (lists for tuples), for reports and manifests."""
    prep = preprocessing_for(classifier, **overrides)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in prep.items()}


def predict_pixels(
    classifier: Classifier, pixels: np.ndarray, mean: float, std: float
) -> np.ndarray:
    """Scores for uint8 (N, H, W, 3) pixels normalized by `(x - mean) / std`: LiteRT models
    quantize them through a table (`TFLiteClassifier.predict_pixels`), others get floats."""
    fast = getattr(classifier, "predict_pixels", None)
    if fast is not None:
        return fast(pixels, mean, std)
    return classifier.predict(normalize(pixels, mean, std))


def load_for(classifier: Classifier, path: str | os.PathLike, **overrides: Any) -> np.ndarray:
    return load_image(path, **preprocessing_for(classifier, **overrides))
