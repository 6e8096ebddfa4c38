"""The TensorFlow room: the Keras layers and model, weight files, conversion to TFLite.

Everything here may import TensorFlow and Keras (through `mobilenet_v2.tf._tf`, which says in
one line which extra to install when they are missing). Nothing outside this room imports
TensorFlow at module level; see tests/test_layout.py.
"""

# First, before any module of this room: without the `tf` extra, the one-line install hint
# rather than whichever of TensorFlow, Keras or h5py a module happens to import first.
from mobilenet_v2.tf import _tf  # noqa: F401
