"""Every clear error of `analog-snu train` / `eval`: exit status 2 and a one-line message."""

import json

import pytest

from analog_snu.cli import main

TINY = ["--layers", "4", "--train-limit", "16", "--epochs", "1", "--no-progress"]


def fails_with(capsys, argv, pattern):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert pytest.importorskip("re").search(pattern, err), err


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (["--task", "cifar"], r"unknown task 'cifar'; valid tasks: \['digits', 'jsb', 'mnist', 'ptb'\]"),
        (["--task", "digits", "--model", "lif"], r"unknown model 'lif'; valid models: \['snu', 'ssnu', 'lstm', 'gru'\]"),
        (["--task", "digits", "--device", "rram", "--training", "hwa"], r"unknown device 'rram'; valid devices: \['digital', 'pcm'"),
        (["--task", "digits", "--device", "pcm"], r"device 'pcm' does not fit training 'digital'"),
        (["--task", "digits", "--optimizer", "rmsprop"], r"unknown optimizer 'rmsprop'"),
        (["--task", "digits", "--grapes", "global"], r"grapes must be one of \['propagating', 'local'\]"),
        (["--task", "digits", "--epochs", "0"], r"epochs must be a positive int, got 0"),
        (["--task", "digits", "--data", "x.npz"], r"task 'digits' uses the 8x8 digits .* no --data"),
        (["--task", "mnist", "--data", "/nonexistent/mnist.pkl.gz"], r"/nonexistent/mnist.pkl.gz"),
        (["--task", "jsb", "--data", "/nonexistent/jsb.json"], r"/nonexistent/jsb.json"),
        (["--task", "ptb", "--data", "/nonexistent/ptb"], r"PTB directory not found: /nonexistent/ptb"),
        ([], r"--task is required"),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, pattern):
    fails_with(capsys, ["train", *TINY, *extra, "--out", tmp_path / "run"], pattern)


def test_malformed_music_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [[[60]]], "valid": "oops"')
    fails_with(capsys, ["train", "--task", "jsb", "--data", bad, *TINY, "--out", tmp_path / "run"], str(bad))


def test_out_is_required(capsys):
    fails_with(capsys, ["train", "--task", "digits", *TINY], r"--out RUN_DIR is required")


def test_finished_run_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    before = (out / "final.json").read_text()
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--out", out], r"already holds a finished run .* --force")
    fails_with(capsys, ["train", "--resume", out, "--no-progress"], r"already holds a finished run")
    assert (out / "final.json").read_text() == before
    assert main(["train", "--task", "digits", *TINY, "--seed", "9", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 9


def test_unfinished_run_needs_resume_or_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    (out / "final.json").unlink()  # as if killed after the last checkpoint
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--out", out], r"holds an unfinished run; pass --resume")


def test_resume_with_another_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    (out / "final.json").unlink()
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--layers", "5", "--out", out, "--resume"], r"different config \(layers: checkpoint \[4\] vs now \[5\]\)")


def test_resume_without_checkpoint(tmp_path, capsys):
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--out", tmp_path, "--resume"], r"cannot resume: .* holds no")
    fails_with(capsys, ["train", "--resume", tmp_path / "nothing", "--no-progress"], r"cannot resume: .*config.json does not exist")


def test_bad_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = digits\n")
    fails_with(capsys, ["train", "--config", bad], r"is not valid TOML")
    bad.write_text('task = "digits"\ncolour = "red"\n')
    fails_with(capsys, ["train", "--config", bad], r"unknown keys \['colour'\]")
    fails_with(capsys, ["train", "--config", tmp_path / "missing.toml"], r"does not exist")


def test_eval_errors(tmp_path, capsys):
    fails_with(capsys, ["eval", tmp_path], r"is not a run directory")
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    fails_with(capsys, ["eval", out, "--drift-times", "3600"], r"needs a PCM-trained run")
    fails_with(capsys, ["eval", out, "--split", "holdout"], r"has splits \['train', 'valid', 'test'\], got 'holdout'")
