"""End-to-end tests of `analog-snu train` / `analog-snu eval` on tiny runs."""

import csv
import json
import math

import pytest
import torch

from analog_snu.checkpoint import load_run, model_tensors
from analog_snu.cli import main
from analog_snu.training.runs import RunConfig, train_run

TINY = ["--task", "digits", "--layers", "8", "--train-limit", "64", "--epochs", "2", "--no-progress"]


def run_cli(*argv):
    return main([str(a) for a in argv])


def test_train_then_eval_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--out", out) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "checkpoint.safetensors", "metrics.csv",
                                               "metrics.json", "final.json"}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert json.loads((out / "metrics.json").read_text())[1]["epoch"] == 2
    final = json.loads((out / "final.json").read_text())
    assert 0.0 <= final["test_accuracy"] <= 1.0
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["layers"] == [8] and record["spec"]["input_size"] == 64
    assert "accuracy" in capsys.readouterr().out

    # eval re-tests the saved weights on the same (seeded) spike trains: identical accuracy
    assert run_cli("eval", out) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    assert evaluated["as_trained"] == final["test_accuracy"]
    assert evaluated["epoch"] == 2
    model, spec = load_run(out)
    assert spec.hidden == (8,) and not model.training


def _stop_after(epoch):
    class Killed(Exception):
        pass

    def hook(done, _row):
        if done == epoch:
            raise Killed(f"killed after epoch {done}")

    return Killed, hook


def test_resume_reaches_the_same_weights_bit_for_bit(tmp_path):
    config = RunConfig(task="digits", layers=(8,), train_limit=64, epochs=3, seed=5)
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    killed, hook = _stop_after(2)
    with pytest.raises(killed):
        train_run(config, tmp_path / "b", progress=False, on_epoch_end=hook)
    assert not (tmp_path / "b" / "final.json").exists()
    assert run_cli("train", "--resume", tmp_path / "b", "--no-progress") == 0
    resumed, _ = load_run(tmp_path / "b")
    expected, got = model_tensors(uninterrupted.model), model_tensors(resumed)
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [(r["epoch"], r["train_loss"], r["valid_accuracy"]) for r in a] == \
           [(r["epoch"], r["train_loss"], r["valid_accuracy"]) for r in b]
    assert json.loads((tmp_path / "b" / "final.json").read_text())["test_accuracy"] == \
           uninterrupted.final["test_accuracy"]


def test_different_seeds_give_different_weights(tmp_path):
    # guards the resume test: equality must come from the checkpoint, not from a constant model
    a = train_run(RunConfig(task="digits", layers=(8,), train_limit=64, seed=1), tmp_path / "a", progress=False)
    b = train_run(RunConfig(task="digits", layers=(8,), train_limit=64, seed=2), tmp_path / "b", progress=False)
    assert not torch.equal(model_tensors(a.model)["model/readout.weight"], model_tensors(b.model)["model/readout.weight"])


