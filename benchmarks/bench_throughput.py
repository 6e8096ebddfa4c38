"""Throughput benchmark for issue 12: `classify` over a directory against its own limits, a
Keras user's pipeline, and the Ray engine (local, and 1 vs 2 local nodes).

    python benchmarks/bench_throughput.py [--images DIR] [--repeat 3] [--out DIR]

All figures come from one run on one machine, each the median of `--repeat` runs:

- limits: decoding alone (`load_pixels` on the decode thread pool), and the INT8 model alone
  (`predict_pixels` on every CPU, images already in memory); together they share the CPUs,
  so the combined limit is 1 / (1/decode + 1/predict) images/s.
- `classify --model INT8 --output` and `classify --weights` (TF float), whole process
  (start-up included), images / wall seconds.
- a Keras user's pipeline: `tf.data` (read, `decode_jpeg`, resize to 224, `preprocess_input`)
  into `keras.applications.MobileNetV2.predict`, batch 32, timed from the first read to the
  last prediction (TensorFlow's import and the model build not counted: in its favour), and
  as a whole process, as `classify` is timed.
- Ray: `classify --output --engine ray` on a local Ray (whole process, and the rate of the
  summary line, which starts when the job does), on the images and on 4 linked copies of
  them (steady state); and on a two-node cluster on this machine against one node with the
  same CPUs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"
SAMPLE = SHARED / "data" / "imagenet" / "sample"
CLI = [sys.executable, "-m", "mobilenet_v2.cli"]

KERAS_PIPELINE = """
import sys, time
import tensorflow as tf
import keras
files = sorted(tf.io.gfile.glob(sys.argv[1] + "/*"))
model = keras.applications.MobileNetV2(weights=None)
def load(path):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.resize(image, (224, 224))
    return keras.applications.mobilenet_v2.preprocess_input(image)
