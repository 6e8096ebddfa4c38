"""The TensorFlow half of `mobilenet_v2.tf.train`: tf.data input pipelines, the model with its
new head, and the two training phases.

Images are decoded by our own decoder (`preprocess.load_pixels`: Pillow, bicubic), not by
`tf.io`: validation then sees exactly the pixels inference sees (`classify`, `evaluate`,
INT8 calibration), and an unreadable image is known, counted and skipped before the first
epoch. tf.data runs that decoder in parallel, caches the decoded images once, and feeds the
epochs from the cache: shuffled with the seed, augmented with stateless random ops seeded
per element, so that one seed gives one sequence of batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet_v2.base.architecture import CLASSIFIER_LAYER, POOLING_LAYER
from mobilenet_v2.base.errors import MobileNetV2Error, WeightsError
from mobilenet_v2.base.preprocess import DEFAULT_PREPROCESSING, load_pixels
from mobilenet_v2.base.trained import read_record
from mobilenet_v2.tf import layers
from mobilenet_v2.tf._tf import keras, tf
from mobilenet_v2.tf.model import MobileNetV2
from mobilenet_v2.tf.weights import recalibrate_batch_norm

CROP = DEFAULT_PREPROCESSING["crop_fraction"]
MEAN, STD = DEFAULT_PREPROCESSING["mean"], DEFAULT_PREPROCESSING["std"]
# Random crops keep 70-100 % of the central square's side: the inference crop (87.5 %) sits
# in the middle of that range, so training sees objects at the scale validation shows them.
MIN_CROP_SCALE = 0.7
DROPOUT_LAYER = "dropout"
RECALIBRATION_IMAGES = 256
AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Decoded:
    """Readable images of a split, decoded once: `pixels` yields uint8 (side, side, 3),
    `labels` and `sources` say whose, in the same order; `skipped` says what was not read."""

    pixels: tf.data.Dataset
    labels: np.ndarray
    sources: list[Path]
    skipped: list[str]


def decoded(files: list[tuple[Path, int]], size: int, training: bool) -> Decoded:
    """Validation images as inference takes them (the central 87.5 % square, bicubic to
    `size`); training images as the whole central square at `size / 0.875`, for random
    crops around that scale (`training_dataset`)."""
    side, fraction = (round(size / CROP), 1.0) if training else (size, CROP)
    paths = [str(p) for p, _ in files]
    errors: dict[int, str] = {}

    def decode(index: np.int64) -> tuple[np.ndarray, np.bool_]:
        try:
            return load_pixels(paths[int(index)], side, "crop", fraction), np.True_
        except MobileNetV2Error as exc:
            errors[int(index)] = str(exc)
            return np.zeros((side, side, 3), np.uint8), np.False_

    def decode_op(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        pixels, ok = tf.numpy_function(decode, [index], (tf.uint8, tf.bool), stateful=False)
        return tf.ensure_shape(pixels, (side, side, 3)), tf.ensure_shape(ok, ())

    all_images = (
        tf.data.Dataset.range(len(paths))
        .map(decode_op, num_parallel_calls=AUTOTUNE, deterministic=True)
        .cache()
    )
    # One pass now decodes everything into the cache and finds the unreadable images
    # before training starts; the epochs read the cache.
    ok = np.array([bool(flag) for flag in all_images.map(lambda _, k: k).as_numpy_iterator()])
    # Filtering hides the count from Keras, which would then warn at every first epoch.
    readable = (
        all_images.filter(lambda _, k: k)
        .map(lambda x, _: x)
        .apply(tf.data.experimental.assert_cardinality(int(ok.sum())))
    )
    labels = np.array([label for _, label in files], np.int64)
    kept = [p for p, good in zip(files, ok, strict=True) if good]
    return Decoded(
        readable,
        labels[ok] if len(ok) else labels,
        [p for p, _ in kept],
        [errors[i] for i in sorted(errors)],
    )


def training_dataset(images: Decoded, size: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled (with `seed`, anew each epoch), randomly cropped (70-100 % of the side,
    anywhere) and flipped, normalized as inference normalizes, batched, prefetched."""
    labelled = tf.data.Dataset.zip(images.pixels, tf.data.Dataset.from_tensor_slices(images.labels))
    shuffled = labelled.shuffle(len(images.labels), seed=seed, reshuffle_each_iteration=True)
    # One random number per element, a new stream each epoch, both fixed by the seed: the
    # seeds of its stateless crop and flip.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def augment(example: tuple[tf.Tensor, tf.Tensor], draw: tf.Tensor):
        pixels, label = example
        seeds = [tf.stack([draw, tf.constant(k, tf.int64)]) for k in range(3)]
        scale = tf.random.stateless_uniform([], seeds[0], MIN_CROP_SCALE, 1.0)
        corner = tf.random.stateless_uniform([2], seeds[1]) * (1.0 - scale)
        box = tf.concat([corner, corner + scale], axis=0)[None]
        image = tf.cast(pixels, tf.float32)[None]
        image = tf.image.crop_and_resize(image, box, [0], (size, size), method="bilinear")[0]
        flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        return (image - MEAN) / STD, label

    return (
        tf.data.Dataset.zip(shuffled, draws)
        .map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )


