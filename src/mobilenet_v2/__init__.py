"""MobileNetV2 from TensorFlow low-level ops, wrapped in Keras layers.

Importing the package is cheap: TensorFlow loads only when a TensorFlow-backed name
(`MobileNetV2`, `layers`, `weights`) is first used, so the TFLite path can run without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import load_image

__version__ = "0.1.0"
__all__ = ["MobileNetV2", "MobileNetV2Error", "decode_predictions", "load_image"]

_LAZY = {"MobileNetV2": ("mobilenet_v2.model", "MobileNetV2")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mobilenet_v2' has no attribute {name!r}")
