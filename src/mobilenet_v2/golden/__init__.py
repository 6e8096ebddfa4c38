"""Golden reference tensors: the dumps, their formats, C sources, `verify` and `compare`.
TensorFlow only inside the functions given a Keras model (tests/test_layout.py).

Modules, bottom first: `tensor_file` (what every reader shares), `c_header` (C tensor
headers, written and read), `formats` (txt, npy, bin, hex: each writer beside its reader,
and the choice by format), `manifest` (a set's manifests and entries, `read_tensor`,
`load_golden`), `dump` (the engines and `write_dump`), `verify` (their files against a set)
and `verify_report`, `compare` (float against INT8, layer by layer), `model_array`
(`export --c-array`).
"""
