"""Loading the models a batch job runs: LiteRT files and the TF float model, with the policy
every such job shares: LiteRT's thread count for throughput, the check that a model can name
its classes, names that tell models apart, and the notes their metadata gave, as data for the
caller to show."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mobilenet_v2.base.errors import MobileNetV2Error, ModelFileError
from mobilenet_v2.base.machine import usable_cpus
from mobilenet_v2.inference.classifier import Classifier, load_keras, load_tflite


class SameModelTwiceError(MobileNetV2Error):
    """One model file given twice: its rows and columns could not be told apart."""


def throughput_threads(num_threads: int | None, engine: str) -> int | None:
    """LiteRT's threads for a batch job: as asked, else every usable CPU in this process
    (LiteRT's own default, one thread, leaves a core idle whenever decoding waits on
    inference); on Ray each worker decides (one thread: a worker holds one CPU, and there
    is one worker per CPU)."""
    if num_threads is None and engine == "default":
        return usable_cpus()
    return num_threads


def model_notes(classifiers: Sequence[Any]) -> list[str]:
    """What reading the models' metadata found worth saying (defaults used, labels ignored)."""
    return [note for c in classifiers for note in getattr(c, "notes", ())]


def check_labels(classifier: Any) -> None:
    """A model must be able to name its classes: ImageNet's 1000 (or 1001 with background),
    or its own label file (one trained on a user's classes)."""
    if classifier.labels is None and classifier.classes - classifier.label_offset != 1000:
        raise ModelFileError(
            f"{classifier.path}: has {classifier.classes} classes and no label file; "
            "ImageNet's 1000 (or 1001 with background) are needed to name them"
        )


def name_apart(classifiers: Sequence[Any]) -> None:
    """Each model by its file name; models that share one get as many parent folders as it
    takes to tell them apart (a/int8.tflite, b/int8.tflite). One file twice is refused."""
    paths = [Path(os.path.abspath(c.path)) for c in classifiers]  # links keep their names
    if len(set(paths)) < len(paths):
        raise SameModelTwiceError("the same --model is given twice")
    for classifier, path in zip(classifiers, paths, strict=True):
        rivals = [p for p in paths if p.name == path.name and p != path]
        depth = 1
        while any(p.parts[-depth:] == path.parts[-depth:] for p in rivals):
            depth += 1
        classifier.name = str(Path(*path.parts[-depth:]))


def load_models(
    model_files: Sequence[str | os.PathLike],
    *,
    tf_weights: str | None = None,
    tf_model: bool = False,
    alpha: float | None = None,
    size: int | None = None,
    num_threads: int | None = None,
    xnnpack: bool | None = None,
    engine: str = "default",
    note: Callable[[str], None] | None = None,
) -> list[Classifier]:
    """The LiteRT models of `model_files`, then (first in the list) the TF float model when
    `tf_model` or no file is given (`tf_weights`: a weights file, "imagenet", or None for
    random initialization; `alpha`/`size` None: the trained model's own, else 1.0/224).

    `note` receives each metadata note once the LiteRT models are loaded, before they are
    checked (so that a model refused for its labels has had its say)."""
    threads = throughput_threads(num_threads, engine)
    found: list[Classifier] = [load_tflite(m, threads, xnnpack) for m in model_files]
    for message in model_notes(found):
        if note is not None:
            note(message)
    for classifier in found:
        check_labels(classifier)
    name_apart(found)
    if tf_model or not found:
        found.insert(0, load_keras(tf_weights, alpha, size))
    return found


def ranked_classes(classifier: Any) -> int:
    """How many classes the classifier ranks (ImageNet's 1000, background left out)."""
    return getattr(classifier, "classes", 1000) - getattr(classifier, "label_offset", 0)
