"""Shared test data lives in ../shared (override with MOBILENET_V2_SHARED); read in place.

Tiers: tests marked `shared` read that data; without it they are skipped (with the reason)
and the rest still run, except in CI (`CI` set), where missing data is an error. Tests that
convert a model, start Ray, run the programs end to end in fresh processes, run the
500-image accuracy checks or fine-tune are `integration`: in the default run, and
`-m "not integration and not slow"` leaves them out for a quick pass.

The default run uses two pytest-xdist workers, each test file's tests on one of them
(pyproject.toml); a session fixture that converts a model is made once for both of them
(`made_once`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"
FIXTURE_TFLITE = DATA / "models" / "mobilenet_v2_1.0_224_quant.tflite"
IMAGES = DATA / "images"
SAMPLE = DATA / "imagenet" / "sample"
CLASSES_TSV = DATA / "imagenet" / "classes.tsv"


# Session fixtures that convert a model: the tests using them are integration tests.
CONVERTING_FIXTURES = {"int8_model", "int8_float_io_model", "uint8_model", "per_tensor_model"}
CONVERTING_FIXTURES |= {"int16x8_model", "models", "accuracy"}
# Fixtures that start Ray: a start-up costs what a small conversion does.
RAY_FIXTURES = {"local_ray"}
INTEGRATION_FIXTURES = CONVERTING_FIXTURES | RAY_FIXTURES
# Fixtures that read ../shared: a test using one needs the data whatever its marks say.
SHARED_FIXTURES = CONVERTING_FIXTURES | {"fixture_model", "real_images", "splits"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the tiers select on these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)
        if fixtures & SHARED_FIXTURES:
            item.add_marker(pytest.mark.shared)


_running: list[pytest.Item] = []  # the test whose fixtures are being set up or that runs


def require_integration(what: str) -> None:
    """Fail a test that reaches an integration fixture without the mark, as one that calls
    `request.getfixturevalue` does (collection cannot see it): the quick tier must never
    convert a model or start Ray by accident."""
    if _running and not _running[0].get_closest_marker("integration"):
        pytest.fail(f"{_running[0].nodeid} {what}: mark it `integration`", pytrace=False)


def made_once(request: pytest.FixtureRequest, name: str, make) -> Path:
    """The file or folder `make(path)` creates, made once per test run however many xdist
    workers need it: the first makes it under a file lock, the others wait and reuse it.
    `make` must create `path` whole or not at all (convert writes a temporary file and
    renames it), so that a failure leaves nothing that looks complete."""
    root = request.getfixturevalue("tmp_path_factory").getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its folder is in the run's
        root = root.parent
    path = root / "made-once" / name
    path.parent.mkdir(exist_ok=True)
    with FileLock(f"{path}.lock"):
        if not path.exists():
            make(path)
    return path


@pytest.hookimpl(trylast=True)  # after `-m` has deselected: only the tests that will run
def pytest_collection_finish(session: pytest.Session) -> None:
    missing = [item for item in session.items if item.get_closest_marker("shared")]
    if not missing or FIXTURE_TFLITE.is_file():
        return
    reason = f"shared test data not found at {SHARED}; set MOBILENET_V2_SHARED to its location"
    if not os.environ.get("CI"):
        for item in missing:
            item.add_marker(pytest.mark.skip(reason=reason))
    elif not hasattr(session.config, "workerinput"):
        raise pytest.UsageError(f"{reason} ({len(missing)} tests need it)")
    else:  # an xdist worker cannot stop the run with a usage error: each such test fails
        for item in missing:
            item.add_marker(pytest.mark.missing_shared_data(reason))


@pytest.hookimpl(tryfirst=True)  # before any of the test's fixtures is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]
    missing = item.get_closest_marker("missing_shared_data")
    if missing:
        pytest.fail(missing.args[0], pytrace=False)


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their weights explicitly; a user's default must not leak in."""
    monkeypatch.delenv("MOBILENET_V2_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def fixture_model():
    """The real ImageNet weights (the fixture .tflite) in our float model, 224x224."""
    from mobilenet_v2 import MobileNetV2

    return MobileNetV2(weights=str(FIXTURE_TFLITE))


def randomize(model, seed: int = 0) -> None:
    """Random but well-scaled values for every weight, BN statistics included, so that a
    parity check exercises gamma, beta, moving mean and moving variance too."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for var in layer.weights:
            shape = tuple(var.shape)
            if var.name == "moving_variance" or var.name == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif var.name in ("moving_mean", "beta", "bias"):
                value = rng.normal(0.0, 0.1, shape)
            else:
                value = var.numpy()  # Keras' own initializer values
            values.append(value.astype(np.float32))
        if values:
            layer.set_weights(values)


def copy_weights(source, target) -> None:
    """Copy weights layer by layer by name (both follow keras.applications' names)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


@pytest.fixture(scope="session")
def real_images() -> np.ndarray:
    """A batch of three real photos preprocessed for 224x224."""
    from mobilenet_v2 import load_image

    names = ["grace_hopper.bmp", "parrot.jpg", "hot_dog.jpg"]
    return np.stack([load_image(IMAGES / n) for n in names])


GOOD_IMAGES = ["parrot.jpg", "hot_dog.jpg", "grace_hopper.bmp", "cat.bmp"]
BAD_IMAGES = ["empty.jpg", "text.jpg", "cut.jpg"]


def good_and_bad_images(folder: Path) -> Path:
    """Four photos and three files that are not images: empty, text, a cut-off JPEG."""
    folder.mkdir()
    for name in GOOD_IMAGES:
        shutil.copy(IMAGES / name, folder / name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a JPEG")
    (folder / "cut.jpg").write_bytes((IMAGES / "parrot.jpg").read_bytes()[:2000])
    return folder


def split(directory: Path, keep) -> Path:
    """A directory of links to the sample images whose class index satisfies `keep`."""
    from mobilenet_v2.base.labels import synset_to_index

    directory.mkdir()
    for image in sorted(SAMPLE.glob("*.JPEG")):
        if keep(synset_to_index()[image.name.split("_")[0]]):
            (directory / image.name).symlink_to(image)
    return directory


@pytest.fixture(scope="session")
def splits(request) -> tuple[Path, Path]:
    """The 500 sample images split by class index: calibration (index % 4 == 0) and
    evaluation (index % 4 == 2), 250 each, so that no image is in both. One folder for
    every worker: the models calibrated on it record its path."""

    def make(root: Path) -> None:
        partial = root.with_name(f"{root.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)  # what a failed attempt left
        partial.mkdir()
        split(partial / "calibration", lambda i: i % 4 == 0)
        split(partial / "evaluation", lambda i: i % 4 == 2)
        partial.rename(root)

    root = made_once(request, "splits", make)
    return root / "calibration", root / "evaluation"


def converted(request: pytest.FixtureRequest, name: str, *args: str) -> Path:
    """`convert --output NAME --weights FIXTURE ARGS`, made once for the test run."""
    from mobilenet_v2.cli import main

    require_integration("converts a model")

    def make(path: Path) -> None:
        weights = ["--weights", str(FIXTURE_TFLITE)]
        assert main(["convert", "--output", str(path), *weights, *args]) == 0

    return made_once(request, name, make)


def calibrated(request, splits, name: str, size: int, io_type: str, *extra: str) -> Path:
    """The fixture weights as our INT8 model, calibrated on `size` images of the
    calibration split."""
    calibration = ["--calibration-dir", str(splits[0]), "--calibration-size", str(size)]
    return converted(request, name, *calibration, "--io-type", io_type, *extra)


@pytest.fixture(scope="session")
def int8_model(request, splits) -> Path:
    """Our full-integer conversion of the fixture weights, int8 input and output, calibrated
    on all 250 images of the calibration split: the one INT8 model every test file shares."""
    return calibrated(request, splits, "int8.tflite", 250, "int8")


def float_weights(request: pytest.FixtureRequest) -> Path:
    """The fixture weights as a float Keras file (.weights.h5), made once: the same values,
    with no quantization grid for a conversion to keep."""

    def make(path: Path) -> None:
        from mobilenet_v2 import MobileNetV2

        partial = path.with_name(f"partial.{path.name}")
        MobileNetV2(weights=str(FIXTURE_TFLITE)).save_weights(partial)
        partial.rename(path)

    return made_once(request, "fixture.weights.h5", make)


@pytest.fixture(scope="session")
def int8_float_io_model(request, splits) -> Path:
    """With float32 input and output: QUANTIZE in front, DEQUANTIZE at the end. Calibrated on
    64 images of the same split: the tests using it check structure, not accuracy. Converted
    from the fixture weights saved as float (`float_weights`), so that its weights are the
    converter's own requantization: the one INT8 model of a float source."""
    weights = ["--weights", str(float_weights(request))]  # the last --weights wins
    return calibrated(request, splits, "int8_float32_io.tflite", 64, "float32", *weights)


@pytest.fixture(scope="session")
def per_tensor_model(request, splits) -> Path:
    """INT8 with one scale per weight tensor (`--per-tensor`), made usable by every rewrite
    (`--equalize --absorb-bias --bias-correction`), calibrated on 64 images of the
    calibration split, which the rewrites use too (docs/benchmarks.md used all 250; its
    tests check structure, bit-exactness, what the metadata records and an accuracy floor)."""
    name = "int8_per_tensor.tflite"
    steps = ("--equalize", "--absorb-bias", "--bias-correction")
    return calibrated(request, splits, name, 64, "int8", "--per-tensor", *steps)


@pytest.fixture(scope="session")
def int16x8_model(request, splits) -> Path:
    """A16W8 (`--quantize int16x8`: int16 activations, int8 weights, int64 biases) of the
    fixture weights, with float32 input and output so that its graph holds every op a 16x8
    model can (QUANTIZE and DEQUANTIZE too). Calibrated on 32 images of the calibration
    split (the floor): its tests check structure, bit-exactness and an accuracy floor on 50
    images, since LiteRT runs 16x8 on its reference kernels (benchmarks/a16w8.py: 250)."""
    return calibrated(request, splits, "int16x8.tflite", 32, "float32", "--quantize", "int16x8")


@pytest.fixture(scope="session")
def uint8_model(request, splits) -> Path:
    """With uint8 input and output, the INT8 model MediaPipe Tasks accept (they refuse int8
    input tensors). Calibrated on 64 images: its tests compare runtimes on one model."""
    return calibrated(request, splits, "int8_uint8_io.tflite", 64, "uint8")


@pytest.fixture(scope="session")
def models(request, int8_model) -> dict[str, Path]:
    """Our conversions of the fixture weights: the shared INT8 model (calibrated on the
    calibration split) and float16, dynamic-range and float32 ones."""
    made = {"int8": int8_model}
    for kind in ("float16", "dynamic", "none"):
        made[kind] = converted(request, f"{kind}.tflite", "--quantize", kind)
    return made
