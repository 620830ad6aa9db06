"""Training runs end to end: files, bit-identical resume, divergence guard, checkpoint integrity."""

import csv
import json
import math
import re

import pytest
import torch

from analog_snu.cli import main
from analog_snu.errors import CheckpointError, DivergenceError
from analog_snu.experiments import build_config, load_run, read_checkpoint, train_run
from analog_snu.experiments.checkpoint import model_tensors
from analog_snu.experiments.records import read_record, record_config

TINY = ["--task", "digits", "--layers", "8", "--train-limit", "64", "--epochs", "2", "--quiet"]


def run_cli(*argv):
    return main([str(a) for a in argv])


def tiny(**flags):
    return build_config(flags={"task": "digits", "layers": [8], "train-limit": 64, "epochs": 1, **flags})


def _assert_same_weights(a, b):
    expected, got = model_tensors(a), model_tensors(b)
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_train_writes_the_run_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--out", out) == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "checkpoint.safetensors", "metrics.csv", "metrics.json",
                                               "final.json", ".analog_snu-run"}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    final = json.loads((out / "final.json").read_text())
    assert 0.0 <= final["test_accuracy"] <= 1.0
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["model"]["layers"] == [8] and record["config"]["device"] is None
    assert "test accuracy" in capsys.readouterr().out
    model, spec = load_run(out)
    assert spec.hidden == (8,) and spec.input_size == 64 and not model.training


def test_resume_reaches_the_same_weights_bit_for_bit(tmp_path, kill_after):
    config = tiny(epochs=3, seed=5)
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 2)
    assert not (tmp_path / "b" / "final.json").exists()
    assert run_cli("train", "--resume", tmp_path / "b", "--quiet") == 0
    resumed, _ = load_run(tmp_path / "b")
    _assert_same_weights(uninterrupted.model, resumed)
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [(r["train_loss"], r["valid_accuracy"]) for r in a] == [(r["train_loss"], r["valid_accuracy"]) for r in b]


def test_different_seeds_give_different_weights(tmp_path):
    # guards the resume tests: equality must come from the checkpoint, not from a constant model
    a = train_run(tiny(seed=1), tmp_path / "a", progress=False)
    b = train_run(tiny(seed=2), tmp_path / "b", progress=False)
    assert not torch.equal(model_tensors(a.model)["model/readout.weight"], model_tensors(b.model)["model/readout.weight"])


def test_hwa_resume_on_a_torch_tile_preset_is_bit_exact(tmp_path, kill_after):
    config = tiny(epochs=2, device="pcm_joshi2020", **{"train-limit": 48})
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 1)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    assert any(name.startswith("tile/") for name in model_tensors(uninterrupted.model))
    _assert_same_weights(uninterrupted.model, resumed.model)


def test_resume_extends_a_finished_run_to_the_same_weights(tmp_path):
    long = train_run(tiny(epochs=3, seed=5), tmp_path / "a", progress=False)
    train_run(tiny(epochs=2, seed=5), tmp_path / "b", progress=False)
    with pytest.raises(CheckpointError, match=r"finished run of 2 epochs; pass --epochs N with N > 2"):
        train_run(tiny(epochs=2, seed=5), tmp_path / "b", progress=False, resume=True)
    extended = train_run(tiny(epochs=3, seed=5), tmp_path / "b", progress=False, resume=True)
    _assert_same_weights(long.model, extended.model)
    assert run_cli("train", "--resume", tmp_path / "b", "--epochs", 4, "--quiet") == 0
    assert json.loads((tmp_path / "b" / "final.json").read_text())["epochs"] == 4


def test_a_run_stopped_early_resumed_with_more_patience_equals_a_run_with_that_patience(tmp_path, recwarn):
    # lr 1, seed 4, the rate cut every 2 epochs: validation loss rises at epoch 8, so patience 1
    # stops there and patience 3 does not; the resumed run must replay the schedule to match
    config = dict(epochs=10, lr=1.0, seed=4, schedule="step", **{"step-size": 2})
    stopped = train_run(tiny(patience=1, **config), tmp_path / "a", progress=False)
    assert stopped.final["stopped_early"] and len(stopped.history) == 8
    patient = train_run(tiny(patience=3, **config), tmp_path / "b", progress=False)
    resumed = train_run(tiny(patience=3, **config), tmp_path / "a", progress=False, resume=True)
    assert [(r["epoch"], r["valid_loss"]) for r in resumed.history] == [(r["epoch"], r["valid_loss"])
                                                                        for r in patient.history]
    _assert_same_weights(patient.model, resumed.model)
    assert not any("lr_scheduler.step()" in str(w.message) for w in recwarn)  # the schedule's replay is silent


