"""Top-1 / top-5 accuracy of several models side by side on a labelled image directory."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tqdm import tqdm

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.labels import synset_to_index
from mobilenet_v2.base.outputs import markdown_table
from mobilenet_v2.base.preprocess import list_images
from mobilenet_v2.base.sources import Source, is_url
from mobilenet_v2.inference.classifier import Classifier, kernels_of
from mobilenet_v2.inference.runner import BatchRunner

_SYNSET = re.compile(r"^(n\d{8})(?![0-9])")


def label_of(path: Source) -> int | None:
    """The ImageNet class index from `n01440764_*.JPEG` or from a synset-named folder (of a
    path or a URL)."""
    index = synset_to_index()
    path = PurePosixPath(str(path))
    for name in (path.name, path.parent.name):
        match = _SYNSET.match(name)
        if match and match.group(1) in index:
            return index[match.group(1)]
    return None


def labelled_images(
    directory: str | os.PathLike, limit: int | None = None, seed: int = 0
) -> list[tuple[Source, int]]:
    """Every labelled image under `directory` (a folder, or a URL of one), or with `limit` a
    seeded, class-balanced sample of that many (see `balanced_sample`)."""
    if not is_url(directory) and not Path(directory).exists():
        raise MobileNetV2Error(f"{directory}: directory not found")
    if not is_url(directory) and not Path(directory).is_dir():
        raise MobileNetV2Error(f"{directory}: not a directory")
    found = [(p, label_of(p)) for p in list_images([directory])]
    labelled = [(p, label) for p, label in found if label is not None]
    if not labelled:
        raise MobileNetV2Error(
            f"{directory}: no labelled images (expected synsets in file names like "
            "n01440764_x.JPEG or synset-named sub-folders)"
        )
    return balanced_sample(labelled, limit, seed) if limit else labelled


def folder_labelled_images(
    directory: str | os.PathLike,
    labels: tuple[str, ...],
    limit: int | None = None,
    seed: int = 0,
) -> list[tuple[Source, int]]:
    """For a model of a user's classes: one sub-folder per class, named as the model's
    labels (the layout `mobilenet-v2 train` takes), its images anywhere below. A folder that
    names no class is an error naming it: its images would silently not count."""
    root = Path(directory)
    if not root.is_dir():
        raise MobileNetV2Error(
            f"{directory}: " + ("not a directory" if root.exists() else "directory not found")
        )
    index = {label: i for i, label in enumerate(labels)}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p for p in folders if p.name not in index]
    if unknown:
        raise MobileNetV2Error(
            f"{unknown[0]}: folder names none of the model's classes ({', '.join(labels)})"
        )
    if not folders:
        raise MobileNetV2Error(
            f"{directory}: no class folders (expected sub-folders named as the model's "
            f"classes: {', '.join(labels)})"
        )
    labelled = [(p, index[folder.name]) for folder in folders for p in list_images([folder])]
    return balanced_sample(labelled, limit, seed) if limit else labelled


def balanced_sample(
    labelled: list[tuple[Path, int]], count: int, seed: int = 0
) -> list[tuple[Path, int]]:
    """`count` images drawn round-robin over the classes (each class's images in a seeded
    order, the classes too), so that a sample of an ImageNet-val tree, sorted by class, is
    not one or two classes. Returned in the listing's order; the same seed, the same sample."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for position, (_, label) in enumerate(labelled):
        by_class.setdefault(label, []).append(position)
    queues = [list(rng.permutation(members)) for members in by_class.values()]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    chosen: list[int] = []
    while len(chosen) < min(count, len(labelled)):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop()))
    return [labelled[i] for i in sorted(chosen)]


def evaluate(
    classifiers: list[Classifier],
    images: list[tuple[Path, int]],
    batch_size: int = 32,
    engine: str = "default",
    ray_address: str | None = None,
    workers: int | None = None,
    draft: bool = False,
    stall_timeout: float | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Decode each image once, feed every model its own preprocessing, count hits; in this
    process (`engine="default"`) or on Ray Data (`"ray"`, local or at `ray_address`)."""
    runner = BatchRunner(
        classifiers,
        5,  # a model of fewer than five classes ranks them all (-1: no class)
        engine=engine,
        batch_size=batch_size,
        workers=workers,
        ray_address=ray_address,
        stall_timeout=stall_timeout,
        draft=draft,
        overrides=overrides,
    )
    runner.preflight()  # before the first image is read
    sources = [path for path, _ in images]
    top5: dict[int, list[np.ndarray]] = {}  # input position -> top-5 per model
    errors: dict[int, str] = {}
    with tqdm(
        total=len(images),
        unit="img",
        file=sys.stderr,
        leave=False,
        desc="evaluate",
        disable=len(images) <= batch_size or engine == "ray",  # Ray Data shows its own
    ) as bar:
        for batch in runner.batches(sources):
            for row, position in enumerate(batch.positions):
                if batch.errors[row]:
                    errors[position] = batch.errors[row]
                else:
                    top5[position] = [model_classes[row] for model_classes in batch.classes]
            bar.update(len(batch.positions))
    if not top5:
        raise MobileNetV2Error(f"no readable images to evaluate ({len(errors)} skipped)")
    kept = sorted(top5)
    labels = np.array([images[i][1] for i in kept])
    results = []
    first = None
    for m, classifier in enumerate(classifiers):
        ranks = np.stack([top5[i][m] for i in kept])
        row = {
            "model": classifier.name,
            "path": str(classifier.path) if hasattr(classifier, "path") else None,
            "kernels": kernels_of(classifier),  # accuracy depends on them (and on the CPU)
            "threads": getattr(classifier, "num_threads", None),
            "images": len(labels),
            "top1": float((ranks[:, 0] == labels).mean()),
            "top5": float((ranks == labels[:, None]).any(axis=1).mean()),
        }
        if first is None:
            first = ranks[:, 0]
        else:
            row["agreement_top1"] = float((ranks[:, 0] == first).mean())
        results.append(row)
    skipped = [errors[i] for i in sorted(errors)]
    return {"results": results, "reference": classifiers[0].name, "skipped": skipped}


def markdown(report: dict[str, Any]) -> str:
    headers = ["model", "kernels", "images", "top-1", "top-5"]
    headers.append(f"top-1 agreement with {report['reference']}")
    rows = []
    for row in report["results"]:
        agreement = row.get("agreement_top1")
        rows.append(
            [
                row["model"],
                row["kernels"],
                row["images"],
                f"{100 * row['top1']:.1f} %",
                f"{100 * row['top5']:.1f} %",
                "—" if agreement is None else f"{100 * agreement:.1f} %",
            ]
        )
    return markdown_table(headers, rows, text_columns=2)
