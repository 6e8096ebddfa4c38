"""TensorFlow and Keras, imported without their start-up banners.

TensorFlow 2.21 prints oneDNN, cpu_feature_guard and CUDA-probe lines through absl before
`TF_CPP_MIN_LOG_LEVEL` is read, so the only way to keep normal output clean is to point file
descriptor 2 at /dev/null while TensorFlow loads and initialises its devices. Python-level
exceptions are unaffected: they are raised after stderr is restored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Silence native (C++) writes to stderr for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with silenced_stderr():
    import tensorflow as tf

    tf.config.list_logical_devices()  # the CUDA probe logs when devices are first created
    import keras

__all__ = ["keras", "silenced_stderr", "tf"]
