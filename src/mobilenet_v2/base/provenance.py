"""Where results come from: how result rows and manifests name the weights, and the SHA-256
of the file they were read from."""

from __future__ import annotations

import hashlib
import os


def weights_label(weights: str | os.PathLike | None, init_seed: int | None = None) -> str:
    """How results and manifests name the weights: a path, `imagenet`, or random init (with
    its seed, when seeded)."""
    if weights is not None:
        return str(weights)
    seed = "" if init_seed is None else f", seed {init_seed}"
    return f"none (random initialization{seed})"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
