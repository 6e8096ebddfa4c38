"""compile()/fit(): fine-tuning from the fixture's real weights on a few shared images."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import CLASSES_TSV, FIXTURE_TFLITE, SAMPLE

from mobilenet_v2 import MobileNetV2, load_image
from mobilenet_v2.tf import layers as ours
from mobilenet_v2.tf._tf import keras
from mobilenet_v2.tf.weights import recalibrate_batch_norm

pytestmark = [pytest.mark.shared, pytest.mark.integration]  # fine-tuning on ../shared

SIZE = 128
# Three coarse classes made of ImageNet classes: fish, birds, dogs (index ranges).
GROUPS = {"fish": range(0, 7), "bird": range(7, 25), "dog": range(151, 269)}


@pytest.fixture(scope="module")
def dataset():
    with open(CLASSES_TSV, encoding="utf8") as f:
        synsets = [row["synset"] for row in csv.DictReader(f, delimiter="\t")]
    files = sorted(SAMPLE.glob("*.JPEG"))
    x, y = [], []
    for label, indices in enumerate(GROUPS.values()):
        wanted = {synsets[i] for i in indices}
        chosen = [p for p in files if p.name.split("_")[0] in wanted][:6]
        assert len(chosen) >= 4
        x += [load_image(p, size=SIZE) for p in chosen]
        y += [label] * len(chosen)
    return np.stack(x), np.array(y)


@pytest.fixture
def base(dataset):
    """A fresh feature extractor per test: tests change its BN statistics and weights."""
    model = MobileNetV2(
        input_shape=(SIZE, SIZE, 3), include_top=False, pooling="avg", weights=str(FIXTURE_TFLITE)
    )
    return model


def test_recalibration_keeps_inference_and_fixes_training_mode(base, dataset):
    x, _ = dataset
    before = base(x, training=False).numpy()
    recalibrate_batch_norm(base, x)
    after = base(x, training=False).numpy()
    assert np.abs(after - before).max() <= 1e-4 * np.abs(before).max()
    # With statistics that match the data, training-mode BN computes nearly the same thing.
    assert np.abs(base(x, training=True).numpy() - after).max() <= 1e-3 * np.abs(after).max()


@pytest.mark.slow  # 38 s on 2 cores; tests/test_train.py fits the same way through train()
def test_fine_tuning_lowers_loss_and_raises_accuracy(base, dataset):
    x, y = dataset
    recalibrate_batch_norm(base, x)
    keras.utils.set_random_seed(0)  # before the head's weights are drawn: one run, one result
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, ours.Dense(3, activation="softmax", name="head")(base(inputs)))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    loss_before, accuracy_before = model.evaluate(x, y, verbose=0)
    bn = base.get_layer("Conv_1_bn")
    moving_before = bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()

    history = model.fit(x, y, epochs=6, batch_size=8, shuffle=True, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] / 2
    assert history["accuracy"][-1] > history["accuracy"][0]
    loss_after, accuracy_after = model.evaluate(x, y, verbose=0)
    assert loss_after < loss_before and accuracy_after > accuracy_before
    assert accuracy_after >= 0.9

    # Training moved the BN moving statistics ...
    assert not np.array_equal(bn.moving_mean.numpy(), moving_before[0])
    assert not np.array_equal(bn.moving_variance.numpy(), moving_before[1])
    # ... and inference uses them without changing them.
    moving_after = bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving_after[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), moving_after[1])
