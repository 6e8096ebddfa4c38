"""What the batch runner and its engines share: the engines, batch sizes, the ranked batch
that every engine yields, and the two steps every engine runs — decoding a source at each
geometry, ranking a model's classes — written once, so that the engines compute the same
rows (a module below both, so that neither imports the other back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mobilenet_v2.base.labels import top_classes
from mobilenet_v2.base.preprocess import Geometry, decode_image, resize_image
from mobilenet_v2.base.sources import Source
from mobilenet_v2.inference.classifier import Classifier, predict_pixels

ENGINES = ("default", "ray")
# Images per batch in this process: enough to keep LiteRT's threads busy, two batches of
# pixels in memory at most.
DEFAULT_BATCH = 32
# Images per Ray task and per inference call: each batch costs Ray a scheduling round, which
# small batches pay too often (docs/benchmarks.md; measured when decoded pixels still crossed
# the object store, which they no longer do).
RAY_BATCH = 128


def default_batch_size(engine: str) -> int:
    return RAY_BATCH if engine == "ray" else DEFAULT_BATCH


@dataclass
class RankedBatch:
    """One batch of results (in the inputs' order unless asked for as they finish; then the
    positions say where each belongs): positions in the job's sources, the
    sources, errors ("" when the image was classified), and per model the top-k class
    indices (-1: no class, for a failed image or a model of fewer classes) and scores."""

    positions: list[int]
    sources: list[Source]
    errors: list[str]
    classes: list[np.ndarray]
    scores: list[np.ndarray]
    # Where Ray's workers wrote the rows as part files: the first position of each part that
    # these rows went to (a batch that reaches the driver may gather several workers' calls)
    parts: set[int] = field(default_factory=set)


def decode_at(
    source: Source, geometries: list[Geometry], draft: bool
) -> dict[Geometry, np.ndarray]:
    """The image at every geometry, as uint8 pixels: decoded once, resized once per
    geometry. `draft` decodes JPEGs by DCT scaling, which serves one size at a time. Raises
    the image's (or its URL's) MobileNetV2Error, which the engines turn into an error row."""
    reduced = geometries[0] if draft and len(geometries) == 1 else None
    img = decode_image(source, *reduced) if reduced else decode_image(source)
    return {g: np.asarray(resize_image(img, *g)) for g in geometries}


def rank(
    classifier: Classifier,
    pixels: np.ndarray | None,
    good: np.ndarray,
    top: int,
    mean: float,
    std: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The `top` classes and float32 scores, best first, for each of `good.size` images;
    `pixels` holds the good ones only. Failed images, and the places past a model's last
    class, get class -1 and score 0."""
    classes = np.full((good.size, top), -1, np.int32)
    scores = np.zeros((good.size, top), np.float32)
    if good.any():
        predicted = predict_pixels(classifier, pixels, mean, std)
        best = top_classes(predicted, top)
        ranked = best.shape[1]  # fewer than `top` for a model of fewer classes
        classes[good, :ranked] = best
        scores[good, :ranked] = np.take_along_axis(predicted, best, axis=1)
    return classes, scores
