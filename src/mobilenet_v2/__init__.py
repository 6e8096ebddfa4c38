"""MobileNetV2 from TensorFlow low-level ops, wrapped in Keras layers.

Rooms by dependency; a folder's name says what its modules may import (tests/test_layout.py):

- `mobilenet_v2/*.py`, the core: architecture table, labels, preprocessing, calibration images,
  outputs, downloads, errors, machine records; the stdlib, NumPy, Pillow, tqdm, and the
  engine switch in `classifier` (LiteRT; TensorFlow only when a float model is asked for).
- `lite/`: `.tflite` files and LiteRT, never TensorFlow.
- `reference/`: the NumPy integer reference, never TensorFlow nor LiteRT's interpreter.
- `tf/`: TensorFlow and Keras: layers, the model, weight files, conversion.
- `analysis/`: dumps, tensor tables, compare, trace, evaluate, benchmark; TensorFlow only
  inside the functions given a Keras model.
- `distributed/`: the Ray Data engine of `classify` and `evaluate`; Ray only inside its
  functions, TensorFlow only in the workers given the TF model.
- `cli/`: the `mobilenet-v2` command, one module per subcommand.

Importing the package is cheap: TensorFlow loads only when `MobileNetV2` is first used or a
TensorFlow module is imported (`mobilenet_v2.layers` and `mobilenet_v2.weights` are the
`tf/` modules under their documented names), so the TFLite path runs without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import load_image

__version__ = "0.1.0"
__all__ = ["MobileNetV2", "MobileNetV2Error", "decode_predictions", "load_image"]


def __getattr__(name: str) -> Any:
    if name == "MobileNetV2":  # the TensorFlow room loads on first use
        return importlib.import_module("mobilenet_v2.tf.model").MobileNetV2
    raise AttributeError(f"module 'mobilenet_v2' has no attribute {name!r}")
