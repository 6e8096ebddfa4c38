"""`mobilenet-v2 classify`: the top-K ImageNet classes of each image, with LiteRT (--model)
or the TF float model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mobilenet_v2.base.errors import ImageError, MobileNetV2Error
from mobilenet_v2.base.labels import decode_predictions, named
from mobilenet_v2.base.preprocess import decoded_batches, geometry_of, list_images, load_pixels
from mobilenet_v2.base.sources import Source
from mobilenet_v2.cli.parser import (
    UsageError,
    add_engine_flags,
    add_input_flags,
    add_model_flags,
    check_engine_flags,
    input_size,
    load_classifiers,
    model_paths,
    positive_int,
)
from mobilenet_v2.inference.classifier import model_identity, predict_pixels, preprocessing_for
from mobilenet_v2.inference.results import (
    SUFFIXES,
    Journal,
    Row,
    check_output,
    path_key,
    path_text,
    read_results,
    result_format,
    write_results,
)

Result = list[tuple[str, str, float]] | MobileNetV2Error


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    classify = commands.add_parser(
        "classify",
        help="classify images",
        description="Top-K classes per image: ImageNet's, or a trained model's own labels.",
    )
    classify.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|GLOB|URL")
    add_model_flags(classify)
    classify.add_argument("--size", type=input_size, default=None, help="TF model input size (224)")
    add_input_flags(classify)
    add_engine_flags(classify)
    classify.add_argument("--top", type=positive_int, default=5, help="classes per image (5)")
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
        help="with --output: keep the rows FILE (or an interrupted run's journal) already has "
        "and classify only the rest; rows with an error are tried again",
    )
    return classify


def run(args: argparse.Namespace) -> int:
    if args.model and args.weights:
        raise UsageError("give --model (LiteRT) or --weights (TF model), not both")
    if args.output and args.json:
        raise UsageError("--json prints to stdout; --output writes a file: give one")
    if args.resume and not args.output:
        raise UsageError("--resume continues an --output file")
    check_engine_flags(args)
    if args.output:
        if result_format(args.output) is None:
            raise UsageError(
                f"--output {args.output}: unknown result format; use a name ending in "
                + ", ".join(SUFFIXES)
            )
        check_output(args.output)  # before any work: writable, and pyarrow for Parquet
    images = list_images(args.inputs)  # fails before any model loads on an empty directory
    # With --model, LiteRT only: TensorFlow never loads.
    classifier = load_classifiers(args, model_paths(args))[0]
    prep = preprocessing_for(
        classifier, resize=args.resize, mean=args.input_mean, std=args.input_std
    )
    failures = 0
    short: list[Source] = []  # images with fewer than --top classes scoring above 0
    if args.engine == "ray":  # before any output or journal exists
        from mobilenet_v2.inference.ray_engine import preflight

        preflight([classifier], args.ray_address)
    args.top = min(args.top, classifier_classes(classifier))
    ranking = Ranking(args, classifier, prep)
    if args.output:
        return classify_to_file(args, ranking, images)

    many = len(images) > 1
    quiet = len(images) <= args.batch_size or args.engine == "ray"  # Ray Data shows its own
    bar = tqdm(total=len(images), unit="img", file=sys.stderr, disable=quiet)
    for batch, results in ranking.batches(images):
        for path, result in zip(batch, results, strict=True):
            if isinstance(result, MobileNetV2Error):
                failures += 1
                tqdm.write(f"{args.prog}: error: {result}", file=sys.stderr)
                continue
            # A quantized output rounds every unlikely class to exactly 0; their order
            # would be the class index (tench, goldfish, ...), so they are not listed.
            shown = [row for row in result if row[2] > 0]
            if len(shown) < len(result):
                short.append(path)
            _print_result(path, shown, args.json, many)
        bar.update(len(batch))
    bar.close()
    if short:
        step = getattr(classifier, "output_step", 0.0)
        where = str(short[0]) if len(short) == 1 else f"{len(short)} images"
        print(
            f"{args.prog}: note: {where}: fewer than {args.top} classes score above 0"
            + (f" (the model's output step is {step:.4g})" if step else "")
            + "; classes at 0 are tied and not listed",
            file=sys.stderr,
        )
    return 1 if failures else 0


class Ranking:
    """The top classes of images, batch by batch, with either engine: `batches(images)`
    yields `(sources, results)`, a result being `(synset, name, score)` rows best first, or
    the error that kept the image from being classified."""

    def __init__(self, args: argparse.Namespace, classifier: Any, prep: dict[str, Any]) -> None:
        self.args, self.classifier, self.prep = args, classifier, prep
        self.nodes: set[str] = set()  # where the Ray engine ran (decoding and inference)
        self.names = getattr(classifier, "labels", None)  # the model's own, from its metadata

    def batches(self, images: list[Source]) -> Iterator[tuple[list[Source], list[Result]]]:
        if not images:  # e.g. --resume with nothing left: no Ray to start
            return
        if self.args.engine == "ray":
            yield from self._ray(images)
            return

        prep = self.prep
        geometry = geometry_of(prep)

        def load(path: Source) -> np.ndarray | MobileNetV2Error:
            try:
                return load_pixels(path, *geometry, draft=self.args.draft)
            except MobileNetV2Error as exc:
                return exc

        for batch, loaded in decoded_batches(images, self.args.batch_size, load):
            good = [x for x in loaded if isinstance(x, np.ndarray)]
            if good:
                scores = predict_pixels(self.classifier, np.stack(good), prep["mean"], prep["std"])
            tops = iter(decode_predictions(scores, self.args.top, self.names) if good else ())
            yield batch, [x if isinstance(x, MobileNetV2Error) else next(tops) for x in loaded]

    def _ray(self, images: list[Source]) -> Iterator[tuple[list[Source], list[Result]]]:
        from mobilenet_v2.inference.ray_engine import RayJob, connected

        args = self.args
        with connected(args.ray_address):
            job = RayJob(
                images,
                [self.classifier],
                [self.prep],
                args.top,
                args.batch_size,
                args.workers,
                args.draft,
            )
            for ranked in job:
                results: list[Result] = []
                for error, best, scores in zip(
                    ranked.errors, ranked.classes[0], ranked.scores[0], strict=True
                ):
                    if error:
                        results.append(ImageError(error))
                        continue
                    results.append(named(best, scores, self.names))
                yield [images[p] for p in ranked.positions], results
                self.nodes = job.decode_nodes | job.rank_nodes


def classifier_classes(classifier: Any) -> int:
    """How many classes the classifier ranks (ImageNet's 1000, background left out)."""
    return getattr(classifier, "classes", 1000) - getattr(classifier, "label_offset", 0)


def classify_to_file(args: argparse.Namespace, ranking: Ranking, images: list[Source]) -> int:
    """`classify --output`: rows to the journal batch by batch, then the output at once, in
    the inputs' order."""
    output = Path(args.output)
    journal = Journal(output)
    model, model_sha256 = model_identity(ranking.classifier)
    earlier: list[Row] = []
    if args.resume:  # what the output and an interrupted run's journal hold, minus failures
        kept = {path_key(r.path): r for r in read_results(output) + journal.rows()}
        earlier = [r for r in kept.values() if r.error is None]
        other = next(
            (r for r in earlier if (r.model, r.model_sha256) != (model, model_sha256)), None
        )
        if other is not None:
            raise MobileNetV2Error(
                f"{output}: holds results of another model ({other.model}, sha256 "
                f"{other.model_sha256[:12]}…); write to a new file, or drop --resume"
            )
        widest = max((len(r.synsets) for r in earlier), default=0)
        if widest > args.top:
            raise MobileNetV2Error(
                f"{output}: holds top-{widest} results; resume with --top {widest} or more"
            )
    done = {path_key(r.path) for r in earlier}
    todo = []
    for path in images:  # each input once, however often or however spelled it was given
        key = path_key(path)
        if key not in done:
            done.add(key)
            todo.append(path)
    journal.rewrite(earlier)
    failures = written = 0
    start = time.perf_counter()
    quiet = len(todo) <= args.batch_size or args.engine == "ray"  # Ray Data shows its own
    bar = tqdm(total=len(todo), unit="img", file=sys.stderr, disable=quiet)
    try:
        for batch, results in ranking.batches(todo):
            rows = []
            for path, result in zip(batch, results, strict=True):
                row = Row(path_text(path), model, model_sha256)
                if isinstance(result, MobileNetV2Error):
                    failures += 1
                    row.error = str(result)
                else:
                    shown = [r for r in result if r[2] > 0]  # 0: tied, not ranked
                    row.synsets = [synset for synset, _, _ in shown]
                    row.names = [name for _, name, _ in shown]
                    row.scores = [score for _, _, score in shown]
                rows.append(row)
            journal.append(rows)
            written += len(rows)
            bar.update(len(batch))
    except BaseException:
        journal.close()
        bar.close()
        if written or earlier:
            print(
                f"{args.prog}: note: the {written + len(earlier)} rows so far are kept in "
                f"{journal.path}; the same command with --resume continues from them",
                file=sys.stderr,
            )
        raise
    bar.close()
    journal.close()
    # The Ray engine returns rows as they finish: the output lists them in the inputs' order
    # (rows kept from an earlier run for other inputs first).
    order: dict[str, int] = {}
    for i, path in enumerate(images):  # an input given twice: where it first appears
        order.setdefault(path_key(path), i)
    rows = sorted(journal.rows(), key=lambda r: order.get(path_key(r.path), -1))
    write_results(output, rows, args.top)
    journal.remove()
    seconds = time.perf_counter() - start
    rate = f", {len(todo) / seconds:.1f} images/s" if todo and seconds > 0 else ""
    kept_note = f" ({len(earlier)} kept from before)" if earlier else ""
    if ranking.nodes:
        rate += f" on {len(ranking.nodes)} Ray node{'s' if len(ranking.nodes) > 1 else ''}"
    print(
        f"wrote {output}: {len(todo) - failures} of {len(todo)} images classified"
        f"{kept_note}, {failures} with an error{rate}",
        file=sys.stderr,
    )
    if failures:
        print(
            f"{args.prog}: error: {failures} of {len(todo)} images could not be classified "
            f"(their rows in {output} say why)",
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
        # A user's class has no synset: its label is printed once.
        print(f"{name} {score:.3f}" if synset == name else f"{synset} {name} {score:.3f}")
    sys.stdout.flush()
