"""The LiteRT room: reading `.tflite` flatbuffers, the op-to-Keras-layer map, and the LiteRT
classifier. Imports NumPy, LiteRT and the core, never TensorFlow (tests/test_layout.py)."""
