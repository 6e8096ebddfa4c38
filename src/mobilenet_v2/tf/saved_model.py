"""Export MobileNetV2 as a TensorFlow SavedModel for serving (TF Serving, Vertex AI, Beam's
TFModelHandler): the decoding, crop and normalization of `mobilenet_v2.base.preprocess` inside the
graph, and the ImageNet labels as constants, so a client sends image bytes and reads classes.

Signatures:

- `serving_default`: `image_bytes`, a 1-D batch of encoded images (tf.string: JPEG, PNG,
  GIF, BMP; the first frame of an animation);
- `serving_preprocessed`: `images`, float32 [batch, size, size, 3], already preprocessed
  (what `mobilenet_v2.load_image` returns).

Both return the top-k classes best first: `class_ids` (int32 [batch, k], ImageNet index),
`synsets` and `names` (string [batch, k]) and `scores` (float32 [batch, k], softmax). A model
trained on a user's classes (`mobilenet-v2 train`) gives its own class indices, its labels
as `names` and empty `synsets`.

The graph reproduces the Pillow preprocessing pixel for pixel rather than approximating it
(`tf.image.resize(..., antialias=True)` of an integer square crop changed top-1 against
`classify` on 3.4-3.8 % of the 500 ImageNet sample images; this graph on none, its pixels
off by one level in 0.007 % of values): JPEGs decode with libjpeg's accurate integer DCT,
as Pillow's (TF's default is the fast one); the crop box keeps its sub-pixel position
(`ScaleAndTranslate`, the op under `tf.image.resize(..., antialias=True)`, with Pillow's
Keys cubic kernel and its widening when reducing); and the resize runs as Pillow's two
passes, each rounded to 8 bits, in Pillow's order.

What it does not do as `classify` does: EXIF orientation (a phone photo stored sideways is
classified as stored, where `classify` turns it upright); Pillow's decompression-bomb check;
16-bit grayscale PNGs come to 8 bits by truncation, not rounding (one level on a quarter of
the pixels). An image TensorFlow cannot decode (corrupt, truncated, empty, not an image)
fails the whole call with InvalidArgumentError (TF Serving answers INVALID_ARGUMENT), even
when the other images of the batch are fine: a client that wants one error per image sends
one image per request, or checks its images first. An empty batch gives empty outputs.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.labels import imagenet_classes
from mobilenet_v2.base.outputs import SAVED_MODEL_FILE, atomic_directory, check_new_directory
from mobilenet_v2.base.preprocess import (
    BICUBIC_RESIZE_MODES,
    DEFAULT_PREPROCESSING,
    check_normalization,
    check_resize,
)
from mobilenet_v2.base.provenance import weights_label
from mobilenet_v2.base.quiet import silenced_stderr
from mobilenet_v2.base.trained import model_spec
from mobilenet_v2.tf._tf import keras, tf

SERVING_DEFAULT = "serving_default"
SERVING_PREPROCESSED = "serving_preprocessed"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
OUTPUTS = ("class_ids", "synsets", "names", "scores")
# What `export_saved_model` records beside the graph (TF Serving reads only its warm-up file
# from assets.extra/, so other files there are left alone by every server).
RECORD = Path("assets.extra") / "mobilenet_v2.json"


def export_saved_model(
    directory: str | os.PathLike,
    weights: str | os.PathLike | None = "imagenet",
    alpha: float | None = None,
    size: int | None = None,
    top: int = 5,
    preprocessing: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Build our MobileNetV2 with `weights` (as `MobileNetV2` takes them) and write it to
    `directory` as a SavedModel with the two signatures of this module's docstring.

    `preprocessing`: overrides of `DEFAULT_PREPROCESSING` (`resize`, `crop_fraction`, `mean`,
    `std`). `top`: classes per image, 1 to the class count. `alpha`/`size` None: a trained
    model's own (`mobilenet_v2.base.trained.model_spec`), else 1.0 and 224. The directory is
    written whole through a staging directory beside it and a rename; an existing non-empty
    one is refused unless `force`, and even then replaced only if it holds a SavedModel.
    Everything that can be checked without the model is checked before it is built."""
    spec = model_spec(weights, alpha, size)
    alpha, size = spec.alpha, spec.size
    if spec.labels is None:
        names = [(c.synset, c.name) for c in imagenet_classes()]
    else:
        names = [("", label) for label in spec.labels]
    if not 1 <= top <= len(names):
        raise ValueError(f"top must be in [1, {len(names)}]; received {top}")
    prep = {**DEFAULT_PREPROCESSING, **(preprocessing or {}), "size": size}
    check_resize(prep["resize"], prep["crop_fraction"])
    if prep["resize"] not in BICUBIC_RESIZE_MODES:  # mediapipe is an app's resize, not serving's
        modes = BICUBIC_RESIZE_MODES
        raise ValueError(f"resize must be one of {modes}; received {prep['resize']!r}")
    check_normalization(prep["mean"], prep["std"])
    check_new_directory(directory, force, SAVED_MODEL_FILE)

    from mobilenet_v2.tf.convert import metadata_record
    from mobilenet_v2.tf.model import MobileNetV2

    model = MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=weights, classes=len(names)
    )
    module = ServingModule(model, prep, top, names)
    record = metadata_record(
        {k: prep[k] for k in ("mean", "std", "resize", "crop_fraction")},
        None if spec.labels is None else list(spec.labels),
        alpha=alpha,
        size=size,
        weights=weights_label(weights),
        top=top,
        signatures={
            SERVING_DEFAULT: {"inputs": {BYTES_INPUT: "string [batch]"}},
            SERVING_PREPROCESSED: {"inputs": {IMAGES_INPUT: f"float32 [batch, {size}, {size}, 3]"}},
            "outputs": list(OUTPUTS),
        },
        pillow_vertical_pass_first=pillow_resizes_tall_images_vertically_first(),
    )
    with atomic_directory(directory, force, SAVED_MODEL_FILE) as staging:
        with silenced_stderr():  # absl's fingerprint and function-tracing chatter
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        (staging / RECORD).parent.mkdir(exist_ok=True)
        (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return Path(directory)


class ServingModule(tf.Module):
    """The two signatures as `tf.function`s (`signatures()`), and the model's variables.

    It tracks the `tf.Variable`s under the Keras variables, and not the Keras model itself:
    a module holding a Keras 3 model saves a SavedModel that TensorFlow's Python loader
    reads but the session loader of TF Serving and `saved_model_cli run` does not ("Could
    not find variable ..."), and Keras' own `ExportArchive` mends that by saving every
    weight twice."""

    def __init__(
        self,
        model: keras.Model,
        preprocessing: dict[str, Any],
        top: int,
        classes: list[tuple[str, str]],
    ) -> None:
        """`classes`: (synset, name) of each output, in order."""
        super().__init__(name="mobilenet_v2")
        self.model_variables = [v.value for v in model.variables]
        prep = dict(preprocessing)
        size = prep["size"]
        # Decided here, in Python, from the Pillow that `classify` uses beside this export.
        vertical_first = pillow_resizes_tall_images_vertically_first()

        # The model is reached through these closures only, so that the module does not
        # track it (see the class docstring).
        def classify(images: tf.Tensor) -> dict[str, tf.Tensor]:
            # An empty batch skips the model, which fails on one (TensorFlow 2.21's CPU
            # Conv2D returns its input unchanged for batch 0, and the next layer rejects
            # it): empty outputs, not an error.
            scores = tf.cond(
                tf.shape(images)[0] > 0,
                lambda: model(images, training=False),
                lambda: tf.zeros([0, len(classes)], tf.float32),
            )
            # top_k ranks ties by the lower index first: the stable order of top_classes.
            best = tf.math.top_k(scores, k=top, sorted=True)
            return {
                "class_ids": best.indices,
                "synsets": tf.gather(tf.constant([c[0] for c in classes]), best.indices),
                "names": tf.gather(tf.constant([c[1] for c in classes]), best.indices),
                "scores": best.values,
            }

        def preprocess(data: tf.Tensor) -> tf.Tensor:
            pixels = resize_like_pillow(
                decode_image(data), size, prep["resize"], prep["crop_fraction"], vertical_first
            )
            # As `preprocess.normalize`: float32 (x - mean) / std, the same two roundings.
            return (pixels - np.float32(prep["mean"])) / np.float32(prep["std"])

        def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            spec = tf.TensorSpec([size, size, 3], tf.float32)
            return classify(tf.map_fn(preprocess, image_bytes, fn_output_signature=spec))

        def serve_preprocessed(images: tf.Tensor) -> dict[str, tf.Tensor]:
            return classify(images)

        self.serve_bytes = tf.function(
            serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
            autograph=False,  # no Python control flow on tensors: tf.cond and map_fn
        )
        self.serve_preprocessed = tf.function(
            serve_preprocessed,
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=IMAGES_INPUT)],
            autograph=False,
        )

    def signatures(self) -> dict[str, Any]:
        """The concrete functions for `tf.saved_model.save(..., signatures=...)`."""
        return {
            SERVING_DEFAULT: self.serve_bytes.get_concrete_function(),
            SERVING_PREPROCESSED: self.serve_preprocessed.get_concrete_function(),
        }


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Encoded bytes to uint8 [height, width, 3], as `preprocess.decode_image` decodes them:
    JPEGs with libjpeg's accurate integer DCT (Pillow's; TF's default, the fast one, moved
    over two thirds of the resized pixels on the ImageNet sample), grayscale and CMYK to RGB
    (identical to Pillow on all 500 sample JPEGs), alpha dropped, the first frame of an
    animation."""
    pixels = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )
    pixels.set_shape([None, None, 3])
    return pixels


def resize_like_pillow(
    pixels: tf.Tensor,
    size: int,
    resize: str = "crop",
    crop_fraction: float = 0.875,
    vertical_first: bool = True,
) -> tf.Tensor:
    """`preprocess.resize_image` in TensorFlow: uint8 [h, w, 3] to float32 [size, size, 3]
    holding the same 8-bit values as Pillow's `Image.resize(BICUBIC, box=...)`.

    Pillow resamples in two separable passes, each rounded to 8 bits, with a Keys cubic
    kernel (a = -0.5) widened by the reduction factor (antialiasing) and renormalized at the
    image's edges. `ScaleAndTranslate` (the op under `tf.image.resize(..., antialias=True)`)
    has the same kernel, widening and renormalization; one call per pass, in float, then
    rounded half up as Pillow's fixed point does. The scale and translation place the crop
    box at its sub-pixel position: output pixel x samples the input at x0 + (x + 0.5) *
    (x1 - x0) / size, Pillow's centre formula. `vertical_first`: Pillow >= 13 runs the
    vertical pass first when the height loses more than twice as many pixels as the width,
    h - size > 2 (w - size) (`pillow_resizes_tall_images_vertically_first`; the threshold
    measured on Pillow 13.0.0 over whole ranges of sizes, and independent of the box);
    earlier Pillows never do."""
    check_resize(resize, crop_fraction)
    shape = tf.shape(pixels)
    height, width = shape[0], shape[1]
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    # The box as resize_image computes it (float64), then as Pillow's C code receives it
    # (float32 coordinates).
    if resize == "crop":
        scale_x = scale_y = tf.minimum(w / size, h / size) * crop_fraction
    else:
        scale_x, scale_y = w / size, h / size
    dx, dy = (w - size * scale_x) / 2, (h - size * scale_y) / 2
    x0, x1, y0, y1 = (tf.cast(tf.cast(v, tf.float32), tf.float64) for v in (dx, w - dx, dy, h - dy))
    zoom_x, zoom_y = size / (x1 - x0), size / (y1 - y0)  # output pixels per input pixel
    image = tf.cast(pixels, tf.float32)[None]

    def rounded(x: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0)

    def horizontal(x: tf.Tensor) -> tf.Tensor:
        # Scale 1 along the other axis: the kernel's weights there are 1, 0, 0: a copy.
        return rounded(_scale_and_translate(x, (tf.shape(x)[1], size), (1.0, zoom_x), (0.0, x0)))

    def vertical(x: tf.Tensor) -> tf.Tensor:
        return rounded(_scale_and_translate(x, (size, tf.shape(x)[2]), (zoom_y, 1.0), (y0, 0.0)))

    if vertical_first:
        tall = tf.logical_and(height > size, height - size > 2 * (width - size))
        out = tf.cond(
            tall, lambda: horizontal(vertical(image)), lambda: vertical(horizontal(image))
        )
    else:
        out = vertical(horizontal(image))
    return tf.ensure_shape(out[0], [size, size, 3])


def _scale_and_translate(
    image: tf.Tensor, size: tuple[Any, Any], zoom: tuple[Any, Any], start: tuple[Any, Any]
) -> tf.Tensor:
    """Resample [1, h, w, c] so that output pixel (i, j) is centred on input coordinates
    (start + (i + 0.5) / zoom) per axis, TensorFlow's `(x + 0.5 - translation) / scale`."""
    zoom32 = tf.cast(tf.stack(zoom), tf.float32)
    translation = tf.cast(-tf.stack(start) * tf.stack(zoom), tf.float32)
    return tf.raw_ops.ScaleAndTranslate(
        images=image,
        size=tf.stack(size),
        scale=zoom32,
        translation=translation,
        kernel_type="keyscubic",
        antialias=True,
    )


@functools.cache
def pillow_resizes_tall_images_vertically_first() -> bool:
    """Whether this Pillow runs the vertical pass first for an image whose height shrinks
    far more than its width (Pillow >= 13, python-pillow/Pillow#9549), probed rather than
    read from the version: a 16 x 64 noise image resized to 8 x 8, against the
    horizontal-first result done as two explicit resizes."""
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (64, 16), dtype=np.uint8)
    img = Image.fromarray(noise)
    bicubic = Image.Resampling.BICUBIC
    direct = np.asarray(img.resize((8, 8), bicubic))
    horizontal_first = np.asarray(img.resize((8, 64), bicubic).resize((8, 8), bicubic))
    return not np.array_equal(direct, horizontal_first)
