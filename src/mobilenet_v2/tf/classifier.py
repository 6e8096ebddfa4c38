"""Our TensorFlow float MobileNetV2 behind the `Classifier` interface."""

from __future__ import annotations

import os

import numpy as np

from mobilenet_v2.preprocess import DEFAULT_PREPROCESSING
from mobilenet_v2.tf.model import MobileNetV2


class KerasClassifier:
    """Our TensorFlow MobileNetV2 with the given weights."""

    def __init__(
        self,
        weights: str | None,
        alpha: float = 1.0,
        size: int = 224,
        init_seed: int | None = None,
    ) -> None:
        self.model = MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, weights=weights, init_seed=init_seed
        )
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
