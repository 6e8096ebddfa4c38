"""Shared test data lives in ../shared (override with MOBILENET_V2_SHARED); read in place."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"
FIXTURE_TFLITE = DATA / "models" / "mobilenet_v2_1.0_224_quant.tflite"
IMAGES = DATA / "images"
SAMPLE = DATA / "imagenet" / "sample"
CLASSES_TSV = DATA / "imagenet" / "classes.tsv"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not FIXTURE_TFLITE.is_file():
        raise pytest.UsageError(
            f"shared test data not found at {SHARED}; set MOBILENET_V2_SHARED to its location"
        )


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


def _convert_fixture(directory: Path, io_type: str) -> Path:
    """The fixture weights as our calibrated INT8 model (64 sample images: class index % 4 == 0)."""
    from mobilenet_v2.cli import main
    from mobilenet_v2.labels import synset_to_index

    calibration = directory / "calibration"
    calibration.mkdir(exist_ok=True)
    for image in sorted(SAMPLE.glob("*.JPEG")):
        if synset_to_index()[image.name.split("_")[0]] % 4 == 0:
            link = calibration / image.name
            if not link.exists():
                link.symlink_to(image)
    path = directory / f"int8_{io_type}_io.tflite"
    args = ["convert", "--output", str(path), "--weights", str(FIXTURE_TFLITE)]
    args += ["--calibration-dir", str(calibration), "--calibration-size", "64"]
    assert main([*args, "--io-type", io_type]) == 0
    return path


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory) -> Path:
    """Our full-integer conversion of the fixture weights, int8 input and output."""
    return _convert_fixture(tmp_path_factory.mktemp("int8"), "int8")


@pytest.fixture(scope="session")
def int8_float_io_model(tmp_path_factory) -> Path:
    """The same with float32 input and output: QUANTIZE in front, DEQUANTIZE at the end."""
    return _convert_fixture(tmp_path_factory.mktemp("int8f"), "float32")
