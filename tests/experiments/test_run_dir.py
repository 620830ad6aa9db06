"""Run directories are owned, locked, and never lose a run (issue: trust in run directories)."""

import json
import subprocess
import sys
import textwrap

import pytest

from analog_snu.cli import main
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments import RunDirectory, build_config, train_run
from analog_snu.experiments.run_dir import LOCK_NAME, MARKER_NAME

TINY = ["--task", "digits", "--layers", "8", "--train-limit", "48", "--epochs", "1", "--quiet"]


def _config(**flags):
    return build_config(flags={"task": "digits", "layers": [8], "train-limit": 48, "epochs": 1, **flags})


def test_force_validates_and_builds_the_new_run_before_removing_the_old(tmp_path, capsys):
    out = tmp_path / "R"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = (out / "checkpoint.safetensors").read_bytes()
    # an invalid combination: refused before anything is removed
    assert main(["train", *TINY, "--device", "pcm_joshi2020", "--training", "digital", "--out", str(out),
                 "--force"]) == 2
    assert "--training digital runs without a PCM device" in capsys.readouterr().err
    assert (out / "checkpoint.safetensors").read_bytes() == before and (out / "final.json").is_file()


def test_a_directory_with_foreign_files_is_never_written_into(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"my": "data"}')
    for force in (False, True):
        with pytest.raises(ConfigError, match=r"not an analog_snu run directory .*refusing to write into it"):
            train_run(_config(), foreign, force=force, progress=False)
    assert json.loads((foreign / "config.json").read_text()) == {"my": "data"}
    # a run directory with an extra foreign file is refused too
    run = tmp_path / "run"
    train_run(_config(), run, progress=False)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files analog_snu did not write \(notes.txt\)"):
        train_run(_config(), run, force=True, progress=False)
    assert (run / "notes.txt").read_text() == "mine" and (run / "final.json").is_file()


def test_force_removes_only_what_analog_snu_wrote(tmp_path):
    run = tmp_path / "run"
    train_run(_config(seed=1), run, progress=False)
    (run / "eval").mkdir()
    (run / "eval" / "old.json").write_text("{}")
    train_run(_config(seed=2), run, force=True, progress=False)
    assert not (run / "eval").exists()
    assert json.loads((run / "config.json").read_text())["config"]["training"]["seed"] == 2
    assert (run / MARKER_NAME).is_file()


_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from analog_snu.experiments import RunDirectory
    with RunDirectory(sys.argv[1], create=True):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_process_is_refused_while_the_first_holds_the_lock(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for force in (False, True):
            with pytest.raises(CheckpointError, match=r"in use by another analog-snu process"):
                train_run(_config(), run, force=force, progress=False)
    finally:
        holder.kill()  # a lock dies with its process (kill -9 included)
        holder.wait()
    train_run(_config(), run, progress=False)  # the stale lock file does not block
    assert (run / LOCK_NAME).exists() and (run / "final.json").is_file()


def test_unfinished_and_finished_runs_need_resume_or_force(tmp_path):
    run = tmp_path / "run"
    train_run(_config(), run, progress=False)
    with pytest.raises(CheckpointError, match=r"already holds a finished run"):
        train_run(_config(), run, progress=False)
    with pytest.raises(ConfigError, match=r"--resume and --force exclude each other"):
        train_run(_config(), run, progress=False, resume=True, force=True)
    with pytest.raises(CheckpointError, match=r"cannot resume: .* holds no checkpoint.safetensors"):
        train_run(_config(), tmp_path / "new", progress=False, resume=True)


def test_opening_something_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist"):
        with RunDirectory(tmp_path / "missing"):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"exists and is not a directory"):
        with RunDirectory(tmp_path / "file", create=True):
            pass
