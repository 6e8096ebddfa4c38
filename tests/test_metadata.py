"""Standard TFLite Model Metadata: what `convert` writes into every model, what classify,
evaluate and dump take from anyone's model (the hosted fixture included), and MediaPipe
Tasks' ImageClassifier as the real client that reads it."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from conftest import FIXTURE_TFLITE, IMAGES, SAMPLE
from PIL import Image

from mobilenet_v2 import __version__
from mobilenet_v2.base.labels import imagenet_classes, synset_to_index
from mobilenet_v2.base.preprocess import central_square, geometry_of, load_pixels
from mobilenet_v2.inference.classifier import load_tflite, predict_pixels, preprocessing_for
from mobilenet_v2.lite import model_metadata
from mobilenet_v2.lite.model_metadata import (
    LABEL_FILE,
    STANDARD_NAME,
    metadata_schema,
    min_parser_version,
    read_standard_metadata,
    with_standard_metadata,
)
from mobilenet_v2.lite.record import METADATA_NAME

pytestmark = pytest.mark.shared  # conversions (integration) are marked by their fixtures

KERAS_NAMES = tuple(c.name for c in imagenet_classes())
GRACE_HOPPER = str(IMAGES / "grace_hopper.bmp")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mobilenet_v2.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def with_labels(flatbuffer: bytes, lines: list[str]) -> bytes:
    """The model followed by a zip holding `lines` as its label file."""
    out = io.BytesIO(flatbuffer)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr(LABEL_FILE, "\n".join(lines))
    return out.getvalue()


def standard_float_model(models) -> bytes:
    """Our float32 model, its metadata rewritten by `with_standard_metadata`."""
    return with_standard_metadata(
        models["none"].read_bytes(), name="m", description="d", version="1", author="a",
        license="l", mean=127.5, std=127.5, labels=list(KERAS_NAMES),
    )  # fmt: skip


def rewritten(raw: bytes, edit) -> bytes:
    """The model after `edit(ModelT)`; repacking drops any zip that followed it."""
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    edit(model)
    builder = flatbuffers.Builder(len(raw))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- What convert writes -------------------------------------------------------------------

# (fixture, quantize, io type, the normalization it was calibrated with, input and output
# Stats): 8-bit tensors record their integer range, float ones the range of their values.
CONVERSIONS = [
    ("int8_model", "int8", "int8", 128.0, (-128.0, 127.0), (-128.0, 127.0)),
    ("uint8_model", "int8", "uint8", 128.0, (0.0, 255.0), (0.0, 255.0)),
    ("int8_float_io_model", "int8", "float32", 128.0, (-1.0, 127 / 128), (0.0, 1.0)),
    ("float16", "float16", "float32", 127.5, (-1.0, 1.0), (0.0, 1.0)),
    ("dynamic", "dynamic", "float32", 127.5, (-1.0, 1.0), (0.0, 1.0)),
    ("none", "none", "float32", 127.5, (-1.0, 1.0), (0.0, 1.0)),
]


@pytest.mark.parametrize(
    ("fixture", "quantize", "io_type", "norm", "input_range", "score_range"),
    CONVERSIONS,
    ids=[c[0] for c in CONVERSIONS],
)
def test_every_conversion_carries_the_standard_metadata(
    request, models, fixture, quantize, io_type, norm, input_range, score_range
):
    path = models[fixture] if fixture in models else request.getfixturevalue(fixture)
    meta = read_standard_metadata(path.read_bytes(), path)
    assert meta.name == "MobileNetV2 1 224" and meta.version == __version__
    assert meta.author == f"mobilenet-v2 {__version__}" and meta.license == "Apache-2.0"
    assert f"{io_type} input and output" in meta.description or quantize != "int8"
    assert meta.min_parser_version == "1.0.0"  # every field we write is in schema 1.0.0
    assert meta.color_space == "RGB" and meta.mean == (norm,) and meta.std == (norm,)
    assert meta.input_range == pytest.approx(input_range)
    assert meta.score_range == pytest.approx(score_range)
    assert meta.label_file == LABEL_FILE and meta.labels == KERAS_NAMES


def test_the_label_file_is_a_zip_member_that_any_zip_reader_gets_back(int8_model):
    """The associated files follow the flatbuffer as a zip (how MediaPipe reads them):
    Python's zipfile, knowing nothing of TFLite, returns the exact 1000 lines."""
    with zipfile.ZipFile(io.BytesIO(int8_model.read_bytes())) as archive:
        assert archive.namelist() == [LABEL_FILE]
        assert archive.getinfo(LABEL_FILE).compress_type == zipfile.ZIP_STORED
        text = archive.read(LABEL_FILE).decode("utf8")
    assert text == "\n".join(KERAS_NAMES) + "\n"


