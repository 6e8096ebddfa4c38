"""The NumPy reference against LiteRT: speed on one 224x224 image, and how far LiteRT's
default (optimized) kernels and XNNPACK differ from the reference kernels.

    python benchmarks/bench_reference.py MODEL.tflite [MODEL.tflite ...] --images DIR [--limit 20]

Prints Markdown: latency of `ReferenceInterpreter.run` (median of 5) next to LiteRT's
reference and optimized kernels in the same process, then per op output the elements that
differ from LiteRT's reference kernels by exactly 1 and by more, over all images. XNNPACK
runs the whole graph inside its delegate, so only its final output can be compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from mobilenet_v2.analysis.tensor_map import tflite_table
from mobilenet_v2.base.outputs import markdown_table
from mobilenet_v2.base.preprocess import list_images
from mobilenet_v2.base.quiet import silenced_stderr
from mobilenet_v2.inference.classifier import load_for
from mobilenet_v2.reference.interpreter import ReferenceInterpreter


def interpreter(model: str, resolver: OpResolverType, preserve: bool = True) -> Interpreter:
    with silenced_stderr():
        it = Interpreter(
            model_path=model,
            experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=preserve,
            num_threads=1,
        )
        it.allocate_tensors()
    return it


def median_seconds(run, repeats: int = 5) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(model: str, images: list[Path]) -> None:
    reference = ReferenceInterpreter(model)
    names = {t.index: t.file_name for t in tflite_table(reference.model).tensors.values()}
    kernels = {
        "reference": interpreter(model, OpResolverType.BUILTIN_REF),
        "optimized": interpreter(model, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
        "xnnpack": interpreter(model, OpResolverType.AUTO, preserve=False),
    }
    index = kernels["reference"].get_input_details()[0]["index"]
    output = reference.model.outputs[0]
    x0 = reference.quantize_input(load_for(reference, images[0])[None])

    def invoke(it: Interpreter) -> None:
        it.set_tensor(index, x0)
        it.invoke()

    numpy_s = median_seconds(lambda: reference.run(x0))
    print(f"\n### {model}\n")
    rows = [["`mobilenet_v2.reference` (NumPy)", f"{numpy_s:.3f} s", "1.00"]]
    for name, it in kernels.items():
        seconds = median_seconds(lambda it=it: invoke(it))
        rows.append([f"LiteRT {name} kernels", f"{seconds:.3f} s", f"{seconds / numpy_s:.3f}"])
    headers = ["engine (1 thread)", "one 224x224 image", "vs NumPy reference"]
    print(markdown_table(headers, rows, text_columns=1))

    ops = [op for op in reference.model.operators]
    off_by_one = {op.index: 0 for op in ops}
    more = {op.index: 0 for op in ops}
    xnn_one = xnn_more = total_out = 0
    for image in images:
        x = reference.quantize_input(load_for(reference, image)[None])
        values = reference.run(x)
        for it in kernels.values():
            it.set_tensor(index, x)
            it.invoke()
        for op in ops:
            got = kernels["optimized"].get_tensor(op.outputs[0]).astype(np.int64)
            want = kernels["reference"].get_tensor(op.outputs[0]).astype(np.int64)
            assert np.array_equal(values[op.outputs[0]].astype(np.int64), want)
            diff = np.abs(got - want)
            off_by_one[op.index] += int((diff == 1).sum())
            more[op.index] += int((diff > 1).sum())
        got = kernels["xnnpack"].get_tensor(output).astype(np.int64)
        diff = np.abs(got - values[output].astype(np.int64))
        xnn_one += int((diff == 1).sum())
        xnn_more += int((diff > 1).sum())
        total_out += diff.size
    print(
        f"\nOver {len(images)} images the NumPy reference equals LiteRT's reference kernels on "
        "every tensor. LiteRT's optimized kernels against them (elements of each op output):\n"
    )
    rows = []
    for op in ops:
        elements = int(np.prod(reference.tensor(op.outputs[0]).shape)) * len(images)
        rows.append(
            [
                f"{op.index} {op.opcode}",
                names[op.outputs[0]],
                f"{elements:,}",
                f"{off_by_one[op.index]:,} ({off_by_one[op.index] / elements:.2%})",
                f"{more[op.index]:,}",
            ]
        )
    headers = ["op", "output", "elements", "differ by 1", "differ by more"]
    print(markdown_table(headers, rows, text_columns=2))
    print(
        f"\nXNNPACK (final output only): {xnn_one:,} of {total_out:,} elements differ by 1 "
        f"({xnn_one / total_out:.2%}), {xnn_more:,} by more."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", required=True)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    images = list_images([args.images])[: args.limit]
    for model in args.models:
        report(model, images)


if __name__ == "__main__":
    main()
