"""Transfer learning onto a user's classes: a folder with one sub-folder per class in, a
`.keras` model that knows its labels out (`mobilenet-v2 train`, or `train(...)` in Python).

Phase 1 trains a new head (dropout + Dense, one output per class) on the frozen base; phase 2
unfreezes the base from `fine_tune_from` on and trains on with a lower learning rate. Batch
norm layers stay frozen, so in inference mode, in both phases (Keras' transfer-learning rule:
a few dozen images per batch give statistics too noisy to replace the moving ones). Weights
from a `.tflite` have batch norm folded away; `recalibrate_batch_norm` gives those layers real
statistics of the training images first, without changing what the model computes, so that
the saved model's batch norm is meaningful to whoever trains it further.

Everything that can be checked is checked before the first epoch: the folder layout, that
every class has a readable image (unreadable ones are skipped and counted), that the
outputs can be written, that `fine_tune_from` names a layer.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mobilenet_v2.base.architecture import DEFAULT_FINE_TUNE_FROM, POOLING_LAYER
from mobilenet_v2.base.errors import InvalidArgumentError, MobileNetV2Error
from mobilenet_v2.base.outputs import (
    atomic_directory,
    atomic_path,
    check_new_directory,
    check_writable,
    markdown_table,
    write_atomic,
)
from mobilenet_v2.base.preprocess import load_pixels
from mobilenet_v2.base.sources import is_image_name
from mobilenet_v2.base.trained import TrainedRecord, add_record, labels_text

REPORT_MARKER = "confusion.csv"  # what marks a folder as an earlier report, to be replaced

# What to do instead when the ImageNet weights cannot be downloaded, naming only what training
# starts from, in Python's terms (a caller names its own flags through `weights_hint`).
TRAIN_WEIGHTS_HINT = (
    "pass weights=PATH (a MobileNetV2 .tflite, or a no-top .h5, .weights.h5 or .keras)"
)


@dataclass
class Listing:
    """The images of a folder-per-class tree, class names sorted, with what was skipped."""

    labels: list[str]
    files: list[tuple[Path, int]]
    skipped: list[str] = field(default_factory=list)  # one line per unreadable image


class Trained(NamedTuple):
    """What `train` returns: the model, the learning curves of both phases (Keras' metric
    names, one value per epoch run, phase 1 then phase 2), the labels in output order and
    the validation report."""

    model: Any  # keras.Model
    history: dict[str, list[float]]
    labels: list[str]
    validation: dict[str, Any]


def list_classes(data_dir: str | os.PathLike) -> Listing:
    """One class per sub-folder (sorted by name, hidden folders ignored), its images
    anywhere below it. Fewer than two classes, or a class without an image file, is an
    error naming the folder."""
    root = Path(data_dir)
    if not root.exists():
        raise MobileNetV2Error(f"{root}: directory not found")
    if not root.is_dir():
        raise MobileNetV2Error(f"{root}: not a directory")
    # A validation report written into the data folder (`model.validation/`) is no class.
    folders = sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and not (p / REPORT_MARKER).exists()
    )
    if len(folders) < 2:
        found = "one class folder" if folders else "no class folders"
        raise MobileNetV2Error(
            f"{root}: {found}; training needs two or more sub-folders, one per class"
        )
    if len(folders) in (1000, 1001):
        # Every engine reads 1000 outputs as ImageNet's and 1001 as TF-slim's (background
        # first): a model of as many classes of its own would be named and cut wrongly.
        raise MobileNetV2Error(
            f"{root}: {len(folders)} class folders; 1000 and 1001 classes are taken for "
            "ImageNet's layouts, so train on fewer or more"
        )
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        images = sorted(p for p in folder.rglob("*") if is_image_name(p.name) and p.is_file())
        if not images:
            raise MobileNetV2Error(f"{folder}: class folder contains no images")
        files += [(p, label) for p in images]
    return Listing([p.name for p in folders], files)


def split_validation(
    files: list[tuple[Path, int]], fraction: float, seed: int
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(training, validation): `fraction` of each class (at least one image of every class
    with two or more), drawn with `seed`, so that every class is validated and the same seed
    gives the same split. Both lists keep the listing's order."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for position, (_, label) in enumerate(files):
        by_class.setdefault(label, []).append(position)
    held: set[int] = set()
    for members in by_class.values():
        count = min(len(members) - 1, max(1, round(len(members) * fraction)))
        held.update(int(i) for i in rng.permutation(members)[:count])
    train = [f for i, f in enumerate(files) if i not in held]
    return train, [f for i, f in enumerate(files) if i in held]


def check_outputs(output: str | os.PathLike | None, plot: str | os.PathLike | None) -> None:
    """Before any image is read: the model must be a `.keras` file that can be written."""
    if output is not None:
        if not str(output).endswith(".keras"):
            raise InvalidArgumentError(f"{output}: the model file name must end in .keras")
        check_writable(output)
    if plot is not None:
        if not str(plot).lower().endswith(".png"):
            raise InvalidArgumentError(f"{plot}: the plot is a PNG image; name it .png")
        check_writable(plot)


def report_dir_for(output: str | os.PathLike) -> Path:
    """The validation report's default folder: beside the model, `<name>.validation`."""
    out = Path(output)
    return out.with_name(f"{out.stem}.validation")