def test_min_parser_version_is_the_newest_feature_used():
    md = metadata_schema()
    meta = md.ModelMetadataT()
    assert min_parser_version(meta) == "1.0.0"
    subgraph = md.SubGraphMetadataT()
    subgraph.inputProcessUnits = [md.ProcessUnitT()]
    meta.subgraphMetadata = [subgraph]
    assert min_parser_version(meta) == "1.1.0"
    versioned = md.AssociatedFileT()
    versioned.type, versioned.version = md.AssociatedFileType.TENSOR_AXIS_LABELS, "2"
    meta.associatedFiles = [versioned]
    assert min_parser_version(meta) == "1.4.1"
    subgraph.customMetadata = [md.CustomMetadataT()]
    assert min_parser_version(meta) == "1.5.0"


def test_the_schema_loads_without_importing_mediapipe_or_tensorflow():
    code = (
        "import sys\n"
        "from mobilenet_v2.lite.model_metadata import metadata_schema\n"
        "metadata_schema()\n"
        "print(sorted(m for m in ('mediapipe', 'tensorflow', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


# --- What the readers take from it ---------------------------------------------------------


def test_the_fixture_names_its_classes_with_its_own_label_file():
    """The hosted model's labels.txt-style file has WordNet names ("military uniform"),
    1001 lines with background first: the classes are named from it, not from Keras."""
    classifier = load_tflite(FIXTURE_TFLITE)
    assert classifier.metadata.label_file == "imagenet_labels.txt"
    assert classifier.label_offset == 1 and len(classifier.labels) == 1000
    assert classifier.labels[652] == "military uniform" and classifier.notes == ()
    result = run_cli(
        "classify", GRACE_HOPPER, "--model", str(FIXTURE_TFLITE), "--resize", "stretch"
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines()[0] == "n03763968 military uniform 0.891"


def test_an_8bit_input_is_fed_its_exact_pixel_grid_whatever_the_metadata_says():
    """The fixture's metadata says mean = std = 127.5 for its uint8 input (scale 1/128, zero
    point 128). MediaPipe ignores NormalizationOptions for 8-bit inputs and feeds the raw
    pixels; so do we: requantizing through 127.5 costs 2.4 points (DEVELOPERS.md)."""
    classifier = load_tflite(FIXTURE_TFLITE)
    assert classifier.metadata.mean == (127.5,)
    assert (classifier.preprocessing["mean"], classifier.preprocessing["std"]) == (128.0, 128.0)


def test_a_float_input_is_normalized_as_the_standard_metadata_says(models, tmp_path):
    """The standard comes first: rewrite it (our own record still says 127.5) and the
    classifier follows it."""
    names = [f"class {i}" for i in range(1000)]
    edited = with_standard_metadata(
        models["none"].read_bytes(), name="m", description="d", version="1", author="a",
        license="l", mean=0.0, std=255.0, labels=names,
    )  # fmt: skip
    path = tmp_path / "edited.tflite"
    path.write_bytes(edited)
    classifier = load_tflite(path)
    assert (classifier.preprocessing["mean"], classifier.preprocessing["std"]) == (0.0, 255.0)
    assert classifier.labels == tuple(names)
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path), "--top", "1")
    synset, name, number, _ = result.stdout.split()
    assert result.returncode == 0 and f"{name} {number}" == names[synset_to_index()[synset]]


def test_a_model_without_metadata_uses_the_defaults_and_says_so(tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), lambda m: setattr(m, "metadata", [])))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path), "--resize", "stretch")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "n03763968 military_uniform 0.891"  # Keras' names
    assert result.stderr == (
        f"mobilenet-v2: note: {path}: no metadata; using the default preprocessing and labels\n"
    )


