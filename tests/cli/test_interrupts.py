"""Ctrl-C at any moment of a command ends it with exit code 130 and one line, never a traceback."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the console script, with a Ctrl-C arriving while Python shuts down (after main() returned)
SCRIPT = """
import atexit, os, signal, sys, time
from analog_snu.cli import main

def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # the signal is handled here, inside an atexit callback

atexit.register(ctrl_c)
sys.argv = ["analog-snu", *sys.argv[1:]]
sys.exit(main())
"""


def _run(tmp_path, *argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", SCRIPT, *map(str, argv)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


@pytest.mark.parametrize("outcome", ["success", "error"])
def test_ctrl_c_while_exiting_is_exit_130_without_a_traceback(tmp_path, outcome):
    run = tmp_path / "run"
    run.mkdir()
    if outcome == "success":
        (run / "final.json").write_text(json.dumps({"test_accuracy": 0.5}))
    done = _run(tmp_path, "report", run, "--quiet")
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "analog-snu: interrupted", done.stderr
    if outcome == "success":
        assert (run / "report" / "index.html").is_file()  # the work itself was done


def test_sigterm_while_exiting_is_exit_143_without_a_traceback(tmp_path):
    script = SCRIPT.replace("signal.SIGINT", "signal.SIGTERM")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.json").write_text(json.dumps({"test_accuracy": 0.5}))
    done = subprocess.run([sys.executable, "-c", script, "report", str(run), "--quiet"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 143, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "analog-snu: terminated (SIGTERM)", done.stderr


def test_sigterm_during_training_stops_like_ctrl_c_and_the_run_resumes(tmp_path):
    """What a scheduler (SLURM, Ray, ``kill``) sends: one line, exit 143, the last epoch's checkpoint
    kept, and ``--resume`` finishes the run from it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    cli = [sys.executable, "-c", "import sys; from analog_snu.cli import main; sys.exit(main())"]
    run = tmp_path / "run"
    train = subprocess.Popen([*cli, "train", "--task", "digits", "--epochs", "500", "--out", str(run),
                              "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path, env=env)
    metrics = run / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):  # header + epoch 1
        assert train.poll() is None and time.monotonic() < deadline, train.stderr.read() if train.stderr else ""
        time.sleep(0.05)
    train.send_signal(signal.SIGTERM)
    _, stderr = train.communicate(timeout=60)
    assert train.returncode == 143, (train.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "analog-snu train: terminated (SIGTERM) (a run continues with --resume)"
    epochs_done = len(metrics.read_text().splitlines()) - 1
    assert 1 <= epochs_done < 500 and (run / "checkpoint.safetensors").is_file()
    resumed = subprocess.run([*cli, "train", "--resume", str(run), "--epochs", str(epochs_done + 1), "--quiet"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert len(metrics.read_text().splitlines()) - 1 == epochs_done + 1
