"""Every clear error of the command line: one line, no traceback, exit 2 for usage and 1 for runtime problems."""

import re

import pytest

from analog_snu.cli import main

TINY = ["--layers", "4", "--train-limit", "16", "--epochs", "1", "--quiet"]


def fails_with(capsys, argv, pattern, code=2):
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err


@pytest.mark.parametrize(
    "extra, pattern, code",
    [
        (["--task", "digits", "--model", "lif"], r"unknown cell 'lif'; valid cells: \['snu', 'ssnu'", 2),
        (["--task", "digits", "--device", "rram"], r"device 'rram' is neither a preset nor a device file", 2),
        (["--task", "digits", "--device", "/nonexistent/dev.toml"], r"/nonexistent/dev.toml", 2),
        (["--task", "digits", "--training", "hwa"], r"--training hwa needs a PCM device", 2),
        (["--task", "digits", "--epochs", "0"], r"training.epochs: Input should be greater than 0", 2),
        (["--task", "digits", "--decay", "1.5"], r"model.decay: Input should be less than or equal to 1", 2),
        (["--task", "digits", "--accelerator", "cuda"], r"--accelerator cuda: no CUDA GPU is available", 2),
        (["--task", "digits", "--data", "x.npz"], r"task 'digits' uses the 8x8 digits .* no --data", 1),
        (["--task", "jsb", "--data", "/nonexistent/jsb.json"], r"/nonexistent/jsb.json", 1),
        (["--task", "ptb", "--data", "/nonexistent/ptb"], r"PTB directory not found: /nonexistent/ptb", 1),
        ([], r"no task given \(--task\)", 2),
        (["--task", "digits", "--threads", "0"], r"run config: threads: must be 'auto' or an int from 1 to 4096, got 0$", 2),
        (["--task", "digits", "--threads", "-3"], r"threads: must be 'auto' or an int from 1 to 4096, got -3$", 2),
        (["--task", "digits", "--threads", "many"], r"threads: must be 'auto' or an int from 1 to 4096, got 'many'$", 2),
        (["--task", "digits", "--threads", "2.5"], r"threads: must be 'auto' or an int from 1 to 4096, got '2.5'$", 2),
        (["--task", "digits", "--threads", "9999"], r"threads: must be 'auto' or an int from 1 to 4096, got 9999$", 2),
    ],
)
def test_bad_arguments(tmp_path, capsys, extra, pattern, code):
    fails_with(capsys, ["train", *TINY, *extra, "--out", tmp_path / "run"], pattern, code)
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--task", "cifar10"], "argument --task: invalid choice: 'cifar10' (choose from 'digits', 'mnist', "
                                     "'jsb', 'ptb')"),
    (["train", "--task", "digits", "--training", "pulse"], "argument --training: invalid choice: 'pulse'"),
    (["train", "--task", "digits", "--layers", "128,128"], "argument --layers: invalid int value: '128,128'"),
    (["train", "--task", "digits", "--layers", "16.7"], "argument --layers: invalid int value: '16.7'"),
    (["eval"], "the following arguments are required: RUN_DIR"),
])
def test_argparse_errors_are_one_line_with_a_pointer_to_help(capsys, argv, message):
    """Not 30 lines of usage before the error: the error and where to read more."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"analog-snu {argv[0]}: error: {message}") and err.endswith(f"; see analog-snu {argv[0]} --help\n")


def test_the_same_mistake_exits_alike_in_every_command(tmp_path, capsys):
    """A RUN that is not a run directory is a usage error (2) for eval, drift-study, export-maps and report."""
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "notes.txt").write_text("mine")
    for command in ("eval", "drift-study", "export-maps", "report"):
        for run in (tmp_path / "missing", tmp_path / "notarun"):
            assert main([command, str(run)]) == 2, command
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"analog-snu {command}: error: "), err
            assert "--out" not in err, err


def test_malformed_music_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [[[60]]], "valid": "oops"')
    fails_with(capsys, ["train", "--task", "jsb", "--data", bad, *TINY, "--out", tmp_path / "run"], re.escape(str(bad)), 1)


def test_out_is_required(capsys):
    fails_with(capsys, ["train", "--task", "digits", *TINY], r"--out RUN_DIR is required")


def test_finished_run_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    before = (out / "final.json").read_text()
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--out", out], r"already holds a finished run .* --force", 1)
    fails_with(capsys, ["train", "--resume", out, "--quiet"], r"already holds a finished run", 1)
    assert (out / "final.json").read_text() == before


def test_resume_without_checkpoint(tmp_path, capsys):
    fails_with(capsys, ["train", "--resume", tmp_path / "nothing", "--quiet"], r"no checkpoint at .*nothing", 1)


def test_bad_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = digits\n")
    fails_with(capsys, ["train", "--config", bad], r"is not valid TOML")
    bad.write_text('task = "digits"\ncolour = "red"\n')
    fails_with(capsys, ["train", "--config", bad, "--out", tmp_path / "r"], r"unknown key 'colour'")
    bad.write_text('task = "digits"\nrecurrent = "false"\n')
    fails_with(capsys, ["train", "--config", bad, "--out", tmp_path / "r"], r"model.recurrent: Input should be a valid boolean")
    fails_with(capsys, ["train", "--config", tmp_path / "missing.toml"], r"does not exist")
    fails_with(capsys, ["train", "--config", tmp_path], r"is a directory, not a TOML file")


def test_eval_errors(tmp_path, capsys):
    fails_with(capsys, ["eval", tmp_path / "none"], r"does not exist; name a run directory of `analog-snu train`", 2)
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "notes.txt").write_text("mine")
    fails_with(capsys, ["eval", tmp_path / "notarun"], r"is not a run directory of `analog-snu train` \(no "
               r"\.analog_snu-run marker\); name a folder that `analog-snu train` wrote$", 2)
    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(out)]) == 0
    fails_with(capsys, ["eval", out, "--split", "holdout"], r"--split must be one of \['train', 'valid', 'test'\]")
    fails_with(capsys, ["eval", out, "--device", "pcm_joshi2020", "--set", "device.drift.t0=-1"],
               r"drift.t0: Input should be greater than 0")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        main(["--debug", "eval", str(tmp_path / "none")])


BIG = 2**63  # past the signed 64 bits torch takes; 2**64 past the unsigned ones


@pytest.mark.parametrize("argv, pattern", [
    (["train", "--task", "digits", *TINY, "--seed", BIG], r"training.seed: Input should be less than or equal to 4294967295"),
    (["train", "--task", "digits", *TINY, "--set", f"training.seed={2**64}"], r"training.seed: Input should be less"),
    (["train", "--task", "digits", *TINY, "--seed", 2**32], r"training.seed: Input should be less than or equal"),
    (["demo", "--epochs", "1", "--seed", BIG], r"training.seed: Input should be less than or equal to 4294967295"),
    (["drift-study", "--demo", "--train-seed", BIG], r"training.seed: Input should be less"),
    (["drift-study", "--demo", "--seeds", "0", BIG], r"each of seeds must be a non-negative int, got 9223372036854775808"),
])
def test_a_seed_beyond_32_bits_is_one_line(tmp_path, capsys, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    fails_with(capsys, [*argv, *(["--out", tmp_path / "run"] if argv[0] == "train" else [])], pattern)
    assert not (tmp_path / "analog_snu_demo_run").exists()  # refused before the demo run is trained


def test_a_seed_beyond_32_bits_for_a_trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "digits", *TINY, "--out", str(run)]) == 0
    for argv in (["eval", run, "--seed", 2**64], ["export-maps", run, "--device", "pcm_joshi2020", "--seed", BIG],
                 ["drift-study", run, "--device", "pcm_joshi2020", "--seeds", BIG]):
        fails_with(capsys, argv, r"must be a non-negative int, got \d+ \(seeds are ints in \[0, 2\*\*32 - 1\]\)")
    spec = tmp_path / "spec.toml"
    spec.write_text(f'seeds = [{BIG}]\n[base]\ntask = "digits"\n')
    fails_with(capsys, ["sweep", spec, "--out", tmp_path / "s", "--in-process"], r"seeds\[0\]: Input should be less")


@pytest.mark.parametrize("where", ["--set", "[set]", "sweep [grid]"])
def test_a_key_with_thousands_of_levels_is_one_line(tmp_path, capsys, where):
    deep = ".".join(["a"] * 5000)
    if where == "--set":
        argv = ["train", "--task", "digits", *TINY, "--set", f"{deep}=1", "--out", tmp_path / "r"]
    elif where == "[set]":
        (tmp_path / "c.toml").write_text(f'task = "digits"\n[set]\n{deep} = 1\n')
        argv = ["train", "--config", tmp_path / "c.toml", *TINY, "--out", tmp_path / "r"]
    else:
        (tmp_path / "s.toml").write_text(f'seeds = [0]\n[grid]\n{deep} = [1, 2]\n')
        argv = ["sweep", tmp_path / "s.toml", "--out", tmp_path / "s", "--in-process"]
    fails_with(capsys, argv, r"key 'a\.a\.a[a.]*' has \d+ dotted levels; config keys have at most 16")


def test_a_deeply_nested_set_value_is_one_line(tmp_path, capsys):
    fails_with(capsys, ["train", "--task", "digits", *TINY, "--set", "model.layers=" + "[" * 5000,
                        "--out", tmp_path / "r"], r"--set model.layers=\.\.\.: the value is nested too deeply")
