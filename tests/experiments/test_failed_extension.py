"""A failed save during `train --resume` never costs the run: its files stay valid and agree.

Each fault is made where the real one strikes (``os.replace`` of a file that cannot be replaced,
``os.unlink`` of a file that cannot be removed, a file-size limit that stops a write as a full
disk does); afterwards `eval` and `--resume` must work, and the extension must succeed once the
fault is gone.
"""

import errno
import json
import os
import resource
import signal

import pytest

from analog_snu.cli import main
from analog_snu.errors import AnalogSNUError
from analog_snu.experiments import build_config, evaluate_run, train_run

RUN_FILES = ("config.json", "checkpoint.safetensors", "checkpoint_best.safetensors", "metrics.csv", "metrics.json",
             "final.json")


def tiny(**flags):
    return build_config(flags={"task": "digits", "layers": [4], "train-limit": 32, "epochs": 1, **flags})


def _files(run):
    return {name: (run / name).read_bytes() for name in RUN_FILES if (run / name).exists()}


def _fail(monkeypatch, function, name, code):
    real = getattr(os, function)

    def failing(*args, **kwargs):
        target = args[1] if function == "replace" else args[0]
        if os.path.basename(str(target)) == name:
            raise OSError(code, os.strerror(code), str(target))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, function, failing)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("ext") / "run"
    train_run(tiny(), run, progress=False)
    return run


@pytest.fixture
def run(finished, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


FAULTS = {
    # chattr +i checkpoint.safetensors: neither replaced nor linked
    "immutable checkpoint": [("replace", "checkpoint.safetensors", errno.EPERM),
                             ("link", "checkpoint.safetensors", errno.EPERM)],
    "no permission for the record": [("replace", "config.json", errno.EACCES)],
    "disk full on the metrics": [("replace", "metrics.csv", errno.ENOSPC)],
    "final.json cannot be removed": [("unlink", "final.json", errno.EPERM)],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_extension_leaves_the_finished_run_valid(run, monkeypatch, capsys, fault):
    before = _files(run)
    for function, name, code in FAULTS[fault]:
        _fail(monkeypatch, function, name, code)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no file was changed" in err, err
    monkeypatch.undo()
    assert _files(run) == before  # final.json, config.json, checkpoint: byte for byte
    assert evaluate_run(run)["epoch"] == 1
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert json.loads((run / "final.json").read_text())["epochs"] == 3
    assert json.loads((run / "config.json").read_text())["config"]["training"]["epochs"] == 3
    assert evaluate_run(run)["epoch"] == 3


def test_a_full_disk_during_an_extension_keeps_the_run(run):
    """A real write failure: the file-size limit stops the checkpoint (12 KB) but not the JSON files."""
    before = _files(run)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        with pytest.raises(AnalogSNUError, match=r"checkpoint.safetensors: File too large"):
            train_run(tiny(epochs=2), run, resume=True, progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert _files(run) == before
    assert evaluate_run(run)["epoch"] == 1
    assert train_run(tiny(epochs=2), run, resume=True, progress=False).final["epochs"] == 2


def test_a_failed_resume_of_an_unfinished_run_with_more_epochs_can_be_resumed(run, monkeypatch, capsys):
    (run / "final.json").unlink()  # as a run killed after its last checkpoint
    before = _files(run)
    _fail(monkeypatch, "replace", "checkpoint.safetensors", errno.ENOSPC)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--lr", "0.001", "--quiet"]) == 1
    monkeypatch.undo()
    assert _files(run) == before  # config.json still says 1 epoch and the old lr, as the checkpoint does
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "final.json").read_text())["epochs"] == 2


_KILLED_TRAINING = """
import os, signal, sys
real, calls = os.replace, []

def replace(src, dst, *args, **kwargs):
    if not os.path.basename(str(dst)).startswith(".analog_snu-tmp-"):
        calls.append(dst)
        if len(calls) == 2:  # the checkpoint is in place, config.json not yet
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)

os.replace = replace
from analog_snu.cli import main
sys.exit(main(["train", "--resume", sys.argv[1], "--epochs", "2", "--quiet"]))
"""


def test_a_kill_between_the_renames_of_an_epoch_is_completed_when_the_run_is_opened(run):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _KILLED_TRAINING, str(run)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == -9, done.stderr
    assert evaluate_run(run)["epoch"] == 2  # opening the run finished the epoch's files: they agree
    assert json.loads((run / "config.json").read_text())["config"]["training"]["epochs"] == 2
    assert not (run / "final.json").exists()  # removed with the epoch's files; the run is unfinished
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "final.json").read_text())["epochs"] == 2


def _permissions_bind_us() -> bool:
    """False for root (or CAP_DAC_OVERRIDE): it writes into read-only directories anyway."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            open(os.path.join(folder, "probe"), "w").close()
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o755)
    return False


@pytest.mark.skipif(not _permissions_bind_us(), reason="this user writes into read-only directories (root)")
def test_a_read_only_run_directory_keeps_the_run(run, capsys):
    before = _files(run)
    run.chmod(0o555)
    try:
        code = main(["train", "--resume", str(run), "--epochs", "3", "--quiet"])
    finally:
        run.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Permission denied" in err, err
    assert _files(run) == before
    assert evaluate_run(run)["epoch"] == 1
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