def test_corrupt_standard_metadata_is_one_line_naming_the_file(tmp_path):
    def garble(model):
        entry = next(m for m in model.metadata if m.name == STANDARD_NAME.encode())
        model.buffers[entry.buffer].data = np.frombuffer(b"\x07" * 40, np.uint8)

    path = tmp_path / "garbled.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), garble))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"mobilenet-v2: error: {path}: unreadable {STANDARD_NAME}")
    assert len(result.stderr.splitlines()) == 1


def point_elsewhere(buffer_index):
    """An edit that points the TFLITE_METADATA entry at another buffer."""

    def edit(model):
        entry = next(m for m in model.metadata if m.name == STANDARD_NAME.encode())
        entry.buffer = buffer_index(model)

    return edit


@pytest.mark.parametrize(
    ("case", "edit", "message"),
    [
        ("nowhere", point_elsewhere(lambda m: len(m.buffers) + 5), "points to buffer"),
        ("empty buffer", point_elsewhere(lambda m: 0), "identifier is not M001"),
    ],
)
def test_metadata_that_points_nowhere_is_one_line(tmp_path, case, edit, message):
    path = tmp_path / "broken.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), edit))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{path}: unreadable {STANDARD_NAME}" in result.stderr and message in result.stderr


def normalized_as(mean, std):
    """An edit that rewrites the input's NormalizationOptions in the standard metadata."""
    md = metadata_schema()

    def edit(model):
        entry = next(m for m in model.metadata if m.name == STANDARD_NAME.encode())
        meta = md.ModelMetadataT.InitFromPackedBuf(model.buffers[entry.buffer].data.tobytes(), 0)
        norm = meta.subgraphMetadata[0].inputTensorMetadata[0].processUnits[0].options
        norm.mean, norm.std = mean, std
        builder = flatbuffers.Builder(0)
        builder.Finish(meta.Pack(builder), file_identifier=b"M001")
        model.buffers[entry.buffer].data = np.frombuffer(bytes(builder.Output()), np.uint8)

    return edit


def test_a_mean_without_a_std_is_ignored(models, tmp_path):
    """Half a NormalizationOptions says nothing usable: our own record's 127.5 applies."""
    path = tmp_path / "half.tflite"
    edited = rewritten(standard_float_model(models), normalized_as([0.0], None))
    path.write_bytes(with_labels(edited, KERAS_NAMES))
    classifier = load_tflite(path)
    assert classifier.metadata.mean is None and classifier.preprocessing["mean"] == 127.5


def test_the_description_says_how_the_model_was_calibrated(int8_model, models):
    meta = read_standard_metadata(int8_model.read_bytes(), int8_model)
    assert "calibrated on 250 images, int8 input and output" in meta.description
    assert "the central 0.875 square, resized (bicubic) to 224x224" in meta.description
    float16 = read_standard_metadata(models["float16"].read_bytes(), models["float16"])
    assert "float16 weights" in float16.description


def test_evaluate_says_when_a_model_has_no_metadata(tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), lambda m: setattr(m, "metadata", [])))
    result = run_cli("evaluate", str(SAMPLE), "--model", str(path), "--limit", "4")
    assert result.returncode == 0, result.stderr
    note = f"mobilenet-v2: note: {path}: no metadata; using the default preprocessing and labels"
    assert note in result.stderr.splitlines()


def test_a_label_file_missing_from_the_zip_is_a_note(tmp_path):
    """Tools that rewrite the flatbuffer drop the zip behind it: the model still runs, its
    classes get ImageNet's names, and a note says why."""
    path = tmp_path / "no_zip.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), lambda m: None))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path), "--top", "1")
    assert result.returncode == 0 and result.stdout.split()[1] == "mortarboard"  # Keras' name
    assert result.stderr == (
        f"mobilenet-v2: note: {path}: its label file imagenet_labels.txt is unreadable (File "
        "is not a zip file); using ImageNet's class names\n"
    )


