"""JPEG draft decoding (issue 12): does decoding a large JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's
DCT scaling, never below twice what the crop needs) change what the model says, and how much
faster is it?

    python benchmarks/draft_agreement.py --model INT8.tflite [--images DIR] [--scale 4]

There are no phone photos in ../shared: the photo-sized JPEGs are the sample images enlarged
`--scale` times (Lanczos) and saved at quality 90, e.g. 2000 x 1500 from 500 x 375. They lack
a real photo's fine detail, which makes the full decode and the reduced one closer than they
would be on a photo; the per-image score change is reported beside top-1 agreement for that
reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", default=str(SHARED / "data" / "imagenet" / "sample"))
    parser.add_argument("--scale", type=float, default=4.0)
    args = parser.parse_args()

    from mobilenet_v2.base.machine import describe
    from mobilenet_v2.inference.classifier import load_tflite, preprocessing_for

    classifier = load_tflite(args.model)
    prep = preprocessing_for(classifier)
    folder = Path(tempfile.mkdtemp(prefix="photo-sized-"))
    try:
        measure(classifier, prep, folder, args)
    finally:
        shutil.rmtree(folder)  # hundreds of MB of enlarged JPEGs
    print(describe())


def measure(classifier, prep: dict, folder: Path, args: argparse.Namespace) -> None:
    from mobilenet_v2.base.preprocess import load_image
    from mobilenet_v2.base.sources import list_sources

    photos = []
    for source in list_sources([args.images]):
        with Image.open(source) as img:
            img = img.convert("RGB")
            size = (round(img.width * args.scale), round(img.height * args.scale))
            path = folder / f"{Path(source).stem}.jpg"
            img.resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
            photos.append(path)

    def run(draft: bool) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        x = np.stack([load_image(p, **prep, draft=draft) for p in photos])
        seconds = time.perf_counter() - start
        return classifier.predict(x), seconds

    full, full_s = run(False)
    draft, draft_s = run(True)
    same = full.argmax(1) == draft.argmax(1)
    rows = np.arange(len(full))
    change = np.abs(full[rows, full.argmax(1)] - draft[rows, full.argmax(1)])
    with Image.open(photos[0]) as first:
        example = first.size
    print(f"{len(photos)} JPEGs, e.g. {example[0]} x {example[1]} (sample images x{args.scale})")
    print(
        f"top-1 agreement, draft vs full decode: {100 * same.mean():.1f} % "
        f"({(~same).sum()} images differ)"
    )
    print(f"top-1 score change: median {np.median(change):.4f}, max {change.max():.4f}")
    full_rate, draft_rate = len(photos) / full_s, len(photos) / draft_s
    print(
        f"load_image, one thread: full decode {full_rate:.1f} img/s, draft {draft_rate:.1f} "
        f"img/s ({full_s / draft_s:.1f}x)"
    )


if __name__ == "__main__":
    main()
