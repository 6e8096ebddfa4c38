"""The base of the house: errors, outputs, sources, preprocessing, labels, the architecture
table, calibration draws, downloads, machine records, the trained-model record. Imports the
standard library, NumPy, Pillow and tqdm, and nothing of the package above it
(tests/test_layout.py)."""

__version__ = "0.1.0"
