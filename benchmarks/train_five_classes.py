"""Issue 15's figure: train 1.0/224 on five coarse classes of the shared sample, convert to
INT8, and measure top-1 of both on the validation images (the README's numbers).

    python benchmarks/train_five_classes.py [--out DIR] [--size 224] [--epochs 10]
        [--fine-tune-epochs 5] [--seed 0]

The classes, by ImageNet index range (tests/test_train.py builds the same tree): dogs
(151-268), birds (7-24, 80-100, 127-146), reptiles and amphibians (25-68), insects and
spiders (69-79, 300-326), fish (0-6, 389-397): 138 images of the 500-image sample, linked
into a temporary folder per class. The validation split (20 % of each class, seed 0) is
linked into its own folder per class so that `evaluate` measures exactly those images;
INT8 is calibrated on the training folder (all 138 images: calibration uses no labels).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # five_classes: the tree the tests build

from test_train import five_classes  # noqa: E402

from mobilenet_v2.cli import main  # noqa: E402
from mobilenet_v2.train import list_classes, split_validation, train  # noqa: E402

SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the model and report here")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "out"
        out.mkdir(parents=True, exist_ok=True)
        data = five_classes(Path(tmp) / "classes")
        listing = list_classes(data)
        _, held = split_validation(listing.files, 0.2, args.seed)
        val = Path(tmp) / "validation"
        for path, label in held:
            (val / listing.labels[label]).mkdir(parents=True, exist_ok=True)
            (val / listing.labels[label] / path.name).symlink_to(path.resolve())

        start = time.perf_counter()
        result = train(
            data,
            out / "five.keras",
            weights=str(WEIGHTS),
            size=args.size,
            epochs=args.epochs,
            fine_tune_epochs=args.fine_tune_epochs,
            seed=args.seed,
            plot=out / "curves.png",
            verbose=2,
        )
        trained_s = time.perf_counter() - start
        int8 = out / "five_int8.tflite"
        start = time.perf_counter()
        model = str(out / "five.keras")
        convert = ["convert", "--weights", model, "--calibration-dir", str(data)]
        assert main([*convert, "--output", str(int8)]) == 0
        convert_s = time.perf_counter() - start
        print(f"train: {trained_s:.0f} s, convert: {convert_s:.0f} s", file=sys.stderr)
        summary = {
            "validation_images": len(held),
            "train_report_top1": result.validation["top1"],
            "epochs_run": len(result.history["loss"]),
            "history": result.history,
            "train_seconds": trained_s,
            "convert_seconds": convert_s,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))
        # Float (TF) and INT8 (LiteRT) side by side on the validation images.
        return main(["evaluate", str(val), "--weights", model, "--model", str(int8)])


if __name__ == "__main__":
    sys.exit(main_())
