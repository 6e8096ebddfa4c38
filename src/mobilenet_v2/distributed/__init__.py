"""Classify and evaluate on Ray Data: the local machine, or a cluster with an address.

May import Ray (the `ray` extra) and the core. TensorFlow loads only inside the inference
workers that are given the TF float model (through `mobilenet_v2.classifier`), never here.
"""