def train(
    data_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = "imagenet",
    alpha: float = 1.0,
    size: int = 224,
    epochs: int = 10,
    fine_tune_epochs: int = 5,
    fine_tune_from: str = DEFAULT_FINE_TUNE_FROM,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    fine_tune_learning_rate: float = 1e-5,
    dropout: float = 0.2,
    validation_split: float = 0.2,
    validation_dir: str | os.PathLike | None = None,
    patience: int = 3,
    seed: int = 0,
    plot: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
    weights_hint: str | None = None,
) -> Trained:
    """Train MobileNetV2 on the classes of `data_dir` (one sub-folder per class, names
    sorted are the labels) and, with `output`, write the `.keras` model (its labels inside,
    see `mobilenet_v2.base.trained`) and the validation report (`report_dir`, default beside the
    model). `plot`: the learning curves as an image. The same `seed` on the same machine
    gives the same split, augmentation, head initialization and so the same metrics.
    `weights_hint`: what to do instead when the ImageNet weights cannot be downloaded, in the
    caller's terms (`TRAIN_WEIGHTS_HINT`, Python's, by default).
    """
    say = log or (lambda message: print(message, file=sys.stderr))
    if not 0 < validation_split < 1 and validation_dir is None:
        raise InvalidArgumentError(
            f"validation split must be in (0, 1); received {validation_split}"
        )
    if epochs < 1 or fine_tune_epochs < 0 or batch_size < 1:
        raise InvalidArgumentError(
            "epochs and batch size must be positive, fine-tuning epochs not negative"
        )
    check_outputs(output, plot)
    if output is not None:
        report_dir = report_dir or report_dir_for(output)
    if report_dir is not None:
        check_new_directory(report_dir, replace=True, marker=REPORT_MARKER)

    listing = list_classes(data_dir)
    if validation_dir is not None:
        train_files = listing.files
        held = list_classes(validation_dir)
        if held.labels != listing.labels:
            raise MobileNetV2Error(
                f"{validation_dir}: its class folders {held.labels} differ from "
                f"{data_dir}'s {listing.labels}"
            )
        val_files = held.files
    else:
        train_files, val_files = split_validation(listing.files, validation_split, seed)
        held_out = {label for _, label in val_files}
        alone = [i for i in range(len(listing.labels)) if i not in held_out]
        if alone:
            label = listing.labels[alone[0]]
            lone = [path for path, i in listing.files if i == alone[0]]
            if not any(map(_readable, lone)):  # unreadable: no image, not one
                raise MobileNetV2Error(
                    f"{Path(data_dir) / label}: no readable image for class '{label}'"
                )
            raise MobileNetV2Error(
                f"{Path(data_dir) / label}: one image; a validation split "
                "needs two or more per class (or give --validation-dir)"
            )
    labels = listing.labels

    # TensorFlow loads only now: every check above is instant.
    from mobilenet_v2.tf import pipeline
    from mobilenet_v2.tf.model import IMAGENET_ALPHAS, IMAGENET_SIZES
    from mobilenet_v2.tf.weights import imagenet_weights_path

    keras = pipeline.keras
    # The model first: a weights file that cannot load fails before any image is decoded.
    keras.utils.set_random_seed(seed)  # before the head's weights and the dropout masks
    if weights == "imagenet" and alpha in IMAGENET_ALPHAS:  # fetched with train's own hint
        rows = size if size in IMAGENET_SIZES else 224
        imagenet_weights_path(alpha, rows, False, hint=weights_hint or TRAIN_WEIGHTS_HINT)
    model = pipeline.build_model(len(labels), weights, alpha, size, dropout)
    layer_names = [layer.name for layer in model.layers]
    if fine_tune_epochs and fine_tune_from not in layer_names:
        raise InvalidArgumentError(
            f"--fine-tune-from {fine_tune_from}: no such layer (e.g. block_13_expand, Conv_1; "
            "`mobilenet-v2 inspect` lists them)"
        )
    if fine_tune_epochs and layer_names.index(fine_tune_from) >= layer_names.index(POOLING_LAYER):
        raise InvalidArgumentError(
            f"--fine-tune-from {fine_tune_from}: a layer of the new head, which trains in both "
            "phases; name a layer of the base (e.g. block_13_expand, Conv_1)"
        )
    train_images = pipeline.decoded(train_files, size, training=True)
    val_images = pipeline.decoded(val_files, size, training=False)
    for part in (train_images, val_images):
        for message in part.skipped:
            say(f"warning: skipped {message}")
    _check_every_class(labels, train_images.labels, "training", data_dir)
    _check_every_class(labels, val_images.labels, "validation", validation_dir or data_dir)
    skipped = len(train_images.skipped) + len(val_images.skipped)
    say(
        f"{len(labels)} classes, {len(train_images.labels)} training and "
        f"{len(val_images.labels)} validation images"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
    )

    if pipeline.has_folded_batch_norm(weights):
        pipeline.recalibrate(model, train_images, batch_size, seed)

    train_ds = pipeline.training_dataset(train_images, size, batch_size, seed)
    val_ds = pipeline.validation_dataset(val_images, batch_size)
    history = pipeline.fit_two_phases(
        model,
        train_ds,
        val_ds,
        epochs=epochs,
        fine_tune_epochs=fine_tune_epochs,
        first_trainable=layer_names.index(fine_tune_from) if fine_tune_epochs else None,
        learning_rate=learning_rate,
        fine_tune_learning_rate=fine_tune_learning_rate,
        patience=patience,
        verbose=verbose,
        say=say,
    )
    scores = model.predict(val_ds, verbose=0)
    validation = validation_report(labels, val_images.labels, scores, val_images.sources)

    # The model first: a report or plot beside an older model would describe the wrong one.
    # The plot last, so that one inside the report folder is not replaced with the folder.
    if output is not None:
        save_model(model, output, TrainedRecord(tuple(labels), float(alpha), int(size)))
    if report_dir is not None:
        write_report(report_dir, labels, validation, history)
    if plot is not None:
        write_atomic(plot, learning_curves_png(history))
    model.class_names = list(labels)  # for notebooks: the model's own labels
    return Trained(model, history, labels, validation)


