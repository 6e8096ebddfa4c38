"""Calibration images for full-integer quantization: a reproducible draw from a directory,
preprocessed exactly as inference preprocesses (Pillow and NumPy only, no TensorFlow)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mobilenet_v2.base.errors import ImageError
from mobilenet_v2.base.preprocess import decode_pool, list_images, load_image

CALIBRATION_SIZE = 256
# A floor for activation ranges worth trusting, not a tuned value: on the 250 held-out sample
# images (docs/benchmarks.md, "Accuracy across kernels and CPUs"), calibrating on 8 images
# lost 0-5 images of top-1 against 250 calibration images, on 32 it moved -3 to +3, no more
# than LiteRT's kernel sets differ among themselves.
MIN_CALIBRATION_IMAGES = 32


def _warn_on_stderr(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def calibration_images(
    directory: str | os.PathLike,
    count: int = CALIBRATION_SIZE,
    seed: int = 0,
    preprocessing: dict[str, Any] | None = None,
    force: bool = False,
    warn: Callable[[str], None] = _warn_on_stderr,
    size_flag: str = "--calibration-size",
) -> np.ndarray:
    """`count` images drawn reproducibly (a seeded shuffle of the sorted, recursive listing),
    preprocessed as `load_image(path, **preprocessing)` does.

    An unreadable image is reported through `warn` and replaced by the next one of the draw.
    When the directory holds fewer readable images than `count`, `warn` says how many are
    used; fewer than MIN_CALIBRATION_IMAGES when at least that many were asked for is an
    ImageError unless `force`, whose hint names the caller's `size_flag` for the count.
    """
    prep = preprocessing or {}
    if not Path(directory).is_dir():
        what = "path is not a directory" if Path(directory).exists() else "directory not found"
        raise ImageError(f"{directory}: calibration {what}")
    files = list_images([directory])
    order = np.random.default_rng(seed).permutation(len(files))

    def load(path: Path) -> np.ndarray | ImageError:
        try:
            return load_image(path, **prep)
        except ImageError as exc:
            return exc

    images: list[np.ndarray] = []
    skipped = drawn = 0
    with (
        decode_pool() as pool,
        tqdm(
            total=count, desc="calibration", unit="img", leave=False, file=sys.stderr, disable=None
        ) as bar,  # no bar when stderr is not a terminal
    ):
        try:
            while len(images) < count and drawn < len(files):
                chosen = [files[i] for i in order[drawn : drawn + count - len(images)]]
                drawn += len(chosen)
                for result in pool.map(load, chosen):
                    if isinstance(result, ImageError):
                        skipped += 1
                        warn(f"calibration image skipped: {result}")
                    else:
                        images.append(result)
                        bar.update()
        except BaseException:
            # Interrupted: the images not yet started are dropped, not decoded first.
            pool.shutdown(cancel_futures=True)
            raise
    if not images:
        raise ImageError(f"{directory}: no readable calibration images ({skipped} unreadable)")
    if len(images) < count:
        found = f"{directory}: {len(images)} readable calibration images"
        found += f" ({skipped} unreadable)" if skipped else ""
        # Refused only where the user asked for a proper set and the directory cannot give
        # the minimum; asking for fewer than the minimum is the user's own choice.
        if len(images) < MIN_CALIBRATION_IMAGES <= count and not force:
            raise ImageError(
                f"{found}, fewer than the {MIN_CALIBRATION_IMAGES} needed for a stable "
                f"calibration; add images, ask for {len(images)} with {size_flag}, or "
                "pass --force"
            )
        warn(f"{found}, not the {count} asked for; calibrating on {len(images)}")
    return np.stack(images)


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of preprocessed images as float32: what a model records of its calibration
    images, by which `compare` knows it redraws the same ones."""
    return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()
