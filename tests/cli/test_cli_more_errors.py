"""Errors of the run machinery and tasks that the flag-level tests do not reach."""

import json

import pytest
import torch

import analog_snu.data
import analog_snu.training
from analog_snu.cli import main
from analog_snu.errors import ConfigError, DataError
from analog_snu.tasks import TaskOptions, load_task
from analog_snu.tasks.language import batchify
from analog_snu.training.runs import RunConfig, train_run


def test_run_config_value_errors():
    with pytest.raises(ConfigError, match="unknown training 'manual'"):
        RunConfig(task="digits", training="manual")
    with pytest.raises(ConfigError, match="lr must be positive, got -1"):
        RunConfig(task="digits", lr=-1)
    with pytest.raises(ConfigError, match="train_limit must be an int >= 0, got -3"):
        RunConfig(task="digits", train_limit=-3)
    with pytest.raises(ConfigError, match=r"unknown run config keys \['colour'\]"):
        RunConfig.from_dict({"task": "digits", "colour": "red"})
    with pytest.raises(ConfigError, match="unknown task 'cifar'"):
        load_task("cifar", TaskOptions())


def test_out_must_be_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        train_run(RunConfig(task="digits"), target, progress=False)


def test_grapes_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delattr(analog_snu.training, "GRAPES")
    with pytest.raises(ConfigError, match="--grapes needs analog_snu.training.GRAPES"):
        train_run(RunConfig(task="digits", grapes="local", train_limit=8, layers=(4,)), tmp_path, progress=False)


def test_missing_loader_gives_a_clear_error(monkeypatch):
    monkeypatch.delattr(analog_snu.data, "load_ptb")
    with pytest.raises(DataError, match="analog_snu.data.load_ptb is not available"):
        load_task("ptb", TaskOptions())


def test_music_rolls_must_have_88_keys(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(analog_snu.data, "load_jsb", lambda _path: {s: [np.zeros((3, 12))] for s in ("train", "valid", "test")})
    with pytest.raises(DataError, match=r"must be a non-empty list of \(T, 88\) piano rolls"):
        load_task("jsb", TaskOptions(data="x.json"))


def test_text_too_short_for_the_batch():
    with pytest.raises(DataError, match="a split of 5 tokens is too short for 4 parallel streams"):
        batchify(torch.arange(5), 4)


def test_negative_drift_time(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--task", "digits", "--layers", "4", "--train-limit", "16", "--epochs", "1", "--no-progress"]
    assert main(["train", *args, "--device", "pcm", "--training", "hwa", "--out", str(out)]) == 0
    assert main(["eval", str(out), "--drift-times", "-5"]) == 2
    assert "drift times must be >= 0 seconds, got -5" in capsys.readouterr().err
    assert not (out / "eval.json").exists()
    assert json.loads((out / "final.json").read_text())["metric"] == "accuracy"