def test_fewer_labels_than_classes_are_ignored_with_a_note(models, tmp_path):
    """A well-formed label file for another head (999 lines for 1000 scores): the names
    would be shifted, so ImageNet's are used, and the note says why."""
    flat = rewritten(standard_float_model(models), lambda m: None)  # its zip dropped
    out = with_labels(flat, list(KERAS_NAMES[:999]))
    path = tmp_path / "short.tflite"
    path.write_bytes(out)
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path), "--top", "1")
    assert result.returncode == 0 and result.stdout.split()[1] == "mortarboard"
    assert result.stderr == (
        f"mobilenet-v2: note: {path}: its label file labels.txt has 999 lines for 1000 "
        "classes; using ImageNet's class names\n"
    )


def test_a_different_normalization_per_channel_needs_the_users_flags(models, tmp_path):
    """The model loads (its metadata is read, not refused, in the constructor); without
    --input-mean and --input-std it is one line naming the file and those flags; with them
    the flags win, exactly as on the same model with one normalization in its metadata."""
    per_channel = normalized_as([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])  # torchvision's
    path = tmp_path / "per_channel.tflite"
    path.write_bytes(with_labels(rewritten(standard_float_model(models), per_channel), KERAS_NAMES))
    classifier = load_tflite(path)
    assert classifier.metadata.mean == pytest.approx((123.7, 116.3, 103.5))
    assert preprocessing_for(classifier, mean=127.5, std=127.5)["mean"] == 127.5
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"mobilenet-v2: error: {path}: ")
    assert "mean [123.7, 116.3, 103.5]" in result.stderr
    assert "give one mean and std for all channels (--input-mean and --input-std" in result.stderr
    flags = ("--input-mean", "127.5", "--input-std", "127.5", "--top", "3")
    given = run_cli("classify", GRACE_HOPPER, "--model", str(path), *flags)
    same = tmp_path / "same.tflite"
    same.write_bytes(standard_float_model(models))
    expected = run_cli("classify", GRACE_HOPPER, "--model", str(same), "--top", "3")
    assert given.returncode == 0, given.stderr
    assert given.stdout.split()[2::4] == expected.stdout.split()[2::4]  # the scores


def test_an_unreadable_normalization_of_a_float_input_needs_the_users_flags(models, tmp_path):
    """Unlike a cosmetic field, a float input cannot do without its normalization: not 127.5
    by default and a note, but one line naming the file and what to give; the flags work.
    (Our own record would say it too: this model has none, as a third party's would not.)"""
    edit_standard = standard_edited(_bad_normalization)

    def edit(model):
        edit_standard(model)
        model.metadata = [m for m in model.metadata if m.name != METADATA_NAME.encode()]

    path = tmp_path / "unreadable.tflite"
    path.write_bytes(with_labels(rewritten(standard_float_model(models), edit), KERAS_NAMES))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path))
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert result.stderr.startswith(f"mobilenet-v2: error: {path}: its {STANDARD_NAME} input ")
    assert "normalization is unreadable" in result.stderr and "mean and std are unknown" in (
        result.stderr
    )
    assert len(result.stderr.splitlines()) == 1
    flags = ("--input-mean", "127.5", "--input-std", "127.5")
    assert run_cli("classify", GRACE_HOPPER, "--model", str(path), *flags).returncode == 0


def standard_edited(change):
    """An edit that applies `change(ModelMetadataT)` to the standard metadata."""
    md = metadata_schema()

    def edit(model):
        entry = next(m for m in model.metadata if m.name == STANDARD_NAME.encode())
        meta = md.ModelMetadataT.InitFromPackedBuf(model.buffers[entry.buffer].data.tobytes(), 0)
        change(meta)
        builder = flatbuffers.Builder(0)
        builder.Finish(meta.Pack(builder), file_identifier=b"M001")
        model.buffers[entry.buffer].data = np.frombuffer(bytes(builder.Output()), np.uint8)

    return edit


