"""`mobilenet_v2.layers` as the README documents it (`Conv2D`, `DepthwiseConv2D`, ...): the
module lives in the TensorFlow room, `mobilenet_v2.tf.layers`, and this name is that module."""

import sys

from mobilenet_v2.tf import layers

sys.modules[__name__] = layers
