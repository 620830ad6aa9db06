"""training.weight_decay in runs: flag, TOML, --set and sweep keys reach the optimizer; the modes it
applies to; what it does to the weights; resume; run directories written before the field existed."""

import json
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from analog_snu.cli import build_parser, main
from analog_snu.cli.config_flags import config_from_args
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments import build_config, load_run, parse_set, read_checkpoint, spec_for, train_run
from analog_snu.experiments.checkpoint import _checkpoint_digest as checkpoint_digest
from analog_snu.experiments.checkpoint import model_tensors
from analog_snu.experiments.sweep_spec import expand, parse_sweep_spec
from analog_snu.experiments.train import _build, load_task_for, run_header

TINY = {"task": "digits", "layers": [8], "train-limit": 96, "epochs": 2, "seed": 3}


def tiny(**flags):
    return build_config(flags={**TINY, **flags})


def _optimizer_of(config):
    """The optimizer a run of ``config`` trains with, built as ``train_run`` builds it (nothing trained)."""
    return _build(config, load_task_for(config), torch.device("cpu")).optimizer


def _same_weights(a, b):
    expected, got = model_tensors(a), model_tensors(b)
    return sorted(expected) == sorted(got) and all(torch.equal(expected[k], got[k]) for k in expected)


# --- where the value comes from, and where it goes -------------------------------------------------


def _from_flag():
    return config_from_args(build_parser().parse_args(["train", "--task", "digits", "--weight-decay", "1e-4",
                                                       "--out", "x"]))


def _from_sweep_base():
    (trial,) = expand(parse_sweep_spec({"seeds": [0], "base": {"task": "digits", "weight-decay": 1e-4}}))
    return trial.config


SOURCES = {
    "flag": _from_flag,
    "toml key": lambda: build_config(toml=tomllib.loads('task = "digits"\nweight-decay = 1e-4')),
    "toml table": lambda: build_config(toml=tomllib.loads('task = "digits"\n[training]\nweight_decay = 1e-4')),
    "--set": lambda: build_config(flags={"task": "digits"}, sets=[parse_set("training.weight_decay=1e-4")]),
    "sweep [base]": _from_sweep_base,
}


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_of_the_weight_decay_reaches_the_optimizer(source):
    config = SOURCES[source]()
    assert config.training.weight_decay == 1e-4
    assert [group["weight_decay"] for group in _optimizer_of(config).param_groups] == [1e-4]


def test_no_weight_decay_by_default():
    config = build_config(flags={"task": "digits"})
    assert config.training.weight_decay == 0.0 and "weight decay" not in run_header(config, _spec(config), Path("runs/x"))
    assert _optimizer_of(config).param_groups[0]["weight_decay"] == 0.0


def _spec(config):
    return spec_for(config, "mean", 64, 10)


def test_a_sweep_grid_over_the_weight_decay_names_its_trials():
    spec = parse_sweep_spec({"seeds": [0], "base": {"task": "digits"}, "grid": {"weight-decay": [0.0, 1e-3]}})
    trials = expand(spec)
    assert [(t.id, t.config.training.weight_decay) for t in trials] == [("weight-decay=0.0_seed=0", 0.0),
                                                                         ("weight-decay=0.001_seed=0", 1e-3)]


@pytest.mark.parametrize(("mode", "optimizer"), [("hwa", "adam"), ("hil", "sgd"), ("hil", "adam")])
def test_every_parameter_group_of_an_analog_run_decays(mode, optimizer):
    config = build_config(flags={"task": "digits", "layers": [8], "device": "pcm_joshi2020", "training": mode,
                                 "optimizer": optimizer, "weight-decay": 1e-3})
    groups = _optimizer_of(config).param_groups
    assert len(groups) > 1  # aihwkit gives every tile its own group
    assert all(group["weight_decay"] == 1e-3 for group in groups)


def test_the_run_header_says_the_weight_decay():
    config = build_config(flags={"task": "digits", "weight-decay": 1e-4})
    assert run_header(config, _spec(config), Path("runs/x")) == (
        "training digits: snu 64-128-10, digital; adam lr 0.005, weight decay 0.0001, 15 epochs, seed 0; "
        "run directory runs/x")


def test_help_says_it_is_torchs_coupled_decay(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--weight-decay WEIGHT_DECAY Weight decay, in [0, 1e4]: torch's weight_decay of SGD and Adam, the " \
           "coupled L2 term" in help_text
    assert "not AdamW's decoupled decay); not with --training pulsed" in help_text
    assert "learn by pulses (default: 0)" in help_text


# --- refused values and modes ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "match"), [
    (-1e-4, r"training.weight_decay: Input should be greater than or equal to 0 \(got -0.0001\)"),
    (float("nan"), r"training.weight_decay: Input should be a finite number \(got nan\)"),
    (float("inf"), r"training.weight_decay: Input should be a finite number \(got inf\)"),
    ("1e-4", r"training.weight_decay: Input should be a valid number \(got '1e-4'\)"),
    (True, r"training.weight_decay: Input should be a valid number \(got True\)"),
    (1e5, r"training.weight_decay: Input should be less than or equal to 10000"),
])
def test_a_bad_weight_decay_is_refused_in_one_line_naming_the_field(value, match):
    with pytest.raises(ConfigError, match=match) as caught:
        build_config(flags={"task": "digits"}, sets=[("training.weight_decay", value)])
    assert "\n" not in str(caught.value)


