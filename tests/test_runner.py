"""The one batch runner (`mobilenet_v2.inference.runner`), on both engines through the same
call, `classify_images`: one row per input in the inputs' order, an image that cannot be read
is a row with an error, an interrupted run resumes from its journal, and a Ray worker that
dies is retried without losing or doubling a row, also where the workers write the rows as
part files.

A fake classifier (ten classes of its own, scores from the pixels) stands in for a model:
the runner is what is tested, not LiteRT. Images are generated here; no ../shared data. One
local Ray serves the module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import require_integration
from PIL import Image

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.preprocess import load_pixels
from mobilenet_v2.inference.result_parts import MARKER, read_parts, staging_path
from mobilenet_v2.inference.results import journal_path, read_results
from mobilenet_v2.inference.runner import classify_images

LABELS = tuple(f"class_{k}" for k in range(10))
TOP = 3


class FakeClassifier:
    """Ten classes; class k scores the fractional part of (k + 1) x the image's mean
    pixel, plus 0.01 (every class above 0): distinct images, distinct rankings."""

    name = "fake"
    input_size = (8, 8)
    preprocessing: ClassVar[dict[str, Any]] = {
        "resize": "crop",
        "crop_fraction": 0.875,
        "mean": 0.0,
        "std": 255.0,
    }
    labels = LABELS
    classes = len(LABELS)
    label_offset = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        means = images.reshape(len(images), -1).mean(axis=1, dtype=np.float64)
        factors = np.arange(1, len(LABELS) + 1)
        return ((means[:, None] * factors) % 1.0 + 0.01).astype(np.float32)


class InterruptedAfterOneBatch(FakeClassifier):
    """The fake, whose second batch is interrupted (as by Ctrl-C)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().predict(images)


class DiesOnce(FakeClassifier):
    """The fake, whose first prediction anywhere kills its process (as a machine lost
    mid-job would), once: `marker` records that it happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def predict(self, images: np.ndarray) -> np.ndarray:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().predict(images)
        os.close(fd)
        os._exit(1)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Six generated images (each of one grey level) and, third, text named .png."""
    folder = tmp_path_factory.mktemp("images")
    found = []
    for level in (10, 60, 110, 160, 210, 250):
        path = folder / f"grey_{level:03d}.png"
        Image.new("RGB", (24, 16), (level, level, level)).save(path)
        found.append(path)
    corrupt = folder / "corrupt.png"
    corrupt.write_text("not an image")
    found.insert(2, corrupt)
    return found


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; the runner uses a session already connected. The fakes
    travel to its workers by value (they are not importable there)."""
    ray = pytest.importorskip("ray")
    require_integration("starts Ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="error",
    )
    yield
    ray.shutdown()


@pytest.fixture(params=["default", pytest.param("ray", marks=pytest.mark.integration)])
def engine(request) -> str:
    if request.param == "ray":
        request.getfixturevalue("local_ray")
    return request.param


def expected_names(path: Path) -> list[str]:
    """The fake's top classes for one image, straight from its pixels."""
    pixels = load_pixels(path, (8, 8), "crop", 0.875)[None].astype(np.float32) / 255.0
    scores = FakeClassifier().predict(pixels)[0]
    return [LABELS[k] for k in np.argsort(-scores, kind="stable")[:TOP]]


def test_each_input_is_one_row_in_the_inputs_order_a_corrupt_image_a_row_with_its_error(
    engine, images
):
    rows = classify_images(images, FakeClassifier(), engine=engine, top=TOP, batch_size=2)
    assert [r.path for r in rows] == [str(p) for p in images]
    assert rows[2].error == f"{images[2]}: not an image Pillow can read"
    assert (rows[2].synsets, rows[2].names, rows[2].scores) == ([], [], [])
    good = [(path, row) for path, row in zip(images, rows, strict=True) if path != images[2]]
    assert [row.names for _, row in good] == [expected_names(path) for path, _ in good]
    assert all(row.synsets == row.names and row.error is None for _, row in good)
    assert {(row.model, row.model_sha256) for row in rows} == {("fake", "")}


def test_an_interrupted_run_resumes_from_its_journal_with_one_row_per_input(
    engine, images, tmp_path
):
    """The first run stops in its second batch (two rows journaled, no output); the same
    call with resume=True, on either engine, classifies only the rest."""
    out = tmp_path / "rows.jsonl"
    with pytest.raises(KeyboardInterrupt):
        classify_images(images, InterruptedAfterOneBatch(), output=out, top=TOP, batch_size=2)
    assert not out.exists()
    assert [r.path for r in read_results(journal_path(out))] == [str(p) for p in images[:2]]

    summary = classify_images(
        images, FakeClassifier(), output=out, resume=True, engine=engine, top=TOP, batch_size=2
    )
    assert (summary.kept, summary.images, summary.failures) == (2, 5, 1)
    rows = read_results(out)
    assert [r.path for r in rows] == [str(p) for p in images]
    assert rows == classify_images(images, FakeClassifier(), top=TOP)
    assert not journal_path(out).exists()


def test_a_ray_worker_that_dies_is_retried_without_losing_or_doubling_a_row(
    local_ray, images, tmp_path
):
    marker = tmp_path / "died"
    rows = classify_images(images, DiesOnce(marker), engine="ray", top=TOP, batch_size=2)
    assert marker.exists(), "no worker died"
    assert rows == classify_images(images, FakeClassifier(), top=TOP, batch_size=2)


