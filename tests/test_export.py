"""`mobilenet-v2 export --saved-model`: a TF SavedModel that classifies as `classify` does.

One export of the fixture weights (module fixture), read back in one fresh process (the
`served` fixture: TensorFlow's Python loader for 250 of the sample images through both
signatures, and the session loader TF Serving uses on a few), compared with what `classify
--weights <fixture>` computes, through the Python API it uses, in this process. The tests
of bad paths and of the graph's resize against Pillow need no ../shared data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, IMAGES, SAMPLE
from PIL import Image

import mobilenet_v2
from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.base.labels import imagenet_classes, synset_to_index, top_classes
from mobilenet_v2.base.outputs import SAVED_MODEL_FILE, atomic_directory, check_new_directory
from mobilenet_v2.cli import main

TOP = 3  # not the default 5: the outputs must follow --top
BATCH = 50
# The package under test, for the fresh processes (a worktree's, not an installed copy).
SOURCE = str(Path(mobilenet_v2.__file__).resolve().parents[1])

# Runs in a fresh interpreter: TensorFlow's loaders and the package's NumPy normalization,
# nothing of the code that wrote the SavedModel.
SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
from mobilenet_v2.base.preprocess import normalize

saved_model, inputs, out = sys.argv[1:4]
request = json.loads(open(inputs).read())
pixels = np.load(request["pixels"])
loaded = tf.saved_model.load(saved_model)
default = loaded.signatures["serving_default"]
preprocessed = loaded.signatures["serving_preprocessed"]
batch = request["batch"]
results = {}

def keep(prefix, outputs):
    for key, value in outputs.items():
        results.setdefault(f"{prefix}_{key}", []).append(value.numpy())

for i in range(0, len(request["files"]), batch):
    data = [open(f, "rb").read() for f in request["files"][i : i + batch]]
    keep("default", default(image_bytes=tf.constant(data)))
    images = normalize(pixels[i : i + batch], request["mean"], request["std"])
    keep("preprocessed", preprocessed(images=tf.constant(images)))
keep("png", default(image_bytes=tf.constant([open(request["png"], "rb").read()])))
keep("empty", default(image_bytes=tf.constant([], tf.string)))
errors = {}
for name, data in request["bad"].items():
    try:
        default(image_bytes=tf.constant([d.encode("latin-1") for d in data]))
        errors[name] = "no error"
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"

# The session loader of TF Serving and `saved_model_cli run`, on the first images.
few = [open(f, "rb").read() for f in request["files"][:4]]
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], saved_model)
    signature = meta.signature_def["serving_default"]
    fetch = {k: v.name for k, v in signature.outputs.items()}
    found = session.run(fetch, {signature.inputs["image_bytes"].name: np.array(few, object)})
for key, value in found.items():
    results[f"session_{key}"] = [value]

arrays = {k: np.concatenate(v) for k, v in results.items()}
# Strings as fixed-width bytes: object arrays would need pickle to load.
np.savez(out, **{k: v.astype(bytes) if v.dtype == object else v for k, v in arrays.items()})
open(out + ".json", "w").write(json.dumps(errors))
"""


# Every other sample image: 250 classes, one image each (all 500 measured the same, below).
SERVED_IMAGES = 250


def sample_files() -> list[Path]:
    files = sorted(SAMPLE.glob("*.JPEG"))
    assert len(files) == 500
    return files[::2]


@pytest.fixture(scope="module")
def classified():
    """What `classify --weights <fixture>` computes for the served sample images: the same
    functions (load_keras, preprocessing_for, load_pixels, predict_pixels), in process.
    Returns the classifier, its preprocessing, the uint8 pixels and the (250, 1000) scores."""
    from mobilenet_v2.base.preprocess import load_pixels
    from mobilenet_v2.inference.classifier import load_keras, predict_pixels, preprocessing_for

    classifier = load_keras(str(FIXTURE_TFLITE))
    prep = preprocessing_for(classifier)
    geometry = (prep["size"], prep["resize"], prep["crop_fraction"])
    pixels = np.stack([load_pixels(p, *geometry) for p in sample_files()])
    scores = np.concatenate(
        [
            predict_pixels(classifier, pixels[i : i + BATCH], prep["mean"], prep["std"])
            for i in range(0, len(pixels), BATCH)
        ]
    )
    return classifier, prep, pixels, scores


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("export") / "mobilenet_v2"
    argv = ["export", "--saved-model", str(directory), "--weights", str(FIXTURE_TFLITE)]
    assert main([*argv, "--top", str(TOP)]) == 0
    return directory


@pytest.fixture(scope="module")
def png_image(tmp_path_factory) -> Path:
    """A photo as a PNG (lossless: Pillow and TensorFlow decode the same pixels)."""
    path = tmp_path_factory.mktemp("png") / "parrot.png"
    Image.open(IMAGES / "parrot.jpg").save(path)
    return path