def test_a_non_number_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--task", "digits", "--weight-decay", "abc", "--out", str(tmp_path / "run")]) == 2
    assert "argument --weight-decay: invalid float value: 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pulsed_training_refuses_a_weight_decay_before_anything_runs(tmp_path, capsys):
    refusal = (r"training: --weight-decay \(training.weight_decay\) does not apply to --training pulsed: its tiles "
               r"learn by pulse trains that torch's weight decay never reaches")
    with pytest.raises(ConfigError, match=refusal) as caught:
        build_config(flags={"task": "digits", "device": "pcm_joshi2020", "training": "pulsed", "weight-decay": 1e-4})
    assert "\n" not in str(caught.value)
    assert main(["train", "--task", "digits", "--device", "pcm_joshi2020", "--training", "pulsed",
                 "--weight-decay", "1e-4", "--out", str(tmp_path / "run")]) == 2
    assert "does not apply to --training pulsed" in capsys.readouterr().err and not (tmp_path / "run").exists()
    pulsed = build_config(flags={"task": "digits", "device": "pcm_joshi2020", "training": "pulsed",
                                 "weight-decay": 0.0})
    assert pulsed.training.weight_decay == 0.0


# --- what it does ------------------------------------------------------------------------------------


def test_a_large_weight_decay_ends_with_smaller_weights(tmp_path):
    plain = train_run(tiny(), tmp_path / "plain", progress=False)
    decayed = train_run(tiny(**{"weight-decay": 1.0}), tmp_path / "decayed", progress=False)
    groups = read_checkpoint(tmp_path / "decayed" / "checkpoint.safetensors").meta["optimizer"]["param_groups"]
    assert [group["weight_decay"] for group in groups] == [1.0]
    before, after = model_tensors(plain.model), model_tensors(decayed.model)
    matrices = [name for name in before if name.endswith("weight")]
    assert matrices == ["model/layers.0.weight_ih.weight", "model/readout.weight"]
    for name in matrices:  # measured: 1.69 -> 1.10 and 1.95 -> 1.70
        assert after[name].norm() < 0.95 * before[name].norm(), name


# --- resume ------------------------------------------------------------------------------------------


def test_a_resumed_run_keeps_its_weight_decay_and_refuses_another(tmp_path, kill_after):
    config = tiny(**{"weight-decay": 0.1})
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 1)
    with pytest.raises(CheckpointError, match=r"training.weight_decay: checkpoint 0.1 vs now 0.2.*only "
                                              r"training.epochs, training.lr, training.patience may change"):
        train_run(tiny(**{"weight-decay": 0.2}), tmp_path / "b", progress=False, resume=True)
    assert main(["train", "--resume", str(tmp_path / "b"), "--quiet"]) == 0  # the stored config's decay
    resumed, _ = load_run(tmp_path / "b")
    assert _same_weights(uninterrupted.model, resumed)
    groups = read_checkpoint(tmp_path / "b" / "checkpoint.safetensors").meta["optimizer"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.1


def _as_written_before_weight_decay(run):
    """``run`` as analog_snu wrote it before ``training.weight_decay`` existed: no such key in
    ``config.json`` nor in the checkpoints' configs (torch's optimizer state always held its
    ``weight_decay``: 0)."""
    record = json.loads((run / "config.json").read_text())
    del record["config"]["training"]["weight_decay"]
    (run / "config.json").write_text(json.dumps(record))
    for path in run.glob("*.safetensors"):
        data = path.read_bytes()
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8:8 + size])["__metadata__"]["analog_snu"])
        del meta["extra"]["config"]["training"]["weight_decay"]
        tensors = safetensors_load(data)
        meta_json = json.dumps(meta, sort_keys=True)
        path.write_bytes(safetensors_save(tensors, metadata={
            "analog_snu": meta_json, "analog_snu_sha256": checkpoint_digest(tensors, meta_json)}))


def test_a_run_written_before_weight_decay_existed_loads_and_resumes_as_before(tmp_path):
    uninterrupted = train_run(tiny(epochs=3), tmp_path / "a", progress=False)
    old = tmp_path / "old"
    train_run(tiny(epochs=2), old, progress=False)
    _as_written_before_weight_decay(old)
    assert "weight_decay" not in read_checkpoint(old / "checkpoint.safetensors").meta["extra"]["config"]["training"]
    assert load_run(old)[1].hidden == (8,)
    assert main(["train", "--resume", str(old), "--epochs", "3", "--quiet"]) == 0
    resumed, _ = load_run(old)
    assert _same_weights(uninterrupted.model, resumed)
    assert json.loads((old / "config.json").read_text())["config"]["training"]["weight_decay"] == 0.0
