"""Real ImageNet weights (the fixture .tflite, dequantized) classify real photos."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMAGES, SAMPLE

from mobilenet_v2 import decode_predictions, load_image
from mobilenet_v2.base.labels import synset_to_index

pytestmark = [pytest.mark.shared, pytest.mark.integration]  # 500-image accuracy on ../shared


def top1(model, name: str, resize: str) -> str:
    scores = model.predict(load_image(IMAGES / name, resize=resize)[None], verbose=0)
    return decode_predictions(scores, top=1)[0][0][1]


def test_grace_hopper_stretched_is_military_uniform(fixture_model):
    scores = fixture_model.predict(
        load_image(IMAGES / "grace_hopper.bmp", resize="stretch")[None], verbose=0
    )
    synset, name, score = decode_predictions(scores, top=1)[0][0]
    assert (synset, name) == ("n03763968", "military_uniform")
    assert score == pytest.approx(0.906, abs=0.002)
    assert scores.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("cat.bmp", "Egyptian_cat"),
        ("parrot.jpg", "macaw"),
        ("hot_dog.jpg", "hotdog"),
        ("bird.bmp", "chickadee"),
        ("dragonfly.bmp", "dragonfly"),
    ],
)
@pytest.mark.parametrize("resize", ["crop", "stretch"])
def test_real_photos(fixture_model, image, expected, resize):
    assert top1(fixture_model, image, resize) == expected


def test_top1_on_the_imagenet_sample_with_crop(fixture_model):
    files = sorted(SAMPLE.glob("*.JPEG"))
    assert len(files) == 500
    labels = np.array([synset_to_index()[p.name.split("_")[0]] for p in files])
    x = np.stack([load_image(p, resize="crop") for p in files])
    predicted = fixture_model.predict(x, batch_size=50, verbose=0).argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    print(f"top-1 on {len(files)} sample images: {accuracy:.3f}")
    # 90.4 % (452 images) on AMD EPYC and on Intel Xeon: float arithmetic, where another
    # CPU's kernels can only flip near-ties. Allowed: 4 images fewer (one image = 0.2 points);
    # the seed's stretch preprocessing, about 6 points less, fails.
    assert accuracy >= 0.896 - 1e-9
