"""What the batch runner and its engines share: the engines, batch sizes and the ranked
batch that every engine yields (a module below both, so that neither imports the other back)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobilenet_v2.base.sources import Source

ENGINES = ("default", "ray")
# Images per batch in this process: enough to keep LiteRT's threads busy, two batches of
# pixels in memory at most.
DEFAULT_BATCH = 32
# Images per Ray task and per inference call: each batch costs Ray a scheduling round and an
# object-store transfer, which small batches pay too often (docs/benchmarks.md).
RAY_BATCH = 128


def default_batch_size(engine: str) -> int:
    return RAY_BATCH if engine == "ray" else DEFAULT_BATCH


@dataclass
class RankedBatch:
    """One batch of results, in the inputs' order: positions in the job's sources, the
    sources, errors ("" when the image was classified), and per model the top-k class
    indices (-1: no class, for a failed image or a model of fewer classes) and scores."""

    positions: list[int]
    sources: list[Source]
    errors: list[str]
    classes: list[np.ndarray]
    scores: list[np.ndarray]
