"""`mobilenet-v2 classify`: the top-K ImageNet classes of each image, with LiteRT (--model)
or the TF float model."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from mobilenet_v2.base.preprocess import list_images
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
from mobilenet_v2.inference.classifier import model_identity
from mobilenet_v2.inference.models import ranked_classes
from mobilenet_v2.inference.result_parts import PartsWriter
from mobilenet_v2.inference.results import (
    ResultWriter,
    Row,
)
from mobilenet_v2.inference.runner import (
    BatchRunner,
    check_result_output,
    classified_rows,
    output_misnamed,
    write_output,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    classify = commands.add_parser(
        "classify",
        help="classify images",
        description="Top-K classes per image: ImageNet's, or a trained model's own labels.",
    )
    classify.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE|DIR|GLOB|URL",
        help="images; directories and URLs of folders expand to the images under them",
    )
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
        "(path, model, model_sha256, synsets, names, scores, error), atomically; with "
        "--engine ray, FILE may be a directory (DIR/, DIR.csv/, DIR.jsonl/): each worker "
        "writes its batches' rows there as part files (Parquet unless the name says)",
    )
    classify.add_argument(
        "--resume",
        action="store_true",
        help="with --output: keep the rows FILE (or an interrupted run's journal, or part "
        "files) already has and classify only the rest; rows with an error are tried again",
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
        problem = output_misnamed(args.output, args.engine)
        if problem:
            raise UsageError(f"--output {problem}")
        check_result_output(args.output, args.engine)  # before any work: writable, pyarrow
    images = list_images(args.inputs)  # fails before any model loads on an empty directory
    # With --model, LiteRT only: TensorFlow never loads.
    classifier = load_classifiers(args, model_paths(args))[0]
    runner = BatchRunner(
        [classifier],
        min(args.top, ranked_classes(classifier)),
        engine=args.engine,
        batch_size=args.batch_size,
        workers=args.workers,
        ray_address=args.ray_address,
        stall_timeout=args.stall_timeout,
        draft=args.draft,
        overrides={"resize": args.resize, "mean": args.input_mean, "std": args.input_std},
    )
    runner.preflight()  # before any output or journal exists
    if args.output:
        return classify_to_file(args, runner, images)

    failures = 0
    short: list[Source] = []  # images with fewer than --top classes scoring above 0
    many = len(images) > 1
    quiet = len(images) <= args.batch_size or args.engine == "ray"  # Ray Data shows its own
    bar = tqdm(total=len(images), unit="img", file=sys.stderr, disable=quiet)
    for batch, rows in classified_rows(runner, images, *model_identity(classifier)):
        for path, row in zip(batch, rows, strict=True):
            if row.error is not None:
                failures += 1
                tqdm.write(f"{args.prog}: error: {row.error}", file=sys.stderr)
                continue
            if len(row.synsets) < runner.top:  # classes at 0 are tied: not listed
                short.append(path)
            _print_result(path, row, args.json, many)
        bar.update(len(batch))
    bar.close()
    if short:
        step = getattr(classifier, "output_step", 0.0)
        where = str(short[0]) if len(short) == 1 else f"{len(short)} images"
        print(
            f"{args.prog}: note: {where}: fewer than {runner.top} classes score above 0"
            + (f" (the model's output step is {step:.4g})" if step else "")
            + "; classes at 0 are tied and not listed",
            file=sys.stderr,
        )
    return 1 if failures else 0


def classify_to_file(args: argparse.Namespace, runner: BatchRunner, images: list[Source]) -> int:
    """`classify --output`: the runner's rows through the one result writer; what it did,
    or where an interrupted run's rows are kept, said on stderr."""
    output = args.output
    made: list[ResultWriter | PartsWriter] = []
    try:
        summary = write_output(runner, images, output, args.resume, True, made.append)
    except BaseException:
        kept = made and _kept_after_interruption(made[0])
        if kept:
            print(
                f"{args.prog}: note: {kept}; the same command with --resume continues from them",
                file=sys.stderr,
            )
        raise
    failures, todo = summary.failures, summary.images
    rate = f", {summary.rate:.1f} images/s" if summary.rate is not None else ""
    kept_note = f" ({summary.kept} kept from before)" if summary.kept else ""
    if summary.nodes:
        rate += f" on {len(summary.nodes)} Ray node{'s' if len(summary.nodes) > 1 else ''}"
        rate += f" ({summary.ray_workers} inference worker{'s' if summary.ray_workers > 1 else ''})"
    print(
        f"wrote {summary.output}: {todo - failures} of {todo} images classified"
        f"{kept_note}, {failures} with an error{rate}",
        file=sys.stderr,
    )
    if failures:
        print(
            f"{args.prog}: error: {failures} of {todo} images could not be classified "
            f"(their rows in {summary.output} say why)",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _kept_after_interruption(writer: ResultWriter | PartsWriter) -> str | None:
    """Where an interrupted run's rows are, if it wrote any."""
    if isinstance(writer, PartsWriter):
        parts = writer.parts_so_far()
        if not parts:
            return None
        told = f"the {parts} parts so far are" if parts > 1 else "the 1 part so far is"
        return f"{told} kept in {writer.staging}"
    if not writer.rows_so_far:
        return None
    return f"the {writer.rows_so_far} rows so far are kept in {writer.journal.path}"


def _print_result(path: Source, row: Row, as_json: bool, with_header: bool) -> None:
    top = list(zip(row.synsets, row.names, row.scores, strict=True))
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
