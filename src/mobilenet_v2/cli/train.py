"""`mobilenet-v2 train`: a folder with one sub-folder per class to a `.keras` model that
names those classes (`mobilenet_v2.tf.train`)."""

from __future__ import annotations

import argparse
import sys
import time

from mobilenet_v2.base.architecture import DEFAULT_FINE_TUNE_FROM
from mobilenet_v2.cli.parser import (
    finite_float,
    input_size,
    non_negative_int,
    positive_float,
    positive_int,
    refuse,
    weights_arg,
    width_multiplier,
)

# What to do instead when the ImageNet weights cannot be downloaded: what train takes, in
# the command's terms (`weights_arg`: the variable replaces the ImageNet weights).
TRAIN_WEIGHTS_HINT = (
    "pass --weights PATH (a MobileNetV2 .tflite, or a no-top .h5, .weights.h5 or .keras) or "
    "set $MOBILENET_V2_WEIGHTS to one"
)


def _fraction(text: str) -> float:
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    train = commands.add_parser(
        "train",
        help="train on your own classes (a folder per class)",
        description="Transfer learning: DATA_DIR holds one sub-folder per class (class names "
        "are the folder names, sorted). Phase 1 trains a new head (dropout + Dense) on the "
        "frozen base, phase 2 fine-tunes the base from --fine-tune-from on with a lower "
        "learning rate; each stops early on validation accuracy and keeps its best epoch. "
        "Writes the .keras model (its labels inside: classify, convert and evaluate read "
        "them) and a validation report (top-1, per class, confusion matrix as csv and png) "
        "in NAME.validation/ beside it. Unreadable images are skipped and counted.",
    )
    train.add_argument("data_dir", metavar="DATA_DIR", help="one sub-folder of images per class")
    train.add_argument(
        "--output",
        required=True,
        metavar="MODEL.keras",
        help="the trained model (required); its validation report goes beside it",
    )
    train.add_argument(
        "--weights",
        default=None,
        help="starting weights: 'imagenet' (default, or $MOBILENET_V2_WEIGHTS), a MobileNetV2 "
        ".tflite (batch norm folded: recalibrated on the training images first), or a "
        "no-top .h5/.weights.h5/.keras (without the ImageNet classifier)",
    )
    train.add_argument("--alpha", type=width_multiplier, default=1.0, help="width (1.0)")
    train.add_argument("--size", type=input_size, default=224, help="input size (224)")
    train.add_argument(
        "--epochs", type=positive_int, default=10, help="phase 1 (new head) epochs, at most (10)"
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=non_negative_int,
        default=5,
        metavar="M",
        help="phase 2 (fine-tuning) epochs, at most; 0 skips it (5)",
    )
    train.add_argument(
        "--fine-tune-from",
        default=None,
        metavar="LAYER",
        help=f"first layer that phase 2 trains; batch norm stays frozen ({DEFAULT_FINE_TUNE_FROM})",
    )
    train.add_argument(
        "--batch-size", type=positive_int, default=32, help="images per training step (32)"
    )
    train.add_argument(
        "--learning-rate", type=positive_float, default=1e-3, help="phase 1, Adam (0.001)"
    )
    train.add_argument(
        "--fine-tune-learning-rate",
        type=positive_float,
        default=1e-5,
        help="phase 2, Adam (1e-05)",
    )
    train.add_argument(
        "--patience",
        type=positive_int,
        default=3,
        help="epochs without a better validation accuracy before a phase stops (3)",
    )
    held = train.add_mutually_exclusive_group()
    held.add_argument(
        "--validation-split",
        type=_fraction,
        default=None,
        metavar="F",
        help="validate on this fraction of each class, drawn with --seed (0.2)",
    )
    held.add_argument(
        "--validation-dir",
        default=None,
        metavar="DIR",
        help="validate on DIR instead (the same class folders)",
    )
    train.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds this command's random choices: the train/validation split, shuffle, "
        "augmentation and head initialization (0): the same seed on the same machine, the "
        "same metrics",
    )
    train.add_argument("--plot", default=None, metavar="PNG", help="learning curves image")
    train.add_argument(
        "--report-dir",
        default=None,
        metavar="DIR",
        help="validation report folder (MODEL.validation beside the model)",
    )
    return train


def run(args: argparse.Namespace) -> int:
    from mobilenet_v2.tf.train import (
        report_dir_for,
        train,
        validation_table,
    )

    if args.fine_tune_epochs == 0:
        refuse(args, ("--fine-tune-from",), "chooses what phase 2 trains: --fine-tune-epochs is 0")
    start = time.perf_counter()
    result = train(
        args.data_dir,
        args.output,
        weights=weights_arg(args.weights),
        alpha=args.alpha,
        size=args.size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_from=args.fine_tune_from or DEFAULT_FINE_TUNE_FROM,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        validation_split=args.validation_split or 0.2,
        validation_dir=args.validation_dir,
        patience=args.patience,
        seed=args.seed,
        plot=args.plot,
        report_dir=args.report_dir,
        log=lambda message: print(f"{args.prog} train: {message}", file=sys.stderr),
        weights_hint=TRAIN_WEIGHTS_HINT,
    )
    print(validation_table(result.validation))
    report = args.report_dir or report_dir_for(args.output)
    print(
        f"\nwrote {args.output} ({len(result.labels)} classes) and {report}/ "
        f"in {time.perf_counter() - start:.0f} s"
        + (f"; learning curves in {args.plot}" if args.plot else "")
    )
    return 0
