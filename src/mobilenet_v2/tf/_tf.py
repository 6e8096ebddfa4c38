"""TensorFlow and Keras, imported without their start-up banners.

TensorFlow 2.21 prints oneDNN, cpu_feature_guard and CUDA-probe lines through absl before
`TF_CPP_MIN_LOG_LEVEL` is read, so the only way to keep normal output clean is to point file
descriptor 2 at /dev/null while TensorFlow loads and initialises its devices. Python-level
exceptions are unaffected.
"""

from __future__ import annotations

import os

from mobilenet_v2.base.errors import MissingExtraError
from mobilenet_v2.base.quiet import silenced_stderr

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:
    with silenced_stderr():
        import tensorflow as tf

        tf.config.list_logical_devices()  # the CUDA probe logs when devices are first created
        import h5py  # noqa: F401 (the weight files; in the same extra)
        import keras
except ImportError as exc:  # a LiteRT-only install: say which extra brings TensorFlow
    if exc.name not in ("tensorflow", "keras", "h5py"):
        raise  # a broken TensorFlow install is not a missing one
    raise MissingExtraError(
        f"this needs TensorFlow and Keras, which are not installed ({exc.name or exc}); "
        "install them with: pip install 'mobilenet-v2[tf]'"
    ) from exc

__all__ = ["keras", "silenced_stderr", "tf"]