# Passed to the fresh process as text: images separated by "|" in one request.
JPEG = (IMAGES / "parrot.jpg").read_bytes()
# Each request is a batch of encoded images. (The good image stays whole: cutting it would
# give two corrupt images, and which error a batch reports first is not fixed.)
BAD_REQUESTS = {
    "not an image": [b"not an image"],
    "empty": [b""],
    "truncated JPEG": [JPEG[:2000]],
    "a good image and a corrupt one": [JPEG, b"corrupt"],
}


@pytest.fixture(scope="module")
def served(saved_model, classified, png_image, tmp_path_factory):
    """The SavedModel's outputs, computed in a fresh process (npz arrays, and the error of
    each bad request)."""
    _, prep, pixels, _ = classified
    work = tmp_path_factory.mktemp("served")
    np.save(work / "pixels.npy", pixels)
    request = {
        "files": [str(p) for p in sample_files()],
        "pixels": str(work / "pixels.npy"),
        "mean": prep["mean"],
        "std": prep["std"],
        "batch": BATCH,
        "png": str(png_image),
        "bad": {k: [b.decode("latin-1") for b in v] for k, v in BAD_REQUESTS.items()},
    }
    (work / "request.json").write_text(json.dumps(request))
    out = work / "served.npz"
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", SERVE, str(saved_model), str(work / "request.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": SOURCE, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"fresh process: {time.perf_counter() - start:.1f} s")
    return dict(np.load(out)), json.loads(Path(f"{out}.json").read_text())


def labels() -> np.ndarray:
    return np.array([synset_to_index()[p.name.split("_")[0]] for p in sample_files()])


@pytest.mark.shared
@pytest.mark.integration
def test_serving_preprocessed_is_the_classify_model(classified, served):
    """Same weights, same input tensors, same batches: measured on the 2-core Intel Xeon,
    top-1 equal on 500/500 and the scores bit for bit equal (max |difference| 0; the test
    runs every other image, 250). The
    tolerance, 1e-5 (scores are at most 1), leaves room for a graph optimizer reordering
    float sums on another build, and is a thousand times below what one wrong weight or
    pixel moves."""
    _, _, _, scores = classified
    outputs, _ = served
    ids = outputs["preprocessed_class_ids"]
    assert (ids[:, 0] == scores.argmax(axis=1)).all()
    expected = np.take_along_axis(scores, ids, axis=1)
    difference = np.abs(outputs["preprocessed_scores"] - expected).max()
    print(f"serving_preprocessed: max |score difference| {difference:.2g}")
    assert difference <= 1e-5


@pytest.mark.shared
@pytest.mark.integration
def test_serving_default_agrees_with_classify_from_the_image_bytes(classified, served):
    """Decoding and resizing in the graph reproduce Pillow's pixels (all but 0.007 % of
    them, off by one level): measured top-1 agreement 500/500 and the same top-1 accuracy
    (90.4 %), max |score difference| 7e-4, on the 2-core Intel Xeon. Asked for: agreement
    >= 99 % (a decode or crop that only approximates Pillow's scored 95.4-96.6 %, see
    docs in tf/saved_model.py) and accuracy within 1 point of classify's. On the 250 images
    the test runs, 99 % allows 2 flips and 1 point 2 images: still far below what an
    approximate decode costs (9 to 11 images of 250)."""
    _, _, _, scores = classified
    outputs, _ = served
    ids = outputs["default_class_ids"]
    truth = labels()
    agreement = float((ids[:, 0] == scores.argmax(axis=1)).mean())
    accuracy = float((ids[:, 0] == truth).mean())
    reference = float((scores.argmax(axis=1) == truth).mean())
    same = ids[:, 0] == scores.argmax(axis=1)
    difference = np.abs(outputs["default_scores"][same, 0] - scores.max(axis=1)[same]).max()
    print(
        f"serving_default: top-1 agreement {agreement:.1%}, top-1 {accuracy:.1%} "
        f"(classify {reference:.1%}), max |top-1 score difference| {difference:.2g}"
    )
    assert agreement >= 0.99
    assert abs(accuracy - reference) <= 0.01 + 1e-9


@pytest.mark.shared
@pytest.mark.integration
def test_outputs_are_the_top_k_imagenet_classes(served):
    outputs, _ = served
    classes = imagenet_classes()
    for prefix in ("default", "preprocessed"):
        ids = outputs[f"{prefix}_class_ids"]
        assert ids.shape == (SERVED_IMAGES, TOP) and ids.dtype == np.int32
        synsets, names = outputs[f"{prefix}_synsets"], outputs[f"{prefix}_names"]
        assert synsets.shape == names.shape == (SERVED_IMAGES, TOP)
        assert synsets.tolist() == [[classes[i].synset.encode() for i in row] for row in ids]
        assert names.tolist() == [[classes[i].name.encode() for i in row] for row in ids]
        scores = outputs[f"{prefix}_scores"]
        assert scores.dtype == np.float32 and (np.diff(scores, axis=1) <= 0).all()
        assert all(len(set(row)) == TOP for row in ids.tolist())
    assert outputs["empty_class_ids"].shape == (0, TOP)  # an empty batch is not an error


