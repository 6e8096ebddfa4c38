"""`--engine ray`: classify and evaluate on Ray Data give the default engine's rows and
numbers, on a local Ray that starts and stops itself and on a two-node cluster; bad inputs
are rows with an error; sources may be globs and URLs. (A worker that dies is retried without
losing or doubling a row: tests/test_runner.py, with a classifier that dies once.)

Every Ray run is a subprocess, as a user's would be: Ray starts there and stops with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE, GOOD_IMAGES, IMAGES, SAMPLE, good_and_bad_images

from mobilenet_v2.base.errors import MobileNetV2Error
from mobilenet_v2.cli import main
from mobilenet_v2.inference.result_parts import read_parts
from mobilenet_v2.inference.results import read_results

pytestmark = pytest.mark.shared
ONE_CPU = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
# Test clusters bind to loopback: nothing outside this machine can join them. Ray turns
# 127.0.0.1 into the machine's address unless told it has no cluster networking (read at
# import: patched here, and set for the commands the tests run).
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@contextmanager
def loopback_cluster(nodes: int):
    """A Ray cluster of `nodes` nodes of one CPU each (raylets on this machine)."""
    import ray._private.ray_constants as constants
    from ray.cluster_utils import Cluster

    saved, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    cluster = Cluster(initialize_head=True, head_node_args=ONE_CPU)
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**ONE_CPU)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()
        constants.ENABLE_RAY_CLUSTER = saved


def mobilenet_v2(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray
    environ.update(LOOPBACK)
    return subprocess.run(
        [sys.executable, "-m", "mobilenet_v2.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**environ, **(env or {})},
    )


def assert_same_rows(ours, theirs) -> None:
    """Same inputs in the same order, same classes; scores within 1e-6 (the float model's
    batches may be cut differently; the INT8 model's scores are exactly equal)."""
    assert [r.path for r in ours] == [r.path for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert (a.synsets, a.names, a.error) == (b.synsets, b.names, b.error), a.path
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6, rtol=0)


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Four photos, and what a crawl also finds: an empty file, text named .jpg, a JPEG cut
    off after 2000 bytes, and a directory named x.jpg."""
    folder = good_and_bad_images(tmp_path / "mixed")
    (folder / "x.jpg").mkdir()
    return folder


@pytest.mark.parametrize("model", ["int8", pytest.param("tf", marks=pytest.mark.slow)])
def test_ray_gives_the_default_engines_rows(model, int8_model, tmp_path, capsys):
    """All 500 sample images (four of Ray's batches of 128), the rows written by Ray's
    workers as part files: the INT8 model, and under slow the TF float model (the fixture's
    weights; the default run has it on Ray in the evaluate test below, on 48 images)."""
    flags = ["--model", str(int8_model)] if model == "int8" else ["--weights", str(FIXTURE_TFLITE)]
    default, ray = tmp_path / "default.parquet", f"{tmp_path}/ray/"
    assert main(["classify", str(SAMPLE), *flags, "--output", str(default)]) == 0
    run = mobilenet_v2("classify", str(SAMPLE), *flags, "--output", ray, "--engine", "ray")
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"wrote {ray}: 500 of 500 images classified, 0 with an error" in run.stderr
    assert re.search(r"images/s on 1 Ray node \([12] inference workers?\)\n", run.stderr)
    assert len(list((tmp_path / "ray").glob("part-*.parquet"))) >= 2  # one per batch
    rows = sorted(read_parts(tmp_path / "ray", "parquet"), key=lambda r: r.path)
    assert_same_rows(rows, read_results(default))  # the default engine's are sorted by path


def test_evaluate_on_ray_gives_the_same_table(int8_model, splits, capsys):
    """Three models side by side, each worker loading all three: the TF float model (the
    fixture's weights: the Keras path on Ray), the session's INT8 model and the uint8
    fixture; 48 held-out images in batches of 16, so rows come from several blocks."""
    args = ["evaluate", str(splits[1]), "--limit", "48", "--batch-size", "16"]
    args += ["--weights", str(FIXTURE_TFLITE), "--model", str(int8_model)]
    args += ["--model", str(FIXTURE_TFLITE)]
    assert main([*args, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    # One worker: the point is the models side by side, not two workers each importing TF
    run = mobilenet_v2(*args, "--json", "--engine", "ray", "--workers", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    ray = json.loads(run.stdout)
    keys = ("model", "images", "top1", "top5", "agreement_top1")
    assert [{k: r.get(k) for k in keys} for r in ray["results"]] == [
        {k: r.get(k) for k in keys} for r in default["results"]
    ]
    assert [r["images"] for r in default["results"]] == [48, 48, 48]
    assert default["results"][0]["kernels"] == "tf"


@pytest.mark.integration  # starts Ray
def test_a_two_node_cluster_shares_the_work_and_reads_urls(tmp_path):
    """A head and a second node of one CPU each (two raylets on this machine, on loopback),
    the job sent to the head's address, images given as file:// URLs as a cluster would
    read object storage: one inference worker per node, both of them working."""
    images = sorted(SAMPLE.glob("*.JPEG"))[:192]
    out = tmp_path / "rows.jsonl"
    with loopback_cluster(2) as cluster:
        run = mobilenet_v2(
            "classify",
            *(p.as_uri() for p in images),
            "--model",
            str(FIXTURE_TFLITE),
            "--output",
            str(out),
            "--engine",
            "ray",
            "--ray-address",
            cluster.address,
            "--batch-size",
            "8",
        )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "192 of 192 images classified, 0 with an error" in run.stderr
    assert re.search(r"images/s on 2 Ray nodes \(2 inference workers\)\n", run.stderr)
    rows = read_results(out)
    assert [r.path for r in rows] == [p.as_uri() for p in images]
    assert all(r.error is None and r.synsets for r in rows)


@pytest.fixture(scope="module")
def one_cpu_node():
    """A Ray cluster of one node with one CPU, on loopback."""
    with loopback_cluster(1) as cluster:
        yield cluster


@pytest.mark.integration  # starts Ray
def test_a_one_cpu_node_classifies_everything_with_more_workers_asked_than_cpus(
    one_cpu_node, tmp_path
):
    """The node's one CPU holds the one inference worker, which reads and decodes its own
    batches (decoding tasks of their own waited forever for that CPU: issue 26)."""
    images = sorted(SAMPLE.glob("*.JPEG"))[:200]
    out = tmp_path / "rows.parquet"
    run = mobilenet_v2(
        "classify",
        *map(str, images),
        "--model",
        str(FIXTURE_TFLITE),
        "--output",
        str(out),
        "--engine",
        "ray",
        "--ray-address",
        one_cpu_node.address,
        "--workers",
        "3",
        "--stall-timeout",
        "120",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "200 of 200 images classified, 0 with an error" in run.stderr
    assert re.search(r"images/s on 1 Ray node \(1 inference worker\)\n", run.stderr)
    assert [r.path for r in read_results(out)] == list(map(str, images))


@pytest.mark.integration  # starts Ray
def test_a_job_that_never_gets_a_cpu_ends_with_one_line(one_cpu_node, tmp_path):
    """Another job holds the cluster's only CPU: no worker can start, and after
    --stall-timeout the job says so in one line, exit 1, leaving no output."""
    import ray

    ray.init(address=one_cpu_node.address, log_to_driver=False, logging_level="error")
    try:

        @ray.remote(num_cpus=1)
        class Holder:
            def ready(self) -> bool:
                return True

        holder = Holder.remote()
        ray.get(holder.ready.remote())
        out = tmp_path / "rows.csv"
        args = ["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
        args += ["--output", str(out), "--engine", "ray", "--ray-address", one_cpu_node.address]
        run = mobilenet_v2(*args, "--stall-timeout", "8")
    finally:
        ray.shutdown()
    assert run.returncode == 1
    error = "no batch finished in 8 s; the cluster has 1 CPU, 0 free"
    ours = [line for line in run.stderr.splitlines() if "mobilenet-v2" in line]
    assert len(ours) == 1 and error in ours[0], run.stderr  # the rest is Ray's progress
    assert "Traceback" not in run.stderr and not out.exists()


def test_workers_are_one_per_cpu_at_most_and_a_cluster_without_cpus_is_refused():
    from mobilenet_v2.inference.ray_engine import worker_count

    assert worker_count(None, 4.0, None) == 4
    assert worker_count(2, 4.0, None) == 2
    assert worker_count(3, 1.0, None) == 1
    with pytest.raises(MobileNetV2Error, match=r"cluster at h:6379 has no CPU for an inference"):
        worker_count(None, 0.5, "h:6379")


def test_a_stalled_iterator_ends_with_the_reason_and_a_flowing_one_passes_through():
    import time

    from mobilenet_v2.inference.ray_engine import _with_deadline

    def stalls():
        yield 1
        time.sleep(30)
        yield 2

    flowing = _with_deadline(iter([1, 2, 3]), 5, lambda: "unused")
    assert list(flowing) == [1, 2, 3]
    stalled = _with_deadline(stalls(), 0.5, lambda: "no batch finished")
    assert next(stalled) == 1
    start = time.perf_counter()
    with pytest.raises(MobileNetV2Error, match="no batch finished"):
        next(stalled)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("engine", ["default", pytest.param("ray", marks=pytest.mark.integration)])
def test_bad_inputs_are_error_rows_and_the_good_ones_are_classified(engine, mixed, tmp_path):
    out = tmp_path / "rows.csv"
    args = ["classify", f"{mixed}/*", "--model", str(FIXTURE_TFLITE)]  # x.jpg matches too
    workers = ["--workers", "1"] if engine == "ray" else []  # eight images: one worker's work
    run = mobilenet_v2(*args, "--output", str(out), "--engine", engine, *workers)
    assert run.returncode == 1
    assert "4 of 8 images classified, 4 with an error" in run.stderr
    assert "error: 4 of 8 images could not be classified" in run.stderr
    assert "Traceback" not in run.stderr
    rows = {Path(r.path).name: r for r in read_results(out)}
    assert all(rows[name].error is None and rows[name].synsets for name in GOOD_IMAGES)
    assert rows["empty.jpg"].error == f"{mixed / 'empty.jpg'}: empty file"
    assert rows["text.jpg"].error == f"{mixed / 'text.jpg'}: not an image Pillow can read"
    assert rows["cut.jpg"].error.startswith(f"{mixed / 'cut.jpg'}: cannot decode image")
    assert rows["x.jpg"].error == f"{mixed / 'x.jpg'}: is a directory, not an image"


@pytest.mark.integration  # starts Ray
def test_resume_on_ray_classifies_only_what_the_file_lacks(splits, tmp_path, capsys):
    """Half the images classified by the default engine; the Ray engine resumes the rest,
    and the output lists all of them once, in the inputs' order."""
    out = tmp_path / "rows.parquet"
    images = sorted(splits[1].iterdir())
    args = ["--model", str(FIXTURE_TFLITE), "--output", str(out)]
    assert main(["classify", *map(str, images[:100]), *args]) == 0
    run = mobilenet_v2(
        "classify", str(splits[1]), *args, "--resume", "--engine", "ray", "--workers", "1"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "150 of 150 images classified (100 kept from before)" in run.stderr
    assert [r.path for r in read_results(out)] == [str(p) for p in images]


def test_sources_may_be_globs_and_file_urls(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    jpegs = f"{IMAGES}/*.jpg"
    url = (IMAGES / "cat.bmp").as_uri()
    assert main(["classify", jpegs, url, "--model", str(FIXTURE_TFLITE), "--output", str(out)]) == 0
    paths = [r.path for r in read_results(out)]
    assert paths == [str(p) for p in sorted(IMAGES.glob("*.jpg"))] + [url]


def test_a_url_folder_lists_urls_that_read_back(tmp_path, capsys):
    """pyarrow lists decoded paths: a folder with a space must come back percent-encoded,
    and a URL glob's `*` stays within one folder, as a local glob's does."""
    folder = tmp_path / "my photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(IMAGES / "parrot.jpg", folder / "a.jpg")
    shutil.copy(IMAGES / "hot_dog.jpg", folder / "sub" / "b.jpg")
    out = tmp_path / "rows.jsonl"
    args = ["--model", str(FIXTURE_TFLITE), "--output", str(out)]
    assert main(["classify", folder.as_uri() + "/", *args]) == 0
    rows = read_results(out)
    assert [r.path for r in rows] == [(folder / "a.jpg").as_uri(), (folder / "sub/b.jpg").as_uri()]
    assert "%20" in rows[0].path and all(r.error is None for r in rows)
    assert main(["classify", folder.as_uri() + "/*.jpg", *args]) == 0
    assert [r.path for r in read_results(out)] == [(folder / "a.jpg").as_uri()]


@pytest.mark.parametrize(
    "source, message",
    [
        ("foo://bucket/a.jpg", "foo://bucket/a.jpg: cannot read this URL"),
        ("file:///no/such/folder", "file:///no/such/folder: not found"),
        ("/no/such/*.jpg", "/no/such/*.jpg: no files match"),
    ],
)
def test_a_source_that_cannot_be_listed_is_a_one_line_error(source, message, capsys):
    assert main(["classify", source, "--model", str(FIXTURE_TFLITE)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_engine_flags_need_engine_ray(capsys):
    for flag in (["--workers", "2"], ["--ray-address", "localhost:6379"], ["--stall-timeout", "9"]):
        assert main(["classify", str(IMAGES / "cat.bmp"), *flag]) == 2
        assert f"{flag[0]} applies to --engine ray" in capsys.readouterr().err


def test_an_address_nobody_answers_at_fails_in_seconds_leaving_nothing(tmp_path, capsys):
    args = ["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
    args += ["--output", str(tmp_path / "rows.csv")]
    assert main([*args, "--engine", "ray", "--ray-address", "127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no output, no journal


def test_without_ray_the_engine_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    args = ["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
    assert main([*args, "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'mobilenet-v2[ray]'" in err and len(err.strip().splitlines()) == 1


def test_random_weights_are_refused_before_ray_starts(capsys):
    """Every worker would draw its own random model: refused, in one line."""
    assert main(["classify", str(IMAGES / "cat.bmp"), "--weights", "none", "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert "--engine ray needs a weights file" in err and len(err.strip().splitlines()) == 1


def test_a_directory_of_parts_needs_the_ray_engine(tmp_path, capsys):
    args = ["classify", str(IMAGES / "cat.bmp"), "--model", str(FIXTURE_TFLITE)]
    assert main([*args, "--output", f"{tmp_path}/rows/"]) == 2
    err = capsys.readouterr().err
    assert "a directory of part files is written by the Ray engine's workers" in err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
