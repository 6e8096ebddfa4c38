"""Our TensorFlow float MobileNetV2 behind the `Classifier` interface."""

from __future__ import annotations

import os

import numpy as np

from mobilenet_v2.base.preprocess import DEFAULT_PREPROCESSING
from mobilenet_v2.base.trained import model_spec
from mobilenet_v2.tf.model import MobileNetV2


class KerasClassifier:
    """Our TensorFlow MobileNetV2 with the given weights.

    A `.keras` file written by `mobilenet-v2 train` carries its labels, width and input size
    (`mobilenet_v2.base.trained`): the model is built with that many classes and that width, at
    that size unless `size` is given, and `labels` names its classes. Otherwise ImageNet's
    1000 classes, `alpha` (1.0) and `size` (224); `init_seed` seeds random weights."""

    def __init__(
        self,
        weights: str | None,
        alpha: float | None = None,
        size: int | None = None,
        init_seed: int | None = None,
    ) -> None:
        spec = model_spec(weights, alpha, size)
        alpha, size = spec.alpha, spec.size
        self.labels: tuple[str, ...] | None = spec.labels
        self.model = MobileNetV2(
            input_shape=(size, size, 3),
            alpha=alpha,
            weights=weights,
            classes=spec.classes,
            init_seed=init_seed,
        )
        self.classes = spec.classes
        # The file the weights came from (the resolved one for "imagenet"), for result rows.
        self.weights_file = self.model.loaded_weights_file
        seed = "" if init_seed is None else f", seed {init_seed}"
        source = f"random init{seed}" if weights is None else os.path.basename(str(weights))
        self.name = f"TF float32 ({source})"
        self.input_size = (size, size)
        self.alpha = alpha
        self.init_seed = init_seed
        self.preprocessing = dict(DEFAULT_PREPROCESSING)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(np.asarray(images, np.float32)))
