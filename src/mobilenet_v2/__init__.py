"""MobileNetV2 from TensorFlow low-level ops, wrapped in Keras layers.

Rooms, bottom first; each imports only the rooms below it (tests/test_layout.py, and the
README's "Layout" table):

- `base/`: errors, outputs, sources, preprocessing, labels, the architecture table,
  calibration draws, downloads, machine records; the stdlib, NumPy, Pillow, tqdm.
- `lite/`: `.tflite` files and LiteRT, never TensorFlow.
- `reference/`: the NumPy integer reference, never TensorFlow nor LiteRT's interpreter.
- `tf/`: TensorFlow and Keras: layers, the model, weight files, conversion, training.
- `inference/`: the engine switch over LiteRT and the TF model, result files, Ray Data.
- `analysis/`: tensor tables, diagrams, trace, evaluate, benchmark.
- `golden/`: golden dumps, their formats and C sources, verify, compare.
- `cli/`: the `mobilenet-v2` command, one module per subcommand.

Importing the package is cheap: TensorFlow loads only when `MobileNetV2` is first used or a
module of `tf/` is imported, so the TFLite path runs without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from mobilenet_v2.base import __version__
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.labels import decode_predictions
from mobilenet_v2.base.preprocess import load_image

__all__ = ["MobileNetV2", "MobileNetV2Error", "__version__", "decode_predictions", "load_image"]


def __getattr__(name: str) -> Any:
    if name == "MobileNetV2":  # the TensorFlow room loads on first use
        return importlib.import_module("mobilenet_v2.tf.model").MobileNetV2
    raise AttributeError(f"module 'mobilenet_v2' has no attribute {name!r}")