def _bad_normalization(meta):
    norm = meta.subgraphMetadata[0].inputTensorMetadata[0].processUnits[0].options
    norm.mean, norm.std = [1.0, 2.0], [3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("description", lambda meta: setattr(meta, "description", b"\xff\xfe not UTF-8")),
        ("author", lambda meta: setattr(meta, "author", b"\xc3")),
        ("input normalization", _bad_normalization),
    ],
)
def test_a_malformed_optional_field_is_a_note_and_the_defaults(tmp_path, field, change):
    """LiteRT runs a model whatever its metadata's optional fields hold: so do we, saying
    which field was ignored; the rest of the metadata still applies."""
    path = tmp_path / "odd.tflite"
    path.write_bytes(rewritten(FIXTURE_TFLITE.read_bytes(), standard_edited(change)))
    result = run_cli("classify", GRACE_HOPPER, "--model", str(path), "--top", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "mortarboard"  # as without the edit (zip dropped)
    note = f"mobilenet-v2: note: {path}: its {STANDARD_NAME} {field} is unreadable ("
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(note)]
    assert line.endswith("; ignored") and "Traceback" not in result.stderr


def test_without_mediapipe_the_metadata_is_skipped_with_a_note(monkeypatch, int8_model):
    """A LiteRT-only install (no MediaPipe): our models still carry their own record, so
    they run as converted; the note names the extra that reads the standard metadata."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mediapipe" else real(name, *a),
    )
    model_metadata.metadata_schema.cache_clear()
    try:
        classifier = load_tflite(int8_model)
    finally:
        model_metadata.metadata_schema.cache_clear()
    assert classifier.labels is None and classifier.preprocessing["mean"] == 128.0
    assert len(classifier.notes) == 1
    assert "pip install 'mobilenet-v2[metadata]'" in classifier.notes[0]


# --- MediaPipe Tasks, the real client -----------------------------------------------------


def mediapipe_classifier(path):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(path)), max_results=1
    )
    return vision.ImageClassifier.create_from_options(options)


def mediapipe_top1(path, images, crop: bool = False) -> tuple[list[int], list[str]]:
    """MediaPipe's top-1 per image. Decoded by Pillow into RGB, as an app hands MediaPipe
    RGB frames: MediaPipe's own file decoder keeps a grayscale JPEG single-channel, which
    its classifier then refuses (a sample image is grayscale)."""
    import mediapipe as mp
    from mediapipe.tasks.python.components.containers.rect import RectF
    from mediapipe.tasks.python.vision.core.image_processing_options import (
        ImageProcessingOptions,
    )

    indices, names = [], []
    with mediapipe_classifier(path) as classifier:
        for image in images:
            rgb = np.asarray(Image.open(image).convert("RGB"))
            roi = None
            if crop:
                left, top, right, bottom = central_square(rgb.shape[1], rgb.shape[0])
                box = RectF(left=left, top=top, right=right, bottom=bottom)  # not its order
                roi = ImageProcessingOptions(region_of_interest=box)
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            best = classifier.classify(frame, roi)
            category = best.classifications[0].categories[0]
            indices.append(category.index)
            names.append(category.category_name)
    return indices, names


def our_top1(path, images, resize: str) -> list[int]:
    classifier = load_tflite(path)
    prep = preprocessing_for(classifier, resize=resize)
    pixels = np.stack([load_pixels(image, *geometry_of(prep)) for image in images])
    return list(np.argmax(predict_pixels(classifier, pixels, prep["mean"], prep["std"]), axis=1))


def test_the_mediapipe_resize_is_opencvs_bilinear_warp():
    """`--resize mediapipe` against the OpenCV call MediaPipe makes (warpPerspective of the
    image's corners onto the tensor's, INTER_LINEAR, edges replicated), on photos that it
    shrinks 2-4x and small images that it enlarges: within one level (OpenCV's fixed-point
    weights round differently)."""
    import cv2

    from mobilenet_v2.base.preprocess import decode_image, resize_image

    photos = [decode_image(IMAGES / n) for n in ("parrot.jpg", "hot_dog.jpg", "cat.bmp")]
    small = [photos[0].resize((100, 80)), photos[1].resize((30, 400))]  # enlarged, or both
    for image in photos + small:
        pixels, (height, width) = np.asarray(image), np.asarray(image).shape[:2]
        corners = np.float32([[0, height], [0, 0], [width, 0], [width, height]])
        target = np.float32([[0, 224], [0, 0], [224, 0], [224, 224]])
        matrix = cv2.getPerspectiveTransform(corners, target)
        expected = cv2.warpPerspective(
            pixels, matrix, (224, 224), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        ours = np.asarray(resize_image(image, 224, "mediapipe"), np.int16)
        assert np.abs(ours - expected).max() <= 1, image.size


@pytest.mark.parametrize("kind", ["float16", "none"])
def test_mediapipe_loads_the_float_models_with_our_labels(models, kind):
    """Three photos with known classes: MediaPipe names them with our labels."""
    photos = [IMAGES / n for n in ("parrot.jpg", "hot_dog.jpg", "cat.bmp")]
    indices, names = mediapipe_top1(models[kind], photos)
    assert names == ["macaw", "hotdog", "Egyptian_cat"]
    assert indices == [KERAS_NAMES.index(n) for n in names]


def test_mediapipe_refuses_int8_input_tensors(int8_model):
    """Why apps need the uint8-I/O INT8 model (README, `convert --help`)."""
    with pytest.raises(Exception, match=r"(?i)type mismatch.*INT8"):
        mediapipe_classifier(int8_model)


# The uint8 model, the one apps take, in the default run; the float models' 500-image runs
# (half a minute each) are opt-in, to keep the default run within its budget, and
# `test_mediapipe_loads_the_float_models_with_our_labels` covers them by default.
FLOAT_SLOW = [pytest.param(k, marks=pytest.mark.slow) for k in ("float16", "none")]


@pytest.mark.parametrize("kind", ["uint8", *FLOAT_SLOW])
def test_mediapipe_classifies_with_our_labels_as_well_as_we_do_with_its_resize(
    request, models, kind
):
    """MediaPipe resizes the whole image to 224x224 (OpenCV, bilinear without antialiasing,
    no crop): on the 500 sample images its top-1 accuracy is within 2 points (10 images, the
    issue's bound) of ours with `--resize mediapipe`. Measured, Intel Xeon, MediaPipe 1.2.3
    vs ours: uint8 83.4 % vs 84.0 % (97.8 % of images agree), float16 84.6 % vs 84.6 %,
    float32 84.8 % vs 84.8 % (99.4 %). With `--resize stretch` (bicubic, antialiased) ours
    was 82.0 % for all three, 2.6-2.8 points off: the resampling is part of the match.
    Every category name is our label for its index."""
    path = request.getfixturevalue("uint8_model") if kind == "uint8" else models[kind]
    images = sorted(SAMPLE.glob("*.JPEG"))
    truth = [synset_to_index()[image.name.split("_")[0]] for image in images]
    indices, names = mediapipe_top1(path, images)
    assert names == [KERAS_NAMES[i] for i in indices]
    ours = our_top1(path, images, "mediapipe")
    theirs_accuracy = np.mean(np.equal(indices, truth))
    ours_accuracy = np.mean(np.equal(ours, truth))
    agreement = np.mean(np.equal(indices, ours))
    print(f"{kind}: mediapipe {theirs_accuracy:.3f} ours {ours_accuracy:.3f} agree {agreement:.3f}")
    assert abs(theirs_accuracy - ours_accuracy) <= 0.02


def test_mediapipe_given_our_crop_as_its_region_of_interest_matches_our_crop(uint8_model):
    """The README's advice to apps: MediaPipe does not crop, but takes a region of interest;
    the central 87.5 % square (`central_square`) turns its 83.4 % into 89.6 % on the 500
    sample images (Intel Xeon), against 89.0 % for our crop of the same model (3 images:
    bilinear without antialiasing against bicubic). Allowed: 2 points (10 images), as for
    the whole-image comparison."""
    images = sorted(SAMPLE.glob("*.JPEG"))
    truth = [synset_to_index()[image.name.split("_")[0]] for image in images]
    indices, _ = mediapipe_top1(uint8_model, images, crop=True)
    ours = our_top1(uint8_model, images, "crop")
    theirs_accuracy = np.mean(np.equal(indices, truth))
    ours_accuracy = np.mean(np.equal(ours, truth))
    print(f"mediapipe+roi {theirs_accuracy:.3f} ours crop {ours_accuracy:.3f}")
    assert abs(theirs_accuracy - ours_accuracy) <= 0.02
