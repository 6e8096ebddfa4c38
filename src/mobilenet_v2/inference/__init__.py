"""Classifying images: the engine switch over LiteRT and the TF model, result files and their
journal, and the Ray Data engine. TensorFlow only when a float model is asked for, Ray only
when the Ray engine runs (tests/test_layout.py)."""
