"""One interface over the TF float model and TFLite models: `predict(images) -> scores`."""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from mobilenet_v2.preprocess import DEFAULT_PREPROCESSING, load_image


class Classifier(Protocol):
    name: str
    input_size: tuple[int, int]
    preprocessing: dict[str, Any]

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def weights_label(weights: str | os.PathLike | None) -> str:
    """How results and manifests name the weights: a path, `imagenet`, or random init."""
    return "none (random initialization)" if weights is None else str(weights)


class KerasClassifier:
    """Our TensorFlow MobileNetV2 with the given weights."""

    def __init__(self, weights: str | None, alpha: float = 1.0, size: int = 224) -> None:
        from mobilenet_v2.model import MobileNetV2

        self.model = MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=weights)
        source = "random init" if weights is None else os.path.basename(str(weights))
        self.name = f"TF float32 ({source})"
        self.input_size = (size, size)
        self.preprocessing = dict(DEFAULT_PREPROCESSING)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(np.asarray(images, np.float32)))


def kernels_of(classifier: Classifier) -> str:
    """Which kernels compute a classifier's scores: tf, xnnpack or builtin (LiteRT)."""
    if not hasattr(classifier, "xnnpack"):
        return "tf"
    return "xnnpack" if classifier.xnnpack else "builtin"


def load_tflite(
    path: str | os.PathLike, num_threads: int | None = None, xnnpack: bool | None = None
) -> Classifier:
    from mobilenet_v2.interpreter import TFLiteClassifier

    classifier = TFLiteClassifier(path, num_threads=num_threads, xnnpack=xnnpack)
    classifier.name = os.path.basename(str(path))
    return classifier


def preprocessing_for(classifier: Classifier, **overrides: Any) -> dict[str, Any]:
    """The classifier's own preprocessing (recorded in the model) with explicit flags on top,
    as keyword arguments for `load_image`."""
    prep = {**classifier.preprocessing, **{k: v for k, v in overrides.items() if v is not None}}
    prep["size"] = classifier.input_size
    return {k: prep[k] for k in ("size", "resize", "crop_fraction", "mean", "std")}


def preprocessing_record(classifier: Classifier, overrides: dict[str, Any]) -> dict[str, Any]:
    """`preprocessing_for` as JSON-ready values (lists for tuples), for reports and manifests."""
    prep = preprocessing_for(classifier, **overrides)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in prep.items()}


def load_for(classifier: Classifier, path: str | os.PathLike, **overrides: Any) -> np.ndarray:
    return load_image(path, **preprocessing_for(classifier, **overrides))
