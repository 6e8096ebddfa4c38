"""`mobilenet-v2 classify`: the top-K ImageNet classes of each image, with LiteRT (--model)
or the TF float model."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mobilenet_v2.classifier import model_identity, preprocessing_for
from mobilenet_v2.cli.parser import (
    UsageError,
    add_input_flags,
    add_model_flags,
    load_classifiers,
    model_paths,
    positive_int,
)
from mobilenet_v2.errors import MobileNetV2Error
from mobilenet_v2.labels import decode_predictions
from mobilenet_v2.preprocess import decode_pool, list_images, load_image
from mobilenet_v2.results import Row, read_results, result_format, result_writer


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    classify = commands.add_parser(
        "classify", help="classify images", description="Top-K ImageNet classes per image."
    )
    classify.add_argument("inputs", nargs="+", metavar="IMAGE|DIR")
    add_model_flags(classify)
    classify.add_argument(
        "--size", type=positive_int, default=None, help="TF model input size (224)"
    )
    add_input_flags(classify)
    classify.add_argument("--top", type=positive_int, default=5, help="classes per image (5)")
    classify.add_argument("--batch-size", type=positive_int, default=32, help="images (32)")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")
    classify.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="write one row per image to FILE instead of stdout: .parquet, .csv or .jsonl "
        "(path, model, model_sha256, synsets, names, scores, error), atomically",
    )
    classify.add_argument(
        "--resume",
        action="store_true",
        help="with --output: keep the rows FILE already has and classify only the rest",
    )
    return classify


def run(args: argparse.Namespace) -> int:
    if args.model and args.weights:
        raise UsageError("give --model (LiteRT) or --weights (TF model), not both")
    if args.output and args.json:
        raise UsageError("--json prints to stdout; --output writes a file: give one")
    if args.resume and not args.output:
        raise UsageError("--resume continues an --output file")
    if args.output:
        result_format(args.output)  # an unknown suffix fails before any work
    images = list_images(args.inputs)  # fails before any model loads on an empty directory
    # With --model, LiteRT only: TensorFlow never loads.
    classifier = load_classifiers(args, model_paths(args))[0]
    prep = preprocessing_for(
        classifier, resize=args.resize, mean=args.input_mean, std=args.input_std
    )
    failures = 0
    short: list[Path] = []  # images with fewer than --top classes scoring above 0

    def load(path: Path) -> np.ndarray | MobileNetV2Error:
        try:
            return load_image(path, **prep)
        except MobileNetV2Error as exc:
            return exc

    many = len(images) > 1
    with contextlib.ExitStack() as stack:
        writer = None
        if args.output:
            earlier = read_results(args.output) if args.resume else []
            done = {row.path for row in earlier}
            images = [p for p in images if str(p) not in done]
            writer = stack.enter_context(result_writer(args.output, args.top))
            writer.write(earlier)
            model, model_sha256 = model_identity(classifier)
        start_time = time.perf_counter()
        bar = tqdm(
            total=len(images),
            unit="img",
            file=sys.stderr,
            disable=len(images) <= args.batch_size and not writer,
        )
        pool = stack.enter_context(decode_pool())
        for start in range(0, len(images), args.batch_size):
            batch = images[start : start + args.batch_size]
            loaded = list(pool.map(load, batch))
            good = [(p, x) for p, x in zip(batch, loaded, strict=True) if isinstance(x, np.ndarray)]
            tops = {}
            if good:
                scores = classifier.predict(np.stack([x for _, x in good]))
                for (path, _), top in zip(good, decode_predictions(scores, args.top), strict=True):
                    # A quantized output rounds every unlikely class to exactly 0; their order
                    # would be the class index (tench, goldfish, ...), so they are not listed.
                    tops[path] = [row for row in top if row[2] > 0]
                    if len(tops[path]) < len(top):
                        short.append(path)
            rows = []
            for path, x in zip(batch, loaded, strict=True):
                if isinstance(x, MobileNetV2Error):
                    failures += 1
                    if writer:
                        rows.append(Row(str(path), model, model_sha256, error=str(x)))
                    else:
                        tqdm.write(f"{args.prog}: error: {x}", file=sys.stderr)
                elif writer:
                    synsets, names, top_scores = (list(c) for c in zip(*tops[path], strict=True))
                    scores_ = [float(v) for v in top_scores]
                    rows.append(Row(str(path), model, model_sha256, synsets, names, scores_))
                else:
                    _print_result(path, tops[path], args.json, many)
            if writer:
                writer.write(rows)
            bar.update(len(batch))
        bar.close()
        seconds = time.perf_counter() - start_time
    if args.output:  # the file is complete and in place now
        rate = len(images) / seconds if seconds > 0 else 0.0
        kept = f" and kept {len(earlier)} from before" if earlier else ""
        print(
            f"wrote {args.output}: classified {len(images)} images{kept}; "
            f"{failures} error{'s' if failures != 1 else ''}, {rate:.1f} images/s",
            file=sys.stderr,
        )
    if short:
        step = getattr(classifier, "output_step", 0.0)
        where = str(short[0]) if len(short) == 1 else f"{len(short)} images"
        print(
            f"{args.prog}: note: {where}: fewer than {args.top} classes score above 0"
            + (f" (the model's output step is {step:.4g})" if step else "")
            + "; classes at 0 are tied and not listed",
            file=sys.stderr,
        )
    if failures and args.output:
        print(
            f"{args.prog}: error: {failures} of {len(images)} images could not be classified "
            f"(rows with an error in {args.output})",
            file=sys.stderr,
        )
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
