"""TensorFlow and Keras, imported without their start-up banners.

TensorFlow 2.21 prints oneDNN, cpu_feature_guard and CUDA-probe lines through absl before
`TF_CPP_MIN_LOG_LEVEL` is read, so the only way to keep normal output clean is to point file
descriptor 2 at /dev/null while TensorFlow loads and initialises its devices. Python-level
exceptions are unaffected.
"""

from __future__ import annotations

import os

from mobilenet_v2._quiet import silenced_stderr

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with silenced_stderr():
    import tensorflow as tf

    tf.config.list_logical_devices()  # the CUDA probe logs when devices are first created
    import keras

__all__ = ["keras", "silenced_stderr", "tf"]
