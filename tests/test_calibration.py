"""Calibration sets: a reproducible draw, unreadable images replaced and reported on stderr,
and a set smaller than asked for warned about, or refused below the minimum."""

from __future__ import annotations

import pytest
from conftest import IMAGES

from mobilenet_v2.base.calibration import MIN_CALIBRATION_IMAGES, calibration_images
from mobilenet_v2.base.errors import ImageError

pytestmark = pytest.mark.shared  # every test here reads ../shared

PREP = {"size": 32}


@pytest.fixture
def photos(tmp_path):
    """The 8 shared photos and one file that only looks like a JPEG."""
    for image in IMAGES.iterdir():
        (tmp_path / image.name).symlink_to(image)
    (tmp_path / "broken.jpg").write_text("not a JPEG")
    return tmp_path


def test_unreadable_images_are_replaced_by_the_next_ones_drawn(photos):
    for i in range(7):  # 8 broken among 16: the first 8 drawn cannot all be photos
        (photos / f"broken{i}.jpg").write_text("not a JPEG")
    warnings = []
    images = calibration_images(photos, 8, preprocessing=PREP, warn=warnings.append)
    assert images.shape == (8, 32, 32, 3)  # every photo, whatever the draw
    assert warnings and all("broken" in w and "skipped" in w for w in warnings)


def test_fewer_readable_images_than_the_minimum_are_refused(photos):
    asked = MIN_CALIBRATION_IMAGES + 10
    with pytest.raises(ImageError) as error:
        calibration_images(photos, asked, preprocessing=PREP, warn=lambda _: None)
    message = str(error.value)
    assert message.startswith(f"{photos}: 8 readable calibration images (1 unreadable), fewer ")
    assert f"the {MIN_CALIBRATION_IMAGES} needed" in message and "--force" in message


def test_forced_or_asked_for_few_images_calibrate_on_what_there_is(photos):
    warnings = []
    images = calibration_images(photos, 100, preprocessing=PREP, force=True, warn=warnings.append)
    assert len(images) == 8
    found = f"{photos}: 8 readable calibration images (1 unreadable)"
    assert warnings[-1] == f"{found}, not the 100 asked for; calibrating on 8"
    # Asking for as many as there are is the user's choice: nothing to warn about but the
    # unreadable file, if the draw met it.
    warnings.clear()
    assert len(calibration_images(photos, 8, preprocessing=PREP, warn=warnings.append)) == 8
    assert all("skipped" in w for w in warnings)


def test_asking_for_fewer_than_the_minimum_only_warns_when_short(photos):
    warnings = []
    images = calibration_images(photos, 20, preprocessing=PREP, warn=warnings.append)
    assert len(images) == 8 and warnings[-1].endswith("not the 20 asked for; calibrating on 8")


def test_a_missing_calibration_directory_is_not_found(tmp_path):
    with pytest.raises(ImageError, match=r"missing: calibration directory not found$"):
        calibration_images(tmp_path / "missing", 8)
    (tmp_path / "one.jpg").symlink_to(IMAGES / "parrot.jpg")
    with pytest.raises(ImageError, match=r"one\.jpg: calibration path is not a directory$"):
        calibration_images(tmp_path / "one.jpg", 8)


def test_warnings_go_to_stderr_not_stdout(photos, capsys):
    calibration_images(photos, 9, preprocessing=PREP, force=True)  # draws the broken file
    captured = capsys.readouterr()
    assert captured.out == "" and "warning: calibration image skipped: " in captured.err
    assert "warning: " + f"{photos}: 8 readable calibration images" in captured.err
