"""Ctrl-C during `mobilenet-v2 convert` always wins: exit status 130, no model and no
temporary file written, even where a library on the way swallows the KeyboardInterrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE

pytestmark = [pytest.mark.shared, pytest.mark.integration]  # converts a model (96 px)

# Runs `mobilenet-v2 convert` with one hook: when PHASE starts it writes READY and waits,
# so that the test's SIGINT lands in that phase. With SWALLOW the hook swallows the
# KeyboardInterrupt and carries on, as a library's thread or callback may.
DRIVER = r"""
import os, sys, time
from pathlib import Path
phase, ready, swallow = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "swallow"

def hold(seconds):
    ready.write_text("ready")
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        if not swallow:
            raise

if phase == "calibration":
    import mobilenet_v2.base.calibration as calibration
    real_load = calibration.load_image
    def load_image(path, **prep):
        if Path(path).name == sorted(os.listdir(sys.argv[4]))[0]:
            hold(3)  # a decoding thread: the interrupt reaches the main thread, not it
        return real_load(path, **prep)
    calibration.load_image = load_image
else:
    import mobilenet_v2.tf.convert as convert
    real_convert = convert.convert
    def converting(*args, **kwargs):
        hold(60)
        return real_convert(*args, **kwargs)
    convert.convert = converting

from mobilenet_v2.cli import main
sys.exit(main(["convert", "--weights", "none", "--size", "96", "--calibration-dir",
               sys.argv[4], "--calibration-size", "40", "--output", sys.argv[5]]))
"""


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("calibration")
    for name in sorted(os.listdir(SAMPLE))[:40]:
        (directory / name).symlink_to(SAMPLE.resolve() / name)
    return directory


def interrupted_convert(tmp_path: Path, calibration_dir: Path, phase: str, swallow: bool):
    out = tmp_path / "out"
    out.mkdir()
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            phase,
            str(ready),
            "swallow" if swallow else "raise",
            str(calibration_dir),
            str(out / "model.tflite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr, sorted(os.listdir(out))


@pytest.mark.parametrize(
    ("phase", "swallow"),
    [
        ("conversion", True),
        pytest.param("calibration", False, marks=pytest.mark.slow),
        pytest.param("conversion", False, marks=pytest.mark.slow),
    ],
)
def test_an_interrupt_during_convert_exits_130_and_writes_nothing(
    tmp_path, calibration_dir, phase, swallow
):
    status, stdout, stderr, written = interrupted_convert(tmp_path, calibration_dir, phase, swallow)
    assert (status, written) == (130, []), (stdout, stderr)
    assert "wrote" not in stdout and "Traceback" not in stderr
