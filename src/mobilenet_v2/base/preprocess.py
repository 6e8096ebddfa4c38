"""Image decoding and the network's input preprocessing (Pillow and NumPy only)."""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mobilenet_v2.base.errors import ImageError
from mobilenet_v2.base.sources import Source, is_url, list_sources, read_url

T = TypeVar("T")
R = TypeVar("R")

RESIZE_MODES = ("crop", "stretch", "mediapipe")
BICUBIC_RESIZE_MODES = ("crop", "stretch")  # Pillow's resize: what a SavedModel's graph copies
# How an image is cut and resized for a model: ((height, width), resize, crop_fraction), the
# arguments of `resize_image` after the image (and of `load_pixels` after the source).
Geometry = tuple[tuple[int, int], str, float]
# The MobileNet convention: inputs scaled to [-1, 1], ImageNet evaluation crop.
DEFAULT_PREPROCESSING = {"mean": 127.5, "std": 127.5, "resize": "crop", "crop_fraction": 0.875}


def decode_image(
    source: Source | os.PathLike,
    size: int | tuple[int, int] | None = None,
    resize: str = "crop",
    crop_fraction: float = 0.875,
) -> Image.Image:
    """Decode any image Pillow reads (a local file or a URL, see `mobilenet_v2.base.sources`) into
    8-bit RGB, upright per its EXIF orientation.

    With `size` (and `resize`, `crop_fraction` as `resize_image` will use them), a JPEG at
    least twice as large as the resize needs is decoded at 1/2, 1/4 or 1/8 scale by libjpeg's
    DCT scaling (`Image.draft`), never below twice what the resize needs: far less work for
    photo-sized JPEGs, and the top-1 agreement with the full decode measured in
    docs/benchmarks.md. Refuses decompression bombs (more pixels than
    `PIL.Image.MAX_IMAGE_PIXELS`).
    """
    if size is not None:
        check_resize(resize, crop_fraction)
    if is_url(source):
        name, data = source, read_url(source)
        opened, empty = io.BytesIO(data), not data
    else:  # opened lazily: the bomb check reads the header before any pixel
        name = opened = Path(source)
        if not name.exists():
            raise ImageError(f"{name}: image not found")
        if name.is_dir():
            raise ImageError(f"{name}: is a directory, not an image")
        empty = name.stat().st_size == 0
    if empty:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as img:
                if size is not None and img.format == "JPEG":
                    reduction = _draft_reduction(img.size, size, resize, crop_fraction)
                    if reduction >= 2:
                        width, height = img.size
                        img.draft("RGB", (-(-width // reduction), -(-height // reduction)))
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS} pixels; a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"{name}: cannot decode image ({exc})") from None


def _draft_reduction(
    image_size: tuple[int, int], size: int | tuple[int, int], resize: str, crop_fraction: float
) -> int:
    """How many times smaller than stored a JPEG may be decoded (1, 2, 4 or 8) so that the
    region the resize reads still has at least twice the output's pixels in each direction.
    Taken over both orientations, since EXIF may turn the image after decoding."""
    if resize == "mediapipe":  # emulates a resize without antialiasing: decode it all
        return 1
    height, width = (size, size) if isinstance(size, int) else size
    spare = min(image_size) / max(width, height) / 2
    if resize == "crop":
        spare *= crop_fraction
    return next(r for r in (8, 4, 2, 1) if r <= max(spare, 1))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (and 32-bit) grayscale: scale the 0..65535 range down to 8 bits.
        values = np.asarray(img, dtype=np.float64)
        if img.mode != "F" or values.max(initial=0) > 255:
            values = values / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    # Alpha is dropped as keras.utils.load_img and tf.io.decode_image(channels=3) drop it.
    return img if img.mode == "RGB" else img.convert("RGB")


def central_square(
    width: int, height: int, crop_fraction: float = 0.875
) -> tuple[float, float, float, float]:
    """The `crop` resize's region of a width x height image, as (left, top, right, bottom)
    normalized to [0, 1]: what to give MediaPipe Tasks as the region of interest for the
    ImageNet crop, which they do not make themselves."""
    fx = crop_fraction * min(width, height) / width
    fy = crop_fraction * min(width, height) / height
    return (1 - fx) / 2, (1 - fy) / 2, (1 + fx) / 2, (1 + fy) / 2


def resize_image(
    img: Image.Image,
    size: int | tuple[int, int] = 224,
    resize: str = "crop",
    crop_fraction: float = 0.875,
) -> Image.Image:
    """`crop`: the ImageNet evaluation protocol: a centered square `crop_fraction` of the
    shorter side (as resizing the shorter side to 256 and center-cropping 224), resized to
    `size`; `stretch`: resize the whole image, ignoring its aspect ratio (the seed's way).
    Both bicubic, with the crop box kept at sub-pixel precision. `mediapipe`: the whole image
    as MediaPipe Tasks' ImageClassifier feeds it on CPU, for calibrating and checking a model
    an app will run there."""
    check_resize(resize, crop_fraction)
    height, width = (size, size) if isinstance(size, int) else size
    if resize == "mediapipe":
        # MediaPipe warps the image's corners onto the tensor's with OpenCV's
        # warpPerspective, INTER_LINEAR: bilinear sampling at (x * scale) in pixel indices,
        # no antialiasing however much it shrinks. Pillow's affine transform samples alike
        # (pixel centres, hence the half-pixel terms). Enlarging, the last samples fall
        # past the last pixel: a one-pixel replicated border gives them OpenCV's
        # BORDER_REPLICATE values. A test keeps it within one level of OpenCV, both ways.
        padded = Image.fromarray(np.pad(np.asarray(img), ((1, 1), (1, 1), (0, 0)), "edge"))
        sx, sy = img.width / width, img.height / height
        data = (sx, 0.0, 1.5 - 0.5 * sx, 0.0, sy, 1.5 - 0.5 * sy)
        return padded.transform((width, height), Image.Transform.AFFINE, data, Image.BILINEAR)
    box = (0.0, 0.0, float(img.width), float(img.height))
    if resize == "crop":
        # A square box for a square output; in general the output's aspect ratio.
        scale = min(img.width / width, img.height / height) * crop_fraction
        # At crop_fraction 1 the shorter side's offset is 0 up to rounding, which can make it
        # -1e-14: Pillow refuses a negative box offset.
        dx = max((img.width - width * scale) / 2, 0.0)
        dy = max((img.height - height * scale) / 2, 0.0)
        box = (dx, dy, img.width - dx, img.height - dy)
    return img.resize((width, height), Image.Resampling.BICUBIC, box=box)


def load_image(
    path: Source | os.PathLike,
    size: int | tuple[int, int] = 224,
    resize: str = "crop",
    crop_fraction: float = 0.875,
    mean: float = 127.5,
    std: float = 127.5,
    draft: bool = False,
) -> np.ndarray:
    """Decode, resize and normalize one image: float32 (height, width, 3), `(x - mean) / std`.

    `draft`: decode large JPEGs at a reduced scale (see `decode_image`): for classifying
    many photos; off by default, so that golden tensors come from the full decode."""
    check_normalization(mean, std)
    return normalize(load_pixels(path, size, resize, crop_fraction, draft), mean, std)


def load_pixels(
    path: Source | os.PathLike,
    size: int | tuple[int, int] = 224,
    resize: str = "crop",
    crop_fraction: float = 0.875,
    draft: bool = False,
) -> np.ndarray:
    """Decode and resize one image: uint8 (height, width, 3), before normalization (a
    quarter of float32's size; `normalize` gives the network's input)."""
    img = decode_image(path, size, resize, crop_fraction) if draft else decode_image(path)
    return np.asarray(resize_image(img, size, resize, crop_fraction))


def preprocess_image(
    img: Image.Image,
    size: int | tuple[int, int] = 224,
    resize: str = "crop",
    crop_fraction: float = 0.875,
    mean: float = 127.5,
    std: float = 127.5,
) -> np.ndarray:
    """Resize and normalize a decoded RGB image (see `load_image`)."""
    check_normalization(mean, std)
    return normalize(np.asarray(resize_image(img, size, resize, crop_fraction)), mean, std)


def geometry_of(prep: dict) -> Geometry:
    """The resize part of a model's preprocessing (as `classifier.preprocessing_for` gives
    it): models that share it can share the resized pixels."""
    size = prep["size"]
    return (
        (size, size) if isinstance(size, int) else tuple(size),
        prep["resize"],
        prep["crop_fraction"],
    )


def normalize(pixels: np.ndarray, mean: float = 127.5, std: float = 127.5) -> np.ndarray:
    """8-bit pixels to the network's float32 input, `(x - mean) / std` (as `load_image`)."""
    return (np.asarray(pixels, dtype=np.float32) - np.float32(mean)) / np.float32(std)


def check_resize(resize: str, crop_fraction: float) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}; received {resize!r}")
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1]; received {crop_fraction}")


