"""Image decoding and preprocessing: every format Pillow reads, crop/stretch, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMAGES
from PIL import Image

from mobilenet_v2 import load_image
from mobilenet_v2.base.errors import ImageError
from mobilenet_v2.base.preprocess import decode_image, list_images

RED, BLUE = (255, 0, 0), (0, 0, 255)


def gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.full((height, width, 1), 128.0),
        ],
        axis=2,
    )
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".gif", ".webp", ".tiff"])
def test_formats_decode_to_rgb(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    gradient().save(path)
    x = load_image(path, size=32)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0


def palette_image() -> Image.Image:
    img = Image.new("P", (40, 30), 1)
    img.putpalette([0, 0, 0, 200, 200, 200] + [0] * 762)
    img.info["transparency"] = 0  # a transparent palette entry, unused by the pixels
    return img


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("L", lambda: Image.new("L", (40, 30), 200)),
        ("RGBA", lambda: Image.new("RGBA", (40, 30), (200, 200, 200, 10))),
        ("P", lambda: palette_image()),
        ("CMYK", lambda: Image.new("RGB", (40, 30), (200, 200, 200)).convert("CMYK")),
        ("I;16", lambda: Image.fromarray(np.full((30, 40), 200 * 257, np.uint16))),
    ],
)
def test_color_modes_become_the_same_rgb(tmp_path, mode, make):
    img = make()
    assert img.mode == mode
    path = tmp_path / ("image.tiff" if mode == "CMYK" else "image.png")
    img.save(path)
    np.testing.assert_allclose(np.asarray(decode_image(path)), 200, atol=1)


def test_exif_orientation_is_applied(tmp_path):
    # Stored as 40 wide x 20 tall, left half red; orientation 6 = rotate 90 degrees clockwise
    # for display, so the upright image is 20 x 40 with red on top.
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    upright = np.asarray(decode_image(path))
    assert upright.shape == (40, 20, 3)
    assert upright[5, 10, 0] > 200 and upright[5, 10, 2] < 50  # top: red
    assert upright[35, 10, 2] > 200 and upright[35, 10, 0] < 50  # bottom: blue


def test_normalization_is_x_minus_mean_over_std(tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (50, 50), (255, 255, 255)).save(path)
    np.testing.assert_array_equal(load_image(path, size=8), 1.0)
    np.testing.assert_array_equal(load_image(path, size=8, mean=0.0, std=255.0), 1.0)
    np.testing.assert_array_equal(load_image(path, size=8, mean=128, std=128), 127 / 128)


def test_crop_keeps_the_central_square_and_stretch_keeps_everything(tmp_path):
    # 400 x 200: a red 175 x 175 center square (87.5 % of the short side) on blue.
    img = Image.new("RGB", (400, 200), BLUE)
    img.paste(RED, (112, 12, 288, 188))
    path = tmp_path / "wide.png"
    img.save(path)
    crop = load_image(path, size=64, resize="crop", mean=0, std=1)
    assert (crop[2:-2, 2:-2, 0] > 250).all() and (crop[2:-2, 2:-2, 2] < 5).all()
    stretch = load_image(path, size=64, resize="stretch", mean=0, std=1)
    assert stretch[32, 2, 2] > 250 and stretch[32, 32, 0] > 250  # blue sides, red middle


def test_crop_of_a_square_image_is_its_central_87_5_percent(tmp_path):
    img = gradient(256, 256)
    path = tmp_path / "square.png"
    img.save(path)
    expected = img.resize((224, 224), Image.Resampling.BICUBIC, box=(16, 16, 240, 240))
    np.testing.assert_array_equal(
        load_image(path, 224, "crop", mean=0, std=1), np.asarray(expected)
    )


@pytest.mark.shared
def test_real_photo_with_stretch(tmp_path):
    x = load_image(IMAGES / "grace_hopper.bmp", resize="stretch", mean=0, std=1)
    expected = (
        Image.open(IMAGES / "grace_hopper.bmp")
        .convert("RGB")
        .resize((224, 224), Image.Resampling.BICUBIC)
    )
    np.testing.assert_array_equal(x, np.asarray(expected, np.float32))


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 9_000)).save(path)  # 90 M pixels, a few KB on disk
    with pytest.raises(ImageError, match=r"bomb\.png: image too large"):
        load_image(path)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"this is not an image", "not an image Pillow can read"),
        (None, "cannot decode image"),  # truncated JPEG
    ],
)
def test_unreadable_images_are_refused_naming_them(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is None:
        content = (IMAGES / "parrot.jpg").read_bytes()[:3000]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"bad\.jpg: {message}"):
        load_image(path)


def test_missing_image_and_directory_are_refused(tmp_path):
    with pytest.raises(ImageError, match=r"missing\.jpg: image not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_directories_expand_to_their_images_sorted(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.JPG", "a.png", "sub/c.webp", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path])] == [
        "a.png",
        "b.JPG",
        "sub/c.webp",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="empty: directory contains no images"):
        list_images([tmp_path / "empty"])


def test_decoded_batches_decode_the_next_batch_while_this_one_is_used():
    """Batches come back in order with their decoded values; while the caller holds batch
    0, batch 1 is decoding (inference overlaps decoding) but batch 2 is not (two batches of
    images in memory at most)."""
    import threading

    from mobilenet_v2.base.preprocess import decoded_batches

    started: list[int] = []
    second_batch_started = threading.Event()

    def load(i: int) -> int:
        started.append(i)
        if i == 2:
            second_batch_started.set()
        return i * 10

    batches = decoded_batches(list(range(5)), 2, load)
    batch, values = next(batches)
    assert (batch, values) == ([0, 1], [0, 10])
    assert second_batch_started.wait(timeout=10)
    assert 4 not in started
    assert list(batches) == [([2, 3], [20, 30]), ([4], [40])]


def test_draft_decodes_a_large_jpeg_at_a_reduced_scale_never_below_twice_the_need(tmp_path):
    """A 2048 x 1536 JPEG for a 224 crop of 87.5 %: the crop reads 1344 pixels, so 1/2 scale
    (672 >= 2 x 224) and not 1/4 (336 < 448); a PNG, and no size, decode in full."""
    from PIL import Image

    from mobilenet_v2.base.preprocess import load_pixels

    image = Image.new("RGB", (2048, 1536), (200, 100, 50))
    image.save(tmp_path / "big.jpg", quality=90)
    image.save(tmp_path / "big.png")
    assert decode_image(tmp_path / "big.jpg", 224).size == (1024, 768)
    assert decode_image(tmp_path / "big.jpg").size == (2048, 1536)
    assert decode_image(tmp_path / "big.png", 224).size == (2048, 1536)
    assert decode_image(tmp_path / "big.jpg", 224, "crop", 0.5).size == (2048, 1536)
    pixels = load_pixels(tmp_path / "big.jpg", draft=True)
    assert pixels.shape == (224, 224, 3)
    np.testing.assert_allclose(pixels.mean(axis=(0, 1)), (200, 100, 50), atol=2)
