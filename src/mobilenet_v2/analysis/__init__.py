"""Tools over a model: the layers-to-tensor map and its tables, diagrams, trace, evaluate and
benchmark (golden dumps, verify and compare are the golden room's, above this one). Importing
them needs no TensorFlow; the parts that take a Keras model import `mobilenet_v2.tf` when they
are given one (tests/test_layout.py)."""