def _readable(path: Path) -> bool:
    """Whether training could decode `path` (as `pipeline.decoded` does, at a small size)."""
    try:
        load_pixels(path, 32)
    except MobileNetV2Error:
        return False
    return True


def _check_every_class(
    labels: list[str], found: np.ndarray, what: str, where: str | os.PathLike
) -> None:
    missing = [labels[i] for i in range(len(labels)) if not np.any(found == i)]
    if missing:
        raise MobileNetV2Error(
            f"{Path(where) / missing[0]}: no readable {what} image for class '{missing[0]}'"
            + (f" (nor for {len(missing) - 1} more)" if len(missing) > 1 else "")
        )


def save_model(model: Any, output: str | os.PathLike, record: TrainedRecord) -> Path:
    """`model.save` to a temporary `.keras` beside `output`, the record added, then a rename:
    an interrupted or failed save leaves no complete-looking model."""
    out = Path(output)
    check_writable(out)
    try:
        with atomic_path(out, suffix=".keras") as tmp:  # Keras goes by the suffix
            model.save(str(tmp))
            add_record(tmp, record)
    except OSError as exc:
        raise MobileNetV2Error(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out


# --- Validation report ---------------------------------------------------------------------


def validation_report(
    labels: list[str], truth: np.ndarray, scores: np.ndarray, sources: list[Path]
) -> dict[str, Any]:
    """Top-1, per-class accuracy and the confusion matrix (rows: true class, columns:
    predicted) of the validation images; `wrong` lists the misclassified files."""
    truth = np.asarray(truth)
    predicted = np.argmax(scores, axis=1)
    n = len(labels)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = [
        {
            "label": label,
            "images": int(confusion[i].sum()),
            "correct": int(confusion[i, i]),
            "accuracy": float(confusion[i, i] / confusion[i].sum()),
        }
        for i, label in enumerate(labels)
    ]
    wrong = [
        {"image": str(s), "label": labels[t], "predicted": labels[p]}
        for s, t, p in zip(sources, truth, predicted, strict=True)
        if t != p
    ]
    return {
        "images": len(truth),
        "correct": int(np.trace(confusion)),
        "top1": float(np.trace(confusion) / max(len(truth), 1)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "wrong": wrong,
    }


def validation_table(validation: dict[str, Any]) -> str:
    rows = [
        [c["label"], str(c["images"]), str(c["correct"]), f"{100 * c['accuracy']:.1f}"]
        for c in validation["per_class"]
    ]
    rows.append(
        [
            "**all**",
            str(validation["images"]),
            str(validation["correct"]),
            f"**{100 * validation['top1']:.1f}**",
        ]
    )
    return markdown_table(["class", "images", "correct", "top-1 %"], rows)


def write_report(
    report_dir: str | os.PathLike,
    labels: list[str],
    validation: dict[str, Any],
    history: dict[str, list[float]],
) -> Path:
    """labels.txt, validation.md, per_class.csv, confusion.csv/.png, history.csv and
    wrong.csv, written whole (a staging folder renamed into place)."""
    with atomic_directory(report_dir, replace=True, marker=REPORT_MARKER) as staging:
        (staging / "labels.txt").write_text(labels_text(labels), encoding="utf8")
        (staging / "validation.md").write_text(validation_table(validation) + "\n", "utf8")
        _write_csv(
            staging / "per_class.csv",
            ["label", "images", "correct", "accuracy"],
            [
                [c[k] for k in ("label", "images", "correct", "accuracy")]
                for c in validation["per_class"]
            ],
        )
        _write_csv(
            staging / "confusion.csv",
            ["true \\ predicted", *labels],
            [[label, *row] for label, row in zip(labels, validation["confusion"], strict=True)],
        )
        _write_csv(
            staging / "wrong.csv",
            ["image", "label", "predicted"],
            [[w["image"], w["label"], w["predicted"]] for w in validation["wrong"]],
        )
        metrics = list(history)
        epochs = len(history[metrics[0]]) if metrics else 0
        _write_csv(
            staging / "history.csv",
            ["epoch", *metrics],
            [[e + 1, *(history[m][e] for m in metrics)] for e in range(epochs)],
        )
        (staging / "confusion.png").write_bytes(confusion_png(labels, validation["confusion"]))
    return Path(report_dir)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def confusion_png(labels: list[str], confusion: list[list[int]]) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    matrix = np.asarray(confusion)
    side = 2.5 + 0.45 * len(labels)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), count in np.ndenumerate(matrix):
        light = count > matrix.max() / 2
        ax.text(col, row, str(count), ha="center", va="center", color="white" if light else "black")
    ax.set_title("validation confusion matrix")
    return _png(fig)


def learning_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and accuracy per epoch, training and validation, both phases on one axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    for position, metric in enumerate(("loss", "accuracy"), start=1):
        ax = fig.add_subplot(1, 2, position)
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], style, marker="o", label=key)
        if history.get("phase"):
            switch = history["phase"].index(2) + 0.5 if 2 in history["phase"] else None
            if switch is not None:
                ax.axvline(switch, color="gray", linestyle=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    return _png(fig)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
