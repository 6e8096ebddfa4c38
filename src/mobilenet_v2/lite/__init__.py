"""The LiteRT room: reading `.tflite` flatbuffers (`tflite_file`), our own metadata record
(`record`), the standard metadata (`model_metadata`), how to feed a model (`model_description`),
TFLite's kernel arithmetic (`arithmetic`), the op-to-Keras-layer map (`layer_map`), and the
LiteRT classifier (`interpreter`). Imports NumPy, LiteRT and the core, never TensorFlow
(tests/test_layout.py)."""