def test_an_interrupted_ray_run_keeps_every_row_that_finished_whatever_its_order(
    local_ray, images, tmp_path, monkeypatch
):
    """Ray's batches finish in any order. Here they arrive last first, and the run is
    interrupted while the first input's batch is still out: every row that came is in the
    journal, and resume classifies only that batch, one row per input, in the inputs' order."""
    import ray.data

    iter_batches = ray.data.Dataset.iter_batches
    still_out: list[int] = []

    def last_first_then_interrupted(self, **kwargs):
        batches = list(iter_batches(self, **kwargs))
        first = next(batch for batch in batches if 0 in batch["index"])
        still_out.extend(int(p) for p in first["index"])
        yield from reversed([batch for batch in batches if batch is not first])
        raise KeyboardInterrupt

    monkeypatch.setattr(ray.data.Dataset, "iter_batches", last_first_then_interrupted)
    out = tmp_path / "rows.jsonl"
    with pytest.raises(KeyboardInterrupt):
        classify_images(images, FakeClassifier(), output=out, engine="ray", top=TOP, batch_size=2)
    finished = [str(p) for i, p in enumerate(images) if i not in still_out]
    journaled = [r.path for r in read_results(journal_path(out))]
    assert sorted(journaled) == sorted(finished) and journaled != finished  # as they came

    monkeypatch.undo()
    summary = classify_images(
        images, FakeClassifier(), output=out, resume=True, engine="ray", top=TOP, batch_size=2
    )
    kept = [path for path in finished if path != str(images[2])]  # an error row is tried again
    assert (summary.kept, summary.images) == (len(kept), len(images) - len(kept))
    assert read_results(out) == classify_images(images, FakeClassifier(), top=TOP)
    assert not journal_path(out).exists()


class Float64Scores(FakeClassifier):
    """The fake, scoring in float64 (a Classifier may): rows carry float32 scores."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        return super().predict(images).astype(np.float64) + 1e-9


def test_both_engines_give_the_same_float32_scores_whatever_the_classifier_computes_in(
    local_ray, images
):
    here = classify_images(images, Float64Scores(), top=TOP, batch_size=2)
    on_ray = classify_images(images, Float64Scores(), engine="ray", top=TOP, batch_size=2)
    assert here == on_ray
    scores = [s for row in here for s in row.scores]
    assert scores and all(s == float(np.float32(s)) for s in scores)


# --- Rows written by the Ray engine's workers, as part files ----------------------------------


def by_path(rows):
    return sorted(rows, key=lambda r: r.path)


def test_a_ray_worker_that_dies_is_retried_and_its_batch_still_has_one_part(
    local_ray, images, tmp_path
):
    marker = tmp_path / "died"
    output = f"{tmp_path}/rows/"
    summary = classify_images(
        images, DiesOnce(marker), output=output, engine="ray", top=TOP, batch_size=2
    )
    assert marker.exists(), "no worker died"
    assert (summary.images, summary.failures, summary.output) == (7, 1, output)
    rows = read_parts(tmp_path / "rows", "parquet")
    assert by_path(rows) == by_path(classify_images(images, FakeClassifier(), top=TOP))
    names = sorted(p.name for p in (tmp_path / "rows").iterdir())
    assert len(names) == 5 and names[0] == MARKER  # four batches of 2, 2, 2 and 1 inputs
    assert not staging_path(output).exists()


def test_an_interrupted_parts_run_leaves_no_output_and_resumes_to_one_row_per_input(
    local_ray, images, tmp_path, monkeypatch
):
    """The driver is interrupted after the first batch came back, and a worker was killed
    while writing a part (its temporary file is left): no output directory; resume keeps
    the rows of the parts written, classifies the rest (and the corrupt image again), and
    the output holds each input once, the temporary file gone."""
    import ray.data

    iter_batches = ray.data.Dataset.iter_batches

    def interrupted(self, **kwargs):
        yield from list(iter_batches(self, **kwargs))[:1]
        raise KeyboardInterrupt

    monkeypatch.setattr(ray.data.Dataset, "iter_batches", interrupted)
    output = f"{tmp_path}/rows.jsonl/"
    args = {"engine": "ray", "top": TOP, "batch_size": 2}
    with pytest.raises(KeyboardInterrupt):
        classify_images(images, FakeClassifier(), output=output, **args)
    assert not (tmp_path / "rows.jsonl").exists()
    staging = staging_path(output)
    parts = sorted(staging.glob("part-*.jsonl"))
    assert len(parts) == 4  # the workers wrote every batch before the driver stopped
    parts[-1].rename(staging / f".{parts[-1].name}.k1ll3d")  # as a kill mid-write leaves it

    monkeypatch.undo()
    summary = classify_images(images, FakeClassifier(), output=output, resume=True, **args)
    assert (summary.kept, summary.images) == (5, 2)
    rows = read_parts(tmp_path / "rows.jsonl", "jsonl")
    assert by_path(rows) == by_path(classify_images(images, FakeClassifier(), top=TOP))
    assert not any(p.name.startswith(".") for p in (tmp_path / "rows.jsonl").iterdir())
    assert not staging.exists()


def test_a_folder_of_the_users_is_never_replaced_by_parts(images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"a photo")
    with pytest.raises(MobileNetV2Error, match="holds no parts of mobilenet-v2's"):
        classify_images(images, FakeClassifier(), output=f"{folder}/", engine="ray")
    assert [p.name for p in folder.iterdir()] == ["holiday.jpg"]
