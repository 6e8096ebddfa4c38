"""`mobilenet_v2.dump` as the README documents it (`read_tensor`, `dequantize`): the module
lives in `mobilenet_v2.analysis.dump`, and this name is that module."""

import sys

from mobilenet_v2.analysis import dump

sys.modules[__name__] = dump
