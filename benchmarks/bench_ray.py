"""The Ray engine against the default engine on the same cores (issue 26).

    python benchmarks/bench_ray.py [--repeat 3] [--out DIR] [--skip-cluster]

Images: the 500 shared ImageNet JPEGs linked four times (2000) and eight times (4000) in a
temporary folder. Model: the hosted uint8 MobileNetV2. Every run is a whole `mobilenet-v2
classify --output rows.parquet` process, timed from its start to its end, on both sets:

- steady state = 2000 / (t(4000) - t(2000)): what every image beyond the first 2000 costs,
  with the process's, Ray's and the workers' start-up cancelled out (a difference from a
  smaller set would not cancel it: a worker that starts late takes a larger share of a short
  job, which overstates the steady state);
- start-up = t(2000) - 2000 / steady: what the run costs beyond its images.

Runs (each the median of --repeat pairs):

- default engine on both cores, and pinned to core 0 (`taskset -c 0`);
- `--engine ray`, a local Ray that starts and stops itself (both cores);
- `--engine ray --ray-address` on `ray start` clusters on this machine, each node a raylet
  pinned to its own core with `taskset` and given `--num-cpus 1`: one node (core 0), two
  nodes (cores 0 and 1). The command itself runs pinned to the head's core, so the cores the
  cluster is given are all it gets. Ray 2.59+ authenticates `ray start` clusters by token:
  the nodes start with RAY_AUTH_MODE=token and the token (`ray get-auth-token --generate`),
  which the command is given too, as README's cluster section says.

Ratios are of steady states from the same run: Ray / default on the same cores, and two
nodes / one node.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"
SAMPLE = SHARED / "data" / "imagenet" / "sample"
BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "mobilenet_v2.cli"]
LOOPBACK = "127.0.0.1"


def linked_copies(folder: Path, copies: int) -> Path:
    """The sample images `copies` times as symlinks (distinct names) in `folder`."""
    folder.mkdir()
    for copy in range(copies):
        for image in sorted(SAMPLE.glob("*.JPEG")):
            (folder / f"{copy}_{image.name}").symlink_to(image)
    return folder


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of a whole process; exits with its stderr if it fails."""
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    return seconds


def measure(
    prefix: list[str], flags: list[str], sets: dict[int, Path], out: Path, repeat: int, env=None
) -> dict[str, float]:
    """Steady-state images/s and start-up seconds of `classify` (median of `repeat`)."""
    pairs = []
    for _ in range(repeat):
        t = {}
        for count, folder in sets.items():
            command = [*prefix, *CLI, "classify", str(folder), "--model", str(MODEL)]
            t[count] = timed([*command, "--output", str(out), *flags], env)
            out.unlink(missing_ok=True)
        small, large = sorted(sets)
        steady = (large - small) / (t[large] - t[small])
        pairs.append((steady, t[small] - small / steady, large / t[large]))
    steady, startup, whole = (statistics.median(p[i] for p in pairs) for i in range(3))
    return {"steady": steady, "startup": startup, "whole_4000": whole}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class PinnedCluster:
    """`ray start` nodes of one CPU each, node i pinned to core i, with token authentication
    (Ray 2.59+). Addressed as 127.0.0.1, which Ray turns into this machine's address, where
    its nodes listen (a multi-node `ray start` cluster cannot be kept to loopback)."""

    def __init__(self, nodes: int, work: Path) -> None:
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token"}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes = nodes
        common = ["--num-cpus", "1", "--disable-usage-stats"]
        token = subprocess.run(  # made once and kept in ~/.ray/auth_token
            [str(BIN / "ray"), "get-auth-token", "--generate"],
            env=self.env,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.env["RAY_AUTH_TOKEN"] = token.splitlines()[-1] if token else ""
        self._ray(
            0, "start", "--head", "--port", str(self.port), "--include-dashboard=false", *common
        )
        for core in range(1, nodes):
            self._ray(core, "start", "--address", self.address, *common)

    def _ray(self, core: int, *args: str) -> None:
        command = ["taskset", "-c", str(core), str(BIN / "ray"), *args]
        run = subprocess.run(command, env=self.env, capture_output=True, text=True)
        if run.returncode != 0:
            self.stop()
            sys.exit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")

    def stop(self) -> None:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=self.env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write results.json here")
    parser.add_argument("--skip-cluster", action="store_true", help="no `ray start` clusters")
    args = parser.parse_args()
    from mobilenet_v2.base.machine import describe

    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores: the runs compare one core with two")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        work = Path(folder)
        sets = {2000: linked_copies(work / "2000", 4), 4000: linked_copies(work / "4000", 8)}
        out = work / "rows.parquet"
        core0 = ["taskset", "-c", "0"]
        runs = {
            "default engine, 2 cores": ([], []),
            "default engine, 1 core (taskset -c 0)": (core0, []),
            "--engine ray, local Ray (2 CPUs)": ([], ["--engine", "ray"]),
        }
        for name, (prefix, flags) in runs.items():
            results[name] = measure(prefix, flags, sets, out, args.repeat)
            print(name, json.dumps(results[name]), flush=True)
        if not args.skip_cluster:
            for nodes in (1, 2):
                cluster = PinnedCluster(nodes, work)
                try:
                    name = f"--engine ray, {nodes} pinned node{'s' if nodes > 1 else ''} of 1 CPU"
                    flags = ["--engine", "ray", "--ray-address", cluster.address]
                    results[name] = measure(core0, flags, sets, out, args.repeat, cluster.env)
                    print(name, json.dumps(results[name]), flush=True)
                finally:
                    cluster.stop()
    steady = {name: r["steady"] for name, r in results.items()}
    ratios = {
        "local Ray / default, 2 cores": steady["--engine ray, local Ray (2 CPUs)"]
        / steady["default engine, 2 cores"],
    }
    if not args.skip_cluster:
        one, two = (
            steady[f"--engine ray, {n}"]
            for n in ("1 pinned node of 1 CPU", "2 pinned nodes of 1 CPU")
        )
        ratios["1 pinned node / default, 1 core"] = (
            one / steady["default engine, 1 core (taskset -c 0)"]
        )
        ratios["2 pinned nodes / default, 2 cores"] = two / steady["default engine, 2 cores"]
        ratios["2 pinned nodes / 1 pinned node"] = two / one
    print(f"\nMeasured on: {describe()}\n")
    print("| run | steady images/s | start-up s | whole process, 4000 images, images/s |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['steady']:.1f} | {r['startup']:.1f} | {r['whole_4000']:.1f} |")
    print()
    for name, ratio in ratios.items():
        print(f"- {name}: {ratio:.2f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"machine": describe(), "runs": results, "ratios": ratios}
        (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
