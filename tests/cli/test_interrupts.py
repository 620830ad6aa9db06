"""Ctrl-C at any moment of a command ends it with exit code 130 and one line, never a traceback."""

import json
import os
import subprocess
import sys
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
