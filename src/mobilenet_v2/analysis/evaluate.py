"""Top-1 / top-5 accuracy of several models side by side on a labelled image directory."""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mobilenet_v2.classifier import Classifier, kernels_of, preprocessing_for
from mobilenet_v2.errors import ImageError, MobileNetV2Error
from mobilenet_v2.labels import synset_to_index
from mobilenet_v2.outputs import markdown_table
from mobilenet_v2.preprocess import decode_image, decode_pool, list_images, preprocess_image

_SYNSET = re.compile(r"^(n\d{8})(?![0-9])")


def label_of(path: Path) -> int | None:
    """The ImageNet class index from `n01440764_*.JPEG` or from a synset-named folder."""
    index = synset_to_index()
    for name in (path.name, path.parent.name):
        match = _SYNSET.match(name)
        if match and match.group(1) in index:
            return index[match.group(1)]
    return None


def labelled_images(
    directory: str | os.PathLike, limit: int | None = None, seed: int = 0
) -> list[tuple[Path, int]]:
    """Every labelled image under `directory`, or with `limit` a seeded, class-balanced
    sample of that many (see `balanced_sample`)."""
    if not Path(directory).exists():
        raise MobileNetV2Error(f"{directory}: directory not found")
    if not Path(directory).is_dir():
        raise MobileNetV2Error(f"{directory}: not a directory")
    found = [(p, label_of(p)) for p in list_images([directory])]
    labelled = [(p, label) for p, label in found if label is not None]
    if not labelled:
        raise MobileNetV2Error(
            f"{directory}: no labelled images (expected synsets in file names like "
            "n01440764_x.JPEG or synset-named sub-folders)"
        )
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
    **overrides: Any,
) -> dict[str, Any]:
    """Decode each image once, feed every model its own preprocessing, count hits."""
    labels = np.array([label for _, label in images])
    top5: list[list[np.ndarray]] = [[] for _ in classifiers]  # by position: names may repeat
    preps = [preprocessing_for(c, **overrides) for c in classifiers]
    skipped: list[str] = []
    kept: list[int] = []
    with (
        decode_pool() as pool,
        tqdm(
            total=len(images),
            unit="img",
            file=sys.stderr,
            leave=False,
            desc="evaluate",
            disable=len(images) <= batch_size,
        ) as bar,
    ):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]

            decoded = list(pool.map(_decode, batch))
            good = [
                (start + i, img) for i, img in enumerate(decoded) if not isinstance(img, ImageError)
            ]
            skipped += [str(err) for err in decoded if isinstance(err, ImageError)]
            kept += [i for i, _ in good]
            bar.update(len(batch))
            if not good:
                continue
            images_only = [img for _, img in good]
            for classifier, prep, ranks in zip(classifiers, preps, top5, strict=True):
                x = np.stack(list(pool.map(functools.partial(_preprocess, prep=prep), images_only)))
                scores = classifier.predict(x)
                ranks.append(np.argsort(-scores, axis=1, kind="stable")[:, :5])
    if not kept:
        raise MobileNetV2Error(f"no readable images to evaluate ({len(skipped)} skipped)")
    labels = labels[kept]
    results = []
    first = None
    for classifier, batches in zip(classifiers, top5, strict=True):
        ranks = np.concatenate(batches)
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
    return {"results": results, "reference": classifiers[0].name, "skipped": skipped}


def _decode(item: tuple[Path, int]):
    try:
        return decode_image(item[0])
    except ImageError as exc:
        return exc


def _preprocess(img, prep: dict[str, Any]) -> np.ndarray:
    return preprocess_image(img, **prep)


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
