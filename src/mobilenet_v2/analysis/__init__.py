"""Tools over a model: golden dumps, tensor tables and their exports, diagrams, compare, trace,
evaluate and benchmark. Importing them needs no TensorFlow; the parts that take a Keras model
import `mobilenet_v2.tf` when they are given one (tests/test_layout.py)."""
