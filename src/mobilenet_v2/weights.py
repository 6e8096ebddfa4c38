"""`mobilenet_v2.weights` as the README documents it (`recalibrate_batch_norm`): the module
itself lives in the TensorFlow room, `mobilenet_v2.tf.weights`, and this name is that module."""

import sys

from mobilenet_v2.tf import weights

sys.modules[__name__] = weights