def test_resume_keeps_the_device_name(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("train", *TINY, "--epochs", 1, "--device", "pcm_joshi2020", "--out", run) == 0
    assert run_cli("train", "--resume", run, "--epochs", 2, "--quiet") == 0
    record = json.loads((run / "config.json").read_text())
    assert record["device_source"] == "pcm_joshi2020"
    assert run_cli("eval", run, "--drift-times", "1d") == 0  # results are named after the device, not "own"
    assert [p.name.split("-")[0] for p in (run / "eval").iterdir()] == ["test_pcm_joshi2020"]
    assert "on pcm_joshi2020-" in capsys.readouterr().out


def test_resume_accepts_another_thread_count(tmp_path, monkeypatch):
    monkeypatch.setattr("analog_snu.experiments.run_threads.apply_threads", lambda setting, work: None)
    assert run_cli("train", *TINY, "--epochs", 1, "--out", tmp_path / "a") == 0
    assert run_cli("train", "--resume", tmp_path / "a", "--epochs", 2, "--threads", 2, "--quiet") == 0
    assert json.loads((tmp_path / "a" / "final.json").read_text())["epochs"] == 2


def test_resume_refuses_a_different_config(tmp_path):
    train_run(tiny(epochs=1), tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match=r"different config \(model.layers: checkpoint \[8\] vs now \[9\]"):
        train_run(tiny(epochs=2, layers=[9]), tmp_path / "a", progress=False, resume=True)


def test_toml_config_stands_in_for_flags(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('task = "digits"\nmodel = "ssnu"\nlayers = [6]\ntrain-limit = 32\nepochs = 1\n'
                      f'out = "{tmp_path / "run"}"\n[set]\n"model.decay" = 0.9\n')
    assert run_cli("train", "--config", config, "--seed", 3, "--quiet") == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (stored["model"]["cell"], stored["model"]["layers"], stored["model"]["decay"]) == ("ssnu", [6], 0.9)
    assert (stored["training"]["seed"], stored["task"]["train_limit"]) == (3, 32)


def _poisoned(config, from_epoch):
    """The task of ``config`` whose loss turns NaN from epoch ``from_epoch`` on (a diverging run)."""
    from analog_snu.experiments import load_task_for

    task = load_task_for(config)
    clean, epochs = task.loss_fn(), iter(range(1, 10**6))
    state = {"epoch": 0}
    original_batches = task.train_batches

    def batches(generator):
        state["epoch"] = next(epochs)
        return original_batches(generator)

    task.train_batches = batches
    task.loss_fn = lambda: (lambda out, target: clean(out, target) * (float("nan") if state["epoch"] >= from_epoch
                                                                     else 1.0))
    return task


def test_divergence_stops_training_keeps_the_last_good_checkpoint_and_says_how_to_resume(tmp_path, capsys,
                                                                                           monkeypatch, kill_after):
    run = tmp_path / "run"
    config = tiny(epochs=2, optimizer="sgd", lr=0.5)
    kill_after(config, run, 1)
    good = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(DivergenceError, match=r"diverged in epoch 2 \(train loss nan; .*checkpoint of epoch 1 is kept; "
                                              r"resume with a lower learning rate: analog-snu train --resume .* --lr 0.05"):
        train_run(config, run, progress=False, resume=True, task=_poisoned(config, from_epoch=1))
    assert (run / "checkpoint.safetensors").read_bytes() == good
    assert not (run / "final.json").exists()
    # from the command line: exit code 1 (a runtime problem), one line, no traceback
    monkeypatch.setattr("analog_snu.experiments.train.load_task_for", lambda c: _poisoned(c, from_epoch=1))
    assert run_cli("train", "--resume", run, "--quiet") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "diverged in epoch 2" in err
    monkeypatch.undo()
    # and resuming with a lower learning rate works
    assert run_cli("train", "--resume", run, "--lr", 0.05, "--quiet") == 0
    assert math.isfinite(json.loads((run / "final.json").read_text())["test_loss"])


def test_weights_grapes_cannot_use_are_a_divergence_too(tmp_path):
    # NaN weights after the first batch: the next batch's GRAPES factors are undefined, which ends
    # the run as a divergence (as the chip's refusal to program them does), not as bad input
    config = tiny(optimizer="sgd", lr=0.5, grapes="propagating", **{"train-limit": 96})
    with pytest.raises(DivergenceError, match=r"diverged in epoch 1 \(weights\[0\] contains NaN or inf; GRAPES "
                                              r"factors would be undefined\); nothing was saved"):
        train_run(config, tmp_path / "run", progress=False, task=_poisoned(config, from_epoch=1))


def test_inf_learning_rate_is_a_usage_error(tmp_path, capsys):
    assert run_cli("train", *TINY, "--lr", "inf", "--out", tmp_path / "r") == 2
    assert "training.lr: Input should be a finite number" in capsys.readouterr().err
    assert run_cli("train", *TINY, "--lr", "1e300", "--out", tmp_path / "r") == 2
    assert "training.lr: Input should be less than or equal to 10000" in capsys.readouterr().err


def test_a_flipped_bit_in_the_tensor_data_is_detected(tmp_path):
    run = tmp_path / "run"
    train_run(tiny(), run, progress=False)
    path = run / "checkpoint.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited: its tensor data or metadata do not match"):
        read_checkpoint(path)
    assert run_cli("eval", run) == 1


def test_config_json_must_agree_with_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    train_run(tiny(), run, progress=False)
    record = json.loads((run / "config.json").read_text())
    record["config"]["task"]["rate"] = 2.0  # would silently change the evaluation spikes
    (run / "config.json").write_text(json.dumps(record))
    assert run_cli("eval", run) == 1
    assert "disagrees with the checkpoint it describes (fields ['task.rate'])" in capsys.readouterr().err
    (run / "config.json").write_text("{")
    assert run_cli("eval", run) == 1
    assert "is not a valid run record" in capsys.readouterr().err


def test_music_task_end_to_end_and_uniform_model_nll(tmp_path):
    from analog_snu.tasks import TaskOptions, load_task

    song = [[60, 64, 67], [62], [], [60, 65]]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"train": [song, song[:3]], "valid": [song], "test": [song[1:]]}))
    out = tmp_path / "music"
    assert run_cli("train", "--task", "jsb", "--data", path, "--layers", 6, "--epochs", 1, "--out", out, "--quiet") == 0
    final = json.loads((out / "final.json").read_text())
    assert final["metric"] == "nll" and 0 < final["test_nll"] < 200
    for average in ("nll_no_first", "nll_per_sequence", "nll_per_sequence_no_first"):  # one test sequence:
        assert 0 < final[f"test_{average}"] < 200  # per sequence == per frame
    assert final["test_nll_per_sequence"] == pytest.approx(final["test_nll"])
    task = load_task("jsb", TaskOptions(data=str(path)))

    class Uniform(torch.nn.Module):  # p = 1/2 for every key: NLL = 88 ln 2 per frame
        def forward(self, x):
            return torch.zeros_like(x)

    for value in task.evaluate(Uniform(), "test").values():  # every average of a constant NLL
        assert value == pytest.approx(88 * math.log(2))


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
                   "--recurrent", "--tie-weights", "--batch-size", 2, "--bptt", 4, "--out", out, "--quiet") == 0
    assert json.loads((out / "final.json").read_text())["test_perplexity"] > 1