def check_normalization(mean: float, std: float) -> None:
    """`(x - mean) / std` must map 8-bit pixels to finite float32 numbers: a positive std that
    float32 can divide by (1e-50 is 0 in float32), a mean that is a pixel value."""
    with np.errstate(all="ignore"):
        finite = math.isfinite(std) and np.isfinite(np.float32(255) / np.float32(std))
    if not (finite and std > 0):
        raise ValueError(
            f"input std must be a positive number float32 can divide by; received {std}"
        )
    if not (math.isfinite(mean) and 0 <= mean <= 255):
        raise ValueError(f"input mean must be a pixel value in [0, 255]; received {mean}")


def list_images(inputs: Iterable[str | os.PathLike]) -> list[Source]:
    """Expand directories (recursively, sorted), globs and URLs to their images; keep files
    as given (see `mobilenet_v2.base.sources.list_sources`)."""
    return list_sources(list(inputs))


def decoded_batches(
    paths: Sequence[T], batch_size: int, load: Callable[[T], R]
) -> Iterator[tuple[list[T], list[R]]]:
    """`(batch, [load(p) for p in batch])` batch by batch, the next batch decoding on the
    pool while the caller works on this one (inference overlaps decoding): at most two
    batches of images are in memory."""
    batches = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    with decode_pool() as pool:
        ahead = [pool.submit(load, p) for p in batches[0]] if batches else []
        for i, batch in enumerate(batches):
            current = ahead
            if i + 1 < len(batches):
                ahead = [pool.submit(load, p) for p in batches[i + 1]]
            yield batch, [future.result() for future in current]


def decode_pool() -> ThreadPoolExecutor:
    """The thread pool that decodes images: Pillow releases the GIL while it decodes and
    resizes, so threads scale; up to 8, no more than the CPUs."""
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
