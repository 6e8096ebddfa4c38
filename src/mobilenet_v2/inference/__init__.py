"""Classifying images: the engine switch over LiteRT and the TF model, loading models for batch
jobs, the one batch runner (this process or Ray Data), result files and their journal, and the
Ray Data engine. TensorFlow only when a float model is asked for, Ray only when the Ray engine
runs (tests/test_layout.py).

`classify_images` (from `runner`) is the notebook's entry point; it loads on first use."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["classify_images"]


def __getattr__(name: str) -> Any:
    if name == "classify_images":
        return importlib.import_module("mobilenet_v2.inference.runner").classify_images
    raise AttributeError(f"module 'mobilenet_v2.inference' has no attribute {name!r}")