@pytest.mark.shared
@pytest.mark.integration
def test_the_session_loader_of_tf_serving_reads_it(served):
    """TF Serving and `saved_model_cli run` restore variables through the graph's saver, not
    the Python object graph: a SavedModel can load in Python and fail there."""
    outputs, _ = served
    assert (outputs["session_class_ids"] == outputs["default_class_ids"][:4]).all()
    assert np.allclose(outputs["session_scores"], outputs["default_scores"][:4], atol=1e-6)
    assert (outputs["session_names"] == outputs["default_names"][:4]).all()


@pytest.mark.shared
@pytest.mark.integration
def test_a_png_classifies_as_classify_does(classified, served, png_image):
    from mobilenet_v2.base.preprocess import load_image

    classifier, prep, _, _ = classified
    scores = classifier.predict(load_image(png_image, **prep)[None])
    outputs, _ = served
    assert outputs["png_class_ids"].tolist() == top_classes(scores, TOP).tolist()
    assert outputs["png_names"][0, 0] == b"macaw" and prep["resize"] == "crop"
    assert np.allclose(outputs["png_scores"], np.sort(scores)[:, ::-1][:, :TOP], atol=1e-4)


@pytest.mark.shared
@pytest.mark.integration
def test_an_image_tensorflow_cannot_decode_fails_the_whole_call(served):
    """Documented behaviour: InvalidArgumentError at call time (TF Serving: status
    INVALID_ARGUMENT) for the request, even when other images in it are fine."""
    _, errors = served
    assert set(errors) == set(BAD_REQUESTS)
    for name, error in errors.items():
        assert error.startswith("InvalidArgumentError: "), (name, error)
    assert "Unknown image file format" in errors["not an image"]
    assert "Invalid JPEG data" in errors["truncated JPEG"]
    assert "Unknown image file format" in errors["a good image and a corrupt one"]


@pytest.mark.shared
@pytest.mark.integration
def test_the_export_records_its_preprocessing_and_leaves_no_staging(saved_model):
    record = json.loads((saved_model / "assets.extra" / "mobilenet_v2.json").read_text())
    assert record["preprocessing"] == {
        "mean": 127.5,
        "std": 127.5,
        "resize": "crop",
        "crop_fraction": 0.875,
    }
    assert record["top"] == TOP and record["size"] == 224 and len(record["labels"]) == 1000
    assert record["weights"] == str(FIXTURE_TFLITE)
    assert (saved_model / SAVED_MODEL_FILE).is_file()
    assert [p.name for p in saved_model.parent.iterdir()] == [saved_model.name]


# --- the graph's resize against Pillow (no ../shared data) ----------------------------------


@pytest.mark.parametrize("resize", ["crop", "stretch"])
def test_the_graph_resizes_exactly_as_pillow(resize, tmp_path):
    """Random pictures of assorted shapes (wide, tall enough for Pillow's vertical-first
    order, smaller than the output, odd sizes), modes (RGB, grayscale, palette, RGBA) and
    formats, through `decode_image` and `resize_like_pillow`, against `load_pixels`. On the
    500 sample JPEGs 5,122 of 75,264,000 values differ, each by one level (float against
    Pillow's 22-bit fixed point): the bound here is that one level, on a small share."""
    from mobilenet_v2.base.preprocess import load_pixels
    from mobilenet_v2.tf._tf import tf
    from mobilenet_v2.tf.saved_model import (
        decode_image,
        pillow_resizes_tall_images_vertically_first,
        resize_like_pillow,
    )

    rng = np.random.default_rng(1)
    vertical_first = pillow_resizes_tall_images_vertically_first()
    graph = tf.function(
        lambda data: resize_like_pillow(decode_image(data), 96, resize, 0.875, vertical_first)
    )
    cases = [((500, 333), "RGB", "PNG"), ((333, 500), "RGB", "JPEG"), ((60, 300), "L", "PNG")]
    cases += [((47, 61), "RGB", "BMP"), ((96, 96), "P", "PNG"), ((1000, 40), "RGBA", "PNG")]
    cases += [((250, 400), "RGB", "JPEG"), ((400, 250), "L", "JPEG"), ((150, 500), "RGB", "PNG")]
    for (width, height), mode, fmt in cases:
        # Smooth noise: closer to a photo's spectrum than white noise, all levels used.
        noise = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
        picture = Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR)
        path = tmp_path / f"{width}x{height}_{mode}.{fmt.lower()}"
        picture.convert(mode).save(path, fmt)
        expected = load_pixels(path, 96, resize).astype(np.float32)
        found = graph(tf.constant(path.read_bytes())).numpy()
        difference = np.abs(found - expected)
        assert difference.max() <= 1, (path.name, difference.max())
        assert (difference > 0).mean() < 0.01, (path.name, (difference > 0).mean())


