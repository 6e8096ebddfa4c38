"""The `mobilenet-v2` command.

Errors in the user's input (files, flags, weights) are printed as one line naming the file,
with exit status 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import RESIZE_MODES, list_images, load_image

PROG = "mobilenet-v2"


def default_weights() -> str:
    return os.environ.get("MOBILENET_V2_WEIGHTS") or "imagenet"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_preprocessing_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=_positive_int, default=224, help="input size (224)")
    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help="crop: central 87.5%% square, then resize (ImageNet eval); stretch: whole image",
    )
    parser.add_argument("--input-mean", type=float, default=127.5, help="(x - mean) / std")
    parser.add_argument("--input-std", type=float, default=127.5, help="(x - mean) / std")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="MobileNetV2 from TensorFlow low-level ops."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser(
        "classify", help="classify images", description="Top-K ImageNet classes per image."
    )
    classify.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    classify.add_argument(
        "--weights",
        default=None,
        help="'imagenet' (official Keras file, downloaded once), an .h5/.weights.h5/.keras "
        "file or a MobileNetV2 .tflite (default: $MOBILENET_V2_WEIGHTS or imagenet)",
    )
    classify.add_argument("--alpha", type=float, default=1.0, help="width multiplier (1.0)")
    _add_preprocessing_flags(classify)
    classify.add_argument("--top", type=_positive_int, default=5, help="classes per image (5)")
    classify.add_argument("--batch-size", type=_positive_int, default=32)
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.set_defaults(run=run_classify)
    return parser


def run_classify(args: argparse.Namespace) -> int:
    images = list_images(args.inputs)  # fails before TensorFlow loads on an empty directory
    from mobilenet_v2.model import MobileNetV2

    model = MobileNetV2(
        input_shape=(args.size, args.size, 3),
        alpha=args.alpha,
        weights=args.weights or default_weights(),
    )
    failures = 0

    def load(path: Path) -> np.ndarray | MobileNetV2Error:
        try:
            return load_image(
                path, args.size, args.resize, mean=args.input_mean, std=args.input_std
            )
        except MobileNetV2Error as exc:
            return exc

    many = len(images) > 1
    bar = tqdm(
        total=len(images), unit="img", file=sys.stderr, disable=len(images) <= args.batch_size
    )
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(images), args.batch_size):
            batch = images[start : start + args.batch_size]
            loaded = list(pool.map(load, batch))
            good = [(p, x) for p, x in zip(batch, loaded, strict=True) if isinstance(x, np.ndarray)]
            for x in loaded:
                if isinstance(x, MobileNetV2Error):
                    failures += 1
                    tqdm.write(f"{PROG}: error: {x}", file=sys.stderr)
            if good:
                scores = np.asarray(model.predict_on_batch(np.stack([x for _, x in good])))
                for (path, _), top in zip(good, decode_predictions(scores, args.top), strict=True):
                    _print_result(path, top, args.json, many)
            bar.update(len(batch))
    bar.close()
    return 1 if failures else 0


def _print_result(path: Path, top: list, as_json: bool, with_header: bool) -> None:
    if as_json:
        preds = [{"synset": s, "name": n, "score": score} for s, n, score in top]
        print(json.dumps({"image": str(path), "predictions": preds}), flush=True)
        return
    if with_header:
        print(f"{path}:")
    for synset, name, score in top:
        print(f"{synset} {name} {score:.3f}")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (MobileNetV2Error, ValueError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