def test_grapes_flag_trains(tmp_path):
    out = tmp_path / "grapes"
    assert run_cli("train", *TINY, "--grapes", "local", "--out", out) == 0
    assert json.loads((out / "config.json").read_text())["config"]["training"]["grapes"] == "local"


def test_best_valid_selection_early_stopping_and_schedule(tmp_path):
    run = tmp_path / "best"
    result = train_run(tiny(epochs=6, optimizer="sgd", lr=0.5, schedule="step", **{"step-size": 2},
                            patience=2, select="best"), run, progress=False)
    history = result.history
    best = min(history, key=lambda row: row["valid_loss"])["epoch"]
    final = result.final
    assert final["best_valid_epoch"] == best and final["epoch"] == best and final["select"] == "best"
    assert final["last"]["epoch"] == history[-1]["epoch"]
    # early stopping: the run ends `patience` epochs after its best one, or at the last epoch
    assert history[-1]["epoch"] == min(best + 2, 6) and final["stopped_early"] == (history[-1]["epoch"] < 6)
    # the reported test metric is the best checkpoint's, and eval agrees
    assert evaluate_run_as_trained(run) == final["test_accuracy"]
    assert (run / "checkpoint_best.safetensors").is_file()
    # step schedule: lr x 0.1 every 2 epochs; the checkpoint of epoch E holds the lr epoch E trained with
    lr = read_checkpoint(run / "checkpoint.safetensors").meta["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.5 * 0.1 ** ((history[-1]["epoch"] - 1) // 2))


def evaluate_run_as_trained(run):
    from analog_snu.experiments import evaluate_run

    return evaluate_run(run)["as_trained"]


def test_feedback_alignment_run_resumes_bit_identically(tmp_path, kill_after):
    config = tiny(epochs=2, rule="fa", grapes="propagating", **{"weight-init": "he_uniform"})
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 1)
    checkpoint = read_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    assert any(name.startswith("feedback/") for name in checkpoint.tensors)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    _assert_same_weights(uninterrupted.model, resumed.model)