data = (tf.data.Dataset.from_tensor_slices(files).map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(32).prefetch(tf.data.AUTOTUNE))
start = time.perf_counter()
model.predict(data, verbose=0)
print(len(files) / (time.perf_counter() - start))
"""


def median_of(repeat: int, measure) -> float:
    return statistics.median(measure() for _ in range(repeat))


def whole_process(args: list[str], count: int) -> tuple[float, float | None]:
    """(images / wall seconds of the process, the rate its summary line reports)."""
    start = time.perf_counter()
    run = subprocess.run([*CLI, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{run.stderr[-3000:]}")
    reported = re.search(r"([\d.]+) images/s", run.stderr)
    return count / seconds, float(reported.group(1)) if reported else None


def limits(model: Path, images: list[Path], repeat: int) -> tuple[float, float]:
    import numpy as np

    # As classify runs them: decoding to uint8 on the thread pool; the model on every CPU.
    from mobilenet_v2.base.machine import usable_cpus
    from mobilenet_v2.base.preprocess import decode_pool, geometry_of, load_pixels
    from mobilenet_v2.inference.classifier import load_tflite, predict_pixels, preprocessing_for

    classifier = load_tflite(model, num_threads=usable_cpus())
    prep = preprocessing_for(classifier)
    geometry = geometry_of(prep)

    def decode() -> float:
        start = time.perf_counter()
        with decode_pool() as pool:
            list(pool.map(lambda p: load_pixels(p, *geometry), images))
        return len(images) / (time.perf_counter() - start)

    pixels = np.stack([load_pixels(p, *geometry) for p in images])

    def predict() -> float:
        start = time.perf_counter()
        for i in range(0, len(pixels), 32):
            predict_pixels(classifier, pixels[i : i + 32], prep["mean"], prep["std"])
        return len(images) / (time.perf_counter() - start)

    return median_of(repeat, decode), median_of(repeat, predict)


def ray_nodes(model: Path, folder: Path, count: int, nodes: int, out: Path) -> float:
    """The rate of the summary line on a local cluster of `nodes` raylets sharing 2 CPUs."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2 // nodes})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=2 // nodes)
        cluster.wait_for_nodes()
        args = ["classify", str(folder), "--model", str(model), "--output", str(out)]
        _, rate = whole_process(
            [*args, "--engine", "ray", "--ray-address", cluster.address, "--workers", "1"], count
        )
    finally:
        cluster.shutdown()
    out.unlink(missing_ok=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SAMPLE))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="where the INT8 model goes (a temp dir)")
    parser.add_argument("--model", default=None, help="an INT8 .tflite (else converted here)")
    args = parser.parse_args()

    from mobilenet_v2.base.machine import describe
    from mobilenet_v2.base.outputs import markdown_table
    from mobilenet_v2.base.sources import list_sources

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-throughput-"))
    out.mkdir(parents=True, exist_ok=True)
    images = list_sources([args.images])
    count = len(images)
    model = Path(args.model) if args.model else out / "int8.tflite"
    if not args.model:  # as the issue measured: the fixture's weights, 32 calibration images
        convert = ["convert", "--output", str(model), "--weights", str(WEIGHTS)]
        convert += ["--calibration-dir", args.images, "--calibration-size", "32"]
        subprocess.run([*CLI, *convert], check=True, capture_output=True)
    copies = out / "copies"  # 4 links to every image: a longer job, the same pixels
    if not copies.exists():
        for k in range(4):
            (copies / str(k)).mkdir(parents=True)
            for image in images:
                (copies / str(k) / image.name).symlink_to(Path(image).resolve())

    decode, predict = limits(model, images, args.repeat)
    combined = 1 / (1 / decode + 1 / predict)
    result = out / "rows.parquet"
    int8 = ["classify", args.images, "--model", str(model), "--output", str(result)]
    tf_float = ["classify", args.images, "--weights", str(WEIGHTS), "--output", str(result)]

    def median_pair(cli_args: list[str], n: int) -> tuple[float, float]:
        runs = [whole_process(cli_args, n) for _ in range(args.repeat)]
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    default_whole, default_job = median_pair(int8, count)
    ray_whole, ray_job = median_pair([*int8, "--engine", "ray"], count)
    long = [*int8[:1], str(copies), *int8[2:]]
    default_long = median_pair(long, 4 * count)[1]
    ray_long = median_pair([*long, "--engine", "ray"], 4 * count)[1]
    tf_whole = median_pair(tf_float, count)[0]
    keras_runs, keras_whole_runs = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", KERAS_PIPELINE, args.images],
            capture_output=True,
            text=True,
            check=True,
        )
        keras_whole_runs.append(count / (time.perf_counter() - start))
        keras_runs.append(float(run.stdout.split()[-1]))
    keras_rate = statistics.median(keras_runs)
    keras_whole = statistics.median(keras_whole_runs)
    one_node = ray_nodes(model, copies, 4 * count, 1, result)
    two_nodes = ray_nodes(model, copies, 4 * count, 2, result)

    rows = [
        ["decoding alone (`load_pixels`, decode thread pool)", f"{decode:.0f}", ""],
        ["INT8 model alone (`predict_pixels`, images in memory)", f"{predict:.0f}", ""],
        ["combined limit 1 / (1/decode + 1/predict)", f"{combined:.0f}", "1.00 (reference)"],
        [
            "`classify --model INT8 --output`, whole process",
            f"{default_whole:.0f}",
            f"{default_whole / combined:.2f} of the combined limit; "
            f"{default_whole / keras_rate:.1f}x Keras",
        ],
        [
            "`classify --weights` (TF float), whole process",
            f"{tf_whole:.0f}",
            f"{tf_whole / keras_rate:.2f}x Keras; {tf_whole / keras_whole:.2f}x Keras whole",
        ],
        ["Keras user: `tf.data` + `keras.applications` predict, batch 32", f"{keras_rate:.0f}", ""],
        ["the same Keras script, whole process", f"{keras_whole:.0f}", ""],
        [
            f"`--engine ray` (local), {count} images: whole process / job",
            f"{ray_whole:.0f} / {ray_job:.0f}",
            f"{ray_whole / default_whole:.2f} / {ray_job / default_job:.2f} of the default engine",
        ],
        [
            f"{4 * count} images (linked copies): default / `--engine ray` job",
            f"{default_long:.0f} / {ray_long:.0f}",
            f"Ray {ray_long / default_long:.2f} of the default engine",
        ],
        [
            f"Ray on 1 node (2 CPUs) / 2 nodes (1 CPU each), {4 * count} images",
            f"{one_node:.0f} / {two_nodes:.0f}",
            f"2 nodes {two_nodes / one_node:.2f} of 1",
        ],
    ]
    print(markdown_table(["", "images/s", "ratio"], rows, text_columns=1))
    print(f"\n{count} images from {args.images}; median of {args.repeat}; {describe()}")
    if not args.out:  # a temporary folder of ours: the model, the links, the rows
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
