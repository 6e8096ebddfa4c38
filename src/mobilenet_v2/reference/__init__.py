"""A bit-exact NumPy reference of TFLite's integer kernels. This room imports NumPy, the core
and the `.tflite` readers of `mobilenet_v2.lite` (the flatbuffer schema), never TensorFlow nor
LiteRT's interpreter: see tests/test_layout.py."""

from mobilenet_v2.reference.interpreter import ReferenceInterpreter, UnsupportedOpError

__all__ = ["ReferenceInterpreter", "UnsupportedOpError"]
