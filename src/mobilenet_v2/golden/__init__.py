"""Golden reference tensors: the dumps, their formats, C sources, `verify` and `compare`.
TensorFlow only inside the functions given a Keras model (tests/test_layout.py)."""
