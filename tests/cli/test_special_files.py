"""Where a file is expected, only a regular file is read: a FIFO is refused at once, never waited on.

Every read goes through :func:`analog_snu.files.read_regular_file`; each case here would block
forever on a plain ``open()`` (no writer ever opens the FIFO), so an alarm turns a hang into a failure.
"""

import os
import shutil

import pytest

from analog_snu.cli import main

TOY = ["--task", "digits", "--layers", "4", "--train-limit", "16", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("special") / "run"
    assert main(["train", *TOY, "--out", str(run)]) == 0
    return run


def refused(capsys, argv, pattern, code):
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert pattern in err, err


@pytest.mark.parametrize("replaced, command, code", [
    ("config.json", ["eval"], 1),
    ("config.json", ["train", "--resume"], 1),
    ("final.json", ["eval"], 1),
    ("checkpoint.safetensors", ["eval"], 1),
    ("checkpoint.safetensors", ["train", "--resume"], 1),
])
def test_a_fifo_in_place_of_a_run_file_is_refused(trained, tmp_path, capsys, no_hang, replaced, command, code):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / replaced).unlink()
    os.mkfifo(run / replaced)
    argv = ["train", "--resume", run, "--epochs", "2", "--quiet"] if command[0] == "train" else [*command, run]
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{replaced} is a FIFO, not a regular file" in err or "no checkpoint at" in err, err


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_fifo_as_device_file_is_refused(trained, tmp_path, capsys, no_hang, suffix):
    fifo = tmp_path / f"device{suffix}"
    os.mkfifo(fifo)
    refused(capsys, ["eval", trained, "--device", fifo], f"device{suffix} is a FIFO, not a regular file", 2)
    refused(capsys, ["train", *TOY, "--device", fifo, "--out", tmp_path / "new"],
            f"device{suffix} is a FIFO, not a regular file", 2)


def test_a_fifo_as_config_or_spec_or_data_is_refused(tmp_path, capsys, no_hang):
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)
    refused(capsys, ["train", "--config", fifo, "--out", tmp_path / "r"], "run.toml is a FIFO, not a regular file", 2)
    refused(capsys, ["sweep", fifo, "--out", tmp_path / "s", "--in-process"], "run.toml is a FIFO", 2)
    data = tmp_path / "jsb.json"
    os.mkfifo(data)
    refused(capsys, ["train", "--task", "jsb", "--data", data, "--out", tmp_path / "j", "--quiet"],
            "jsb.json is a FIFO, not a regular file", 1)


def test_a_fifo_among_the_results_is_skipped_by_report(trained, tmp_path, capsys, no_hang):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "metrics.csv").unlink()
    os.mkfifo(run / "metrics.csv")
    os.mkfifo(run / "eval" / "fifo.json") if (run / "eval").is_dir() else None
    assert main(["report", str(run), "--quiet"]) == 0
    assert "metrics.csv: could not be read" in (run / "report" / "index.html").read_text()
