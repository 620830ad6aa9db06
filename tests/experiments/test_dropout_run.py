"""model.dropout in runs: flags/TOML/--set, training that resumes bit for bit, old records without the key."""

import json
import tomllib

import pytest
import torch

from analog_snu.cli import build_parser
from analog_snu.cli.config_flags import config_from_args
from analog_snu.errors import ConfigError
from analog_snu.experiments import build_config, load_run, train_run
from analog_snu.experiments.checkpoint import model_tensors


def tiny(**flags):
    return build_config(flags={"task": "digits", "layers": [8], "train-limit": 48, "epochs": 2, "seed": 3, **flags})


def _same_weights(a, b):
    expected, got = model_tensors(a), model_tensors(b)
    return sorted(expected) == sorted(got) and all(torch.equal(expected[k], got[k]) for k in expected)


def test_dropout_comes_from_the_flag_toml_and_set_and_defaults_to_off(capsys):
    assert build_config(flags={"task": "digits"}).model.dropout == 0.0
    args = build_parser().parse_args(["train", "--task", "digits", "--dropout", "0.3", "--out", "x"])
    assert config_from_args(args).model.dropout == 0.3
    assert build_config(toml=tomllib.loads('task = "digits"\ndropout = 0.2')).model.dropout == 0.2
    assert build_config(toml=tomllib.loads('task = "digits"\n[model]\ndropout = 0.1')).model.dropout == 0.1
    assert build_config(flags={"task": "digits"}, sets=[("model.dropout", 0.4)]).model.dropout == 0.4
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--dropout DROPOUT Dropout probability in [0, 1)" in help_text
    assert "0 = off (default: 0)" in help_text


@pytest.mark.parametrize(
    "value, match",
    [(1.0, r"model.dropout: Input should be less than 1"), (-0.2, r"model.dropout: Input should be greater"),
     (float("nan"), r"model.dropout: Input should be a finite number"),
     (True, r"model.dropout: Input should be a valid number \(got True\)")],
)
def test_bad_dropout_in_the_run_config_is_refused(value, match):
    with pytest.raises(ConfigError, match=match):
        build_config(flags={"task": "digits"}, sets=[("model.dropout", value)])


def test_dropout_run_resumes_bit_identically_from_the_checkpointed_rng(tmp_path, monkeypatch, kill_after):
    config = tiny(dropout=0.5)
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    assert uninterrupted.model.dropout == 0.5
    without = train_run(tiny(), tmp_path / "plain", progress=False)
    assert not _same_weights(uninterrupted.model, without.model)  # dropout acted on training

    kill_after(config, tmp_path / "b", 1)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    assert _same_weights(uninterrupted.model, resumed.model)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in uninterrupted.history]

    # the masks come from the global torch RNG that the checkpoint saves: resuming without
    # restoring it (the state right after weight init, as at epoch 1) redraws epoch 1's masks
    kill_after(config, tmp_path / "c", 1)
    monkeypatch.setattr("analog_snu.experiments.train.restore_rng", lambda _checkpoint: None)
    unrestored = train_run(config, tmp_path / "c", progress=False, resume=True)
    assert not _same_weights(uninterrupted.model, unrestored.model)


def test_hwa_dropout_run_on_pcm_tiles_resumes_bit_identically(tmp_path, kill_after):
    config = tiny(dropout=0.5, device="pcm_joshi2020", **{"train-limit": 32})
    assert config.training.mode == "hwa"
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 1)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    assert any(name.startswith("tile/") for name in model_tensors(uninterrupted.model))
    assert _same_weights(uninterrupted.model, resumed.model)
    assert 0.0 <= resumed.final["test_accuracy"] <= 1.0


def test_a_run_recorded_before_dropout_existed_loads_and_resumes(tmp_path):
    run = tmp_path / "old"
    train_run(tiny(epochs=1), run, progress=False)
    record_path = run / "config.json"
    record = json.loads(record_path.read_text())
    del record["config"]["model"]["dropout"]  # as written before the field existed
    record_path.write_text(json.dumps(record))
    model, spec = load_run(run)
    assert spec.dropout == 0.0 and model.dropout == 0.0
    extended = train_run(tiny(epochs=2), run, progress=False, resume=True)
    assert [r["epoch"] for r in extended.history] == [1, 2]