# --- bad paths, flags and --help (no model is built) ----------------------------------------

# In a fresh interpreter, to show that the refusals come before TensorFlow is even imported.
REFUSE = r"""
import json, sys
from mobilenet_v2.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_unwritable_or_occupied_places_fail_before_building_the_model(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("the user's")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [
        (a_file / "model", f"{a_file} is not a directory", ""),
        (tmp_path / "missing" / "model", "parent directory", "does not exist"),
        (a_file, "exists and is not a directory", ""),
        (occupied, "directory is not empty, and holds no saved_model.pb", ""),
    ]
    if not os.access(locked, os.W_OK):  # root ignores permissions: nothing to check then
        cases.append((locked / "model", "is not writable", ""))
    argvs = [["export", "--saved-model", str(path), "--weights", "none"] for path, *_ in cases]
    argvs.append([*argvs[3], "--force"])  # a folder without saved_model.pb is never replaced
    start = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, "-c", REFUSE, json.dumps(argvs)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": SOURCE},
        )
    finally:
        locked.chmod(0o700)
    elapsed = time.perf_counter() - start
    result = json.loads(run.stdout)
    assert result == {"codes": [1] * len(argvs), "tensorflow": False}, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == len(argvs)  # one line each
    for line, (path, *words) in zip(lines, cases, strict=False):
        assert line.startswith(f"mobilenet-v2: error: {path}: "), line
        assert all(w in line for w in words), line
    assert f"{occupied}: directory is not empty and holds no saved_model.pb" in lines[-1]
    # Nothing written or removed: no staging directory, the user's file still there.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "locked", "occupied"]
    assert (occupied / "notes.txt").read_text() == "the user's" and not list(locked.iterdir())
    print(f"{len(argvs)} refusals in a fresh process: {elapsed:.1f} s")
    assert elapsed < 30  # TensorFlow alone takes longer to import on a loaded machine


def test_export_needs_a_mode_and_a_top_within_the_classes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--weights", "none"])
    assert exit_.value.code == 2
    assert "one of the arguments --saved-model --c-array is required" in capsys.readouterr().err
    target = tmp_path / "model"
    assert main(["export", "--saved-model", str(target), "--top", "1001"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "mobilenet-v2 export: error: --top 1001: the model has 1000 classes (see --help)\n"
    )
    assert not target.exists()


def test_export_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--saved-model DIR", "--weights", "--alpha", "--size", "--top K", "--replace"):
        assert flag in out
    assert "serving_default" in out and "serving_preprocessed" in out


# --- the atomic directory (no TensorFlow) -------------------------------------------------


def test_a_failed_export_leaves_nothing_and_an_earlier_savedmodel_is_kept(tmp_path):
    earlier = tmp_path / "model"
    earlier.mkdir()
    (earlier / SAVED_MODEL_FILE).write_bytes(b"earlier")
    with (
        pytest.raises(RuntimeError),
        atomic_directory(earlier, replace=True, marker=SAVED_MODEL_FILE) as staging,
    ):
        (staging / SAVED_MODEL_FILE).write_bytes(b"half")
        raise RuntimeError("the export failed")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (earlier / SAVED_MODEL_FILE).read_bytes() == b"earlier"


def test_force_replaces_an_earlier_savedmodel_whole(tmp_path):
    earlier = tmp_path / "model"
    earlier.mkdir()
    (earlier / SAVED_MODEL_FILE).write_bytes(b"earlier")
    (earlier / "stale.txt").write_text("from the earlier export")
    with pytest.raises(MobileNetV2Error, match="directory is not empty"):
        check_new_directory(earlier, marker=SAVED_MODEL_FILE)  # what atomic_directory checks
    with atomic_directory(earlier, replace=True, marker=SAVED_MODEL_FILE) as staging:
        (staging / SAVED_MODEL_FILE).write_bytes(b"new")
    assert sorted(p.name for p in earlier.iterdir()) == [SAVED_MODEL_FILE]  # no stale file
    assert (earlier / SAVED_MODEL_FILE).read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging, no old copy
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty) as staging:  # an empty directory needs no --force
        (staging / "x").write_text("x")
    assert [p.name for p in empty.iterdir()] == ["x"]
    assert os.stat(empty).st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