def test_schedule_settings_are_checked():
    from analog_snu.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--schedule step needs --step-size"):
        tiny(schedule="step")
    with pytest.raises(ConfigError, match=r"--gamma applies to --schedule step or plateau only"):
        tiny(gamma=0.5)


def test_valid_limit_cuts_only_the_validation_split(tmp_path):
    from analog_snu.tasks import TaskOptions, load_task

    whole = load_task("digits", TaskOptions())
    cut = load_task("digits", TaskOptions(valid_limit=40, train_limit=100))
    assert len(cut.data["valid"][0]) == 40 and torch.equal(cut.data["valid"][1], whole.data["valid"][1][:40])
    assert len(cut.data["train"][0]) == 100
    assert torch.equal(cut.data["test"][0], whole.data["test"][0])  # the test split stays whole

    song = [[60, 64, 67], [62], [], [60, 65]]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"train": [song], "valid": [song, song[:2], song[1:]], "test": [song, song]}))
    music = load_task("jsb", TaskOptions(data=str(path), valid_limit=2))
    assert (len(music.data["valid"]), len(music.data["test"])) == (2, 2)
    assert run_cli("train", "--task", "digits", "--layers", 4, "--epochs", 1, "--train-limit", 32,
                   "--valid-limit", 30, "--out", tmp_path / "run", "--quiet") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["task"]["valid_limit"] == 30


def test_train_says_what_it_trains_before_the_first_epoch_and_accuracy_in_percent(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--task", "digits", "--layers", "8", "--train-limit", "64", "--epochs", "1",
                   "--device", "pcm_joshi2020", "--no-progress", "--out", out) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"training digits: snu 64-8-10, hwa on pcm_joshi2020; adam lr 0.005, 1 epoch, seed 0; "
                        f"run directory {out}")
    assert re.match(r"epoch 1/1: train loss \d\.\d{4}, valid loss \d\.\d{4}, valid accuracy \d+\.\d\d % \(", lines[1])
    final = json.loads((out / "final.json").read_text())
    assert lines[-1] == (f"digits snu (hwa): test accuracy {100 * final['test_accuracy']:.2f} %; run in {out}")
    assert 0.0 <= final["test_accuracy"] <= 1.0  # files keep fractions
    assert run_cli("eval", out) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"test accuracy as trained: {100 * final['test_accuracy']:.2f} %"


def test_the_record_holds_the_name_of_a_device_from_a_config_file(tmp_path):
    # the name is taken where the device is resolved: a --config file's device, not only --device
    spec = tmp_path / "run.toml"
    spec.write_text('task = "digits"\ndevice = "pcm_joshi2020"\n')
    assert run_cli("train", *TINY, "--epochs", 1, "--config", spec, "--set", "device.drift.scale=2.0",
                   "--out", tmp_path / "run") == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["device_source"] == "pcm_joshi2020" and record["config"]["device"]["drift"]["scale"] == 2.0
    assert "device_source" not in record["config"]  # the config holds the device by value only


def test_a_record_of_a_digital_run_named_digital_still_opens(tmp_path):
    # `train --device digital` recorded the source "digital" beside no device; such records still load
    run = tmp_path / "run"
    train_run(tiny(), run, progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["device_source"] is None
    (run / "config.json").write_text(json.dumps({**record, "device_source": "digital"}))
    assert record_config(read_record(run)).device_source is None
    assert train_run(tiny(epochs=2), run, progress=False, resume=True).history[-1]["epoch"] == 2
    assert json.loads((run / "config.json").read_text())["device_source"] is None


def test_a_resumed_run_keeps_its_device_name_unless_given_one(tmp_path):
    run = tmp_path / "run"
    train_run(tiny(device="pcm_joshi2020"), run, progress=False)
    by_value = tiny(device="pcm_joshi2020", epochs=2).with_device_source(None)
    train_run(by_value, run, progress=False, resume=True)
    assert json.loads((run / "config.json").read_text())["device_source"] == "pcm_joshi2020"
    renamed = tiny(device="pcm_joshi2020", epochs=3).with_device_source("joshi.toml")
    train_run(renamed, run, progress=False, resume=True)
    assert json.loads((run / "config.json").read_text())["device_source"] == "joshi.toml"