def test_toml_config_stands_in_for_flags(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('task = "digits"\nmodel = "ssnu"\nlayers = [6]\ntrain-limit = 32\nepochs = 1\n'
                      f'out = "{tmp_path / "run"}"\n')
    assert run_cli("train", "--config", config, "--seed", 3, "--no-progress") == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (stored["model"], stored["layers"], stored["seed"], stored["train_limit"]) == ("ssnu", [6], 3, 32)


def test_hwa_pcm_run_and_drift_evaluation(tmp_path):
    out = tmp_path / "pcm"
    assert run_cli("train", *TINY[:-3], "--epochs", 1, "--device", "pcm", "--training", "hwa", "--out", out,
                   "--no-progress") == 0
    assert run_cli("eval", out, "--drift-times", 3600, 31536000) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    assert set(evaluated["drift"]) == {"3600", "3.1536e+07"}
    assert all(0.0 <= v <= 1.0 for v in evaluated["drift"].values())


def test_grapes_flag_trains(tmp_path):
    out = tmp_path / "grapes"
    assert run_cli("train", *TINY, "--grapes", "local", "--out", out) == 0
    assert json.loads((out / "config.json").read_text())["config"]["grapes"] == "local"


def test_music_task_end_to_end_and_uniform_model_nll(tmp_path):
    from analog_snu.tasks import TaskOptions, load_task

    song = [[60, 64, 67], [62], [], [60, 65]]
    data = {"train": [song, song[:3]], "valid": [song], "test": [song[1:]]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "music"
    assert run_cli("train", "--task", "jsb", "--data", path, "--layers", 6, "--epochs", 1, "--out", out,
                   "--no-progress") == 0
    final = json.loads((out / "final.json").read_text())
    assert final["metric"] == "nll" and 0 < final["test_nll"] < 200

    task = load_task("jsb", TaskOptions(data=str(path)))

    class Uniform(torch.nn.Module):  # p = 1/2 for every key: NLL = 88 ln 2 per frame
        def forward(self, x):
            return torch.zeros_like(x)

    assert task.evaluate(Uniform(), "test")["nll"] == pytest.approx(88 * math.log(2))


def test_language_task_uniform_model_has_vocabulary_perplexity(tmp_path):
    from analog_snu.data import write_ptb
    from analog_snu.tasks import TaskOptions, load_task

    lines = ["the cat sat on the mat", "a dog sat on a log", "the dog ate the cat"] * 3
    write_ptb({"train": lines, "valid": lines[:3], "test": lines[3:6]}, tmp_path / "ptb")
    task = load_task("ptb", TaskOptions(data=str(tmp_path / "ptb"), batch_size=2, bptt=4))

    class Uniform(torch.nn.Module):
        def forward(self, tokens):
            return torch.zeros(*tokens.shape, task.output_size)

    assert task.evaluate(Uniform(), "test")["perplexity"] == pytest.approx(task.output_size)
    out = tmp_path / "lm"
    assert run_cli("train", "--task", "ptb", "--data", tmp_path / "ptb", "--model", "ssnu", "--layers", 6,
                   "--recurrent", "--tie-weights", "--batch-size", 2, "--bptt", 4, "--out", out, "--no-progress") == 0
    assert json.loads((out / "final.json").read_text())["test_perplexity"] > 1


def test_hwa_resume_on_a_torch_tile_preset_is_bit_exact(tmp_path):
    # device presets run HWA on aihwkit's torch inference tiles, whose noise comes from the
    # (checkpointed) torch RNG; the stock 'pcm' config uses C++ tiles with their own RNG.
    config = RunConfig(task="digits", layers=(8,), train_limit=48, epochs=2, device="pcm_joshi2020",
                       training="hwa")
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    killed, hook = _stop_after(1)
    with pytest.raises(killed):
        train_run(config, tmp_path / "b", progress=False, on_epoch_end=hook)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    expected, got = model_tensors(uninterrupted.model), model_tensors(resumed.model)
    assert any(name.startswith("tile/") for name in expected)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_pulsed_run_is_evaluated_on_inference_tiles_after_drift(tmp_path):
    out = tmp_path / "pulsed"
    assert run_cli("train", *TINY[:-3], "--epochs", 1, "--device", "pcm", "--training", "pulsed",
                   "--optimizer", "sgd", "--lr", 0.05, "--out", out, "--no-progress") == 0
    assert run_cli("eval", out, "--drift-times", 60) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    assert 0.0 <= evaluated["drift"]["60"] <= 1.0


def test_preset_runs_are_programmed_reproducibly_and_pulsed_ones_drift(tmp_path):
    hwa = tmp_path / "hwa"
    assert run_cli("train", *TINY[:-3], "--epochs", 1, "--device", "pcm_joshi2020", "--training", "hwa",
                   "--out", hwa, "--no-progress") == 0
    results = []
    for _ in range(2):
        assert run_cli("eval", hwa, "--drift-times", 3600, 31536000, "--seed", 7) == 0
        results.append(json.loads((hwa / "eval.json").read_text())["drift"])
    assert results[0] == results[1]  # seeded programming and read noise on torch tiles

    pulsed = tmp_path / "pulsed"
    assert run_cli("train", *TINY[:-3], "--epochs", 1, "--device", "pcm_joshi2020", "--training", "pulsed",
                   "--optimizer", "sgd", "--lr", 0.05, "--out", pulsed, "--no-progress") == 0
    assert run_cli("eval", pulsed, "--drift-times", 60, 86400) == 0
    assert set(json.loads((pulsed / "eval.json").read_text())["drift"]) == {"60", "86400"}


def test_resume_extends_a_finished_run_to_the_same_weights(tmp_path):
    long = train_run(RunConfig(task="digits", layers=(8,), train_limit=64, epochs=3, seed=5), tmp_path / "a",
                     progress=False)
    short = RunConfig(task="digits", layers=(8,), train_limit=64, epochs=2, seed=5)
    train_run(short, tmp_path / "b", progress=False)
    with pytest.raises(Exception, match=r"finished run of 2 epochs; pass --epochs N with N > 2"):
        train_run(short, tmp_path / "b", progress=False, resume=True)
    extended = train_run(RunConfig(**{**short.to_dict(), "epochs": 3}), tmp_path / "b", progress=False, resume=True)
    expected, got = model_tensors(long.model), model_tensors(extended.model)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert json.loads((tmp_path / "b" / "final.json").read_text())["epochs"] == 3
    # from the command line: --resume RUN_DIR --epochs N extends a finished run
    assert run_cli("train", "--resume", tmp_path / "b", "--epochs", 4, "--no-progress") == 0
    assert json.loads((tmp_path / "b" / "final.json").read_text())["epochs"] == 4
