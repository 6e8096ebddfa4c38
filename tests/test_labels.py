"""The packaged ImageNet classes and Keras-style decode_predictions."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import CLASSES_TSV

from mobilenet_v2 import decode_predictions
from mobilenet_v2.base.labels import imagenet_classes


@pytest.mark.shared
def test_packaged_classes_are_the_shared_list():
    with open(CLASSES_TSV, encoding="utf8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(c.index, c.synset, c.name) for c in imagenet_classes()] == [
        (int(r["index"]), r["synset"], r["name"]) for r in rows
    ]


def test_known_classes():
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert classes[0] == (0, "n01440764", "tench")
    assert classes[652] == (652, "n03763968", "military_uniform")
    assert classes[999] == (999, "n15075141", "toilet_tissue")


def test_decode_predictions_returns_top_k_best_first():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [652, 3, 7]] = [0.9, 0.05, 0.03]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=3)
    assert decoded[0] == [
        ("n03763968", "military_uniform", pytest.approx(0.9)),
        ("n01491361", "tiger_shark", pytest.approx(0.05)),
        ("n01514668", "cock", pytest.approx(0.03)),
    ]
    assert decoded[1][0] == ("n15075141", "toilet_tissue", 1.0)


def test_decode_predictions_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        decode_predictions(np.zeros((1, 1001)))
