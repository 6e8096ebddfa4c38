"""The 1000 ImageNet-1k classes (index, synset, name) and Keras-style decode_predictions."""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import NamedTuple

import numpy as np


class ImageNetClass(NamedTuple):
    index: int
    synset: str  # WordNet id, e.g. n03763968
    name: str  # Keras' short name, e.g. military_uniform


@functools.cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The classes in the standard index order, from the package's data file."""
    data = resources.files("mobilenet_v2.base").joinpath("data/imagenet_classes.tsv")
    text = data.read_text("utf8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    classes = tuple(ImageNetClass(int(r["index"]), r["synset"], r["name"]) for r in rows)
    assert [c.index for c in classes] == list(range(1000)), "corrupt imagenet_classes.tsv"
    return classes


@functools.cache
def synset_to_index() -> dict[str, int]:
    return {c.synset: c.index for c in imagenet_classes()}


def decode_predictions(
    preds: np.ndarray, top: int = 5, names: Sequence[str] | None = None
) -> list[list[tuple[str, str, float]]]:
    """Top-`top` `(synset, name, score)` per row of a (samples, 1000) score array, best first;
    `names`: the model's own label for each class (from its metadata) instead of Keras'. A
    model of a user's classes has (samples, len(names)) scores (see `named`)."""
    preds = np.asarray(preds)
    classes = 1000 if names is None else len(names)
    if preds.ndim != 2 or preds.shape[1] != classes:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, {classes})). Received array with shape: {preds.shape}"
        )
    best = top_classes(preds, top)
    rows = zip(preds, best, strict=True)
    return [named(indices, np.take(row, indices), names) for row, indices in rows]


def top_classes(scores: np.ndarray, top: int) -> np.ndarray:
    """The indices of the `top` best classes per row, best first; ties in class order (a
    stable sort), the order every engine and command ranks by."""
    return np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :top]


def named(
    indices: Iterable[int], scores: Iterable[float], names: Sequence[str] | None = None
) -> list[tuple[str, str, float]]:
    """`(synset, name, score)` for ranked class indices and their scores; the name is the
    model's own label when `names` (one per class) is given, else Keras' short name. Classes
    that are not ImageNet's (`names` not 1000 long) have no synset: their label stands in
    for it, so that result rows keep one identifier per class."""
    classes = imagenet_classes()
    if names is not None and len(names) != len(classes):
        return [(names[i], names[i], float(s)) for i, s in zip(indices, scores, strict=True)]
    return [
        (classes[i].synset, classes[i].name if names is None else names[i], float(s))
        for i, s in zip(indices, scores, strict=True)
    ]