def validation_dataset(images: Decoded, batch_size: int) -> tf.data.Dataset:
    """The validation images in listing order, normalized as inference normalizes."""
    labels = tf.data.Dataset.from_tensor_slices(images.labels)
    normalized = images.pixels.map(lambda x: (tf.cast(x, tf.float32) - MEAN) / STD)
    return tf.data.Dataset.zip(normalized, labels).batch(batch_size).prefetch(AUTOTUNE)


def build_model(
    classes: int, weights: str | os.PathLike | None, alpha: float, size: int, dropout: float
) -> keras.Model:
    """MobileNetV2 without its top, then pooling, dropout and a new softmax Dense: one flat
    functional model whose layers are named and ordered as `MobileNetV2(classes=N)`'s (the
    dropout has no weights), so the saved weights load into that model everywhere."""
    if weights not in (None, "imagenet") and read_record(weights) is not None:
        raise WeightsError(
            f"{weights}: a model trained by `mobilenet-v2 train`; training starts from "
            "ImageNet weights ('imagenet', a .tflite or a no-top .h5/.keras), not from one"
        )
    try:
        base = MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=weights
        )
    except WeightsError as exc:
        if "that the model lacks" not in str(exc):
            raise
        raise WeightsError(
            f"{exc}: training takes weights without the classifier ('imagenet', a .tflite "
            "or a no-top .h5/.keras)"
        ) from None
    x = layers.GlobalAveragePooling2D(name=POOLING_LAYER)(base.output)
    x = keras.layers.Dropout(dropout, name=DROPOUT_LAYER)(x)
    out = layers.Dense(classes, activation="softmax", name=CLASSIFIER_LAYER)(x)
    model = keras.Model(base.input, out, name=f"mobilenetv2_{alpha:0.2f}_{size}_{classes}_classes")
    model.loaded_weights_file = base.loaded_weights_file
    return model


def has_folded_batch_norm(weights: str | os.PathLike | None) -> bool:
    """Weights from a .tflite (by content, as the loader tells them): batch norm folded."""
    if weights in (None, "imagenet"):
        return False
    with open(weights, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


def recalibrate(model: keras.Model, images: Decoded, batch_size: int, seed: int) -> None:
    """`recalibrate_batch_norm` on up to 256 training images drawn with `seed` (the listing
    is in class order: its first 256 could be one or two classes), cropped as inference
    crops."""
    size = model.input.shape[1]
    drawn = images.pixels.shuffle(len(images.labels), seed=seed, reshuffle_each_iteration=False)
    batch = drawn.take(RECALIBRATION_IMAGES).map(
        lambda x: tf.image.resize(tf.image.central_crop(tf.cast(x, tf.float32), CROP), (size, size))
    )
    sample = np.stack(list(batch.as_numpy_iterator()))
    recalibrate_batch_norm(model, (sample - MEAN) / STD, batch_size)


def set_trainable(model: keras.Model, first: int | None) -> None:
    """The head always trains; the base from layer index `first` on (None: frozen). Batch
    norm layers stay frozen, in inference mode (see `mobilenet_v2.tf.train`)."""
    head = {POOLING_LAYER, DROPOUT_LAYER, CLASSIFIER_LAYER}
    for position, layer in enumerate(model.layers):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
        elif layer.name in head:
            layer.trainable = True
        else:
            layer.trainable = first is not None and position >= first


def fit_two_phases(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    epochs: int,
    fine_tune_epochs: int,
    first_trainable: int | None,
    learning_rate: float,
    fine_tune_learning_rate: float,
    patience: int,
    verbose: int | str,
    say: Callable[[str], None],
) -> dict[str, list[float]]:
    """Phase 1 (head only), then phase 2 (fine-tuning); each stops early when validation
    accuracy has not improved for `patience` epochs and restores its best epoch's weights.
    Phase 2's result is kept unless its best validation accuracy is below phase 1's."""
    history: dict[str, list[float]] = {}
    best: list[float] = []
    kept: list[Any] = []
    phases = [(1, epochs, None, learning_rate)]
    if fine_tune_epochs:
        phases.append((2, fine_tune_epochs, first_trainable, fine_tune_learning_rate))
    for phase, count, first, rate in phases:
        say(
            "phase 1: training the new head on the frozen base"
            if phase == 1
            else f"phase 2: fine-tuning from layer {model.layers[first].name} on"
        )
        set_trainable(model, first)
        model.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
        )
        run = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=count,
            callbacks=[stop],
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself, with the seed
        )
        for key, values in run.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([phase] * len(run.history["loss"]))
        best.append(max(run.history["val_accuracy"]))
        kept.append(model.get_weights())
    if len(best) == 2 and best[1] < best[0]:
        say(
            f"fine-tuning reached {100 * best[1]:.1f} % validation top-1, below the head's "
            f"{100 * best[0]:.1f} %: keeping phase 1's weights"
        )
        model.set_weights(kept[0])
    return history
