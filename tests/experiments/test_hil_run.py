"""Hardware-in-the-loop runs through the run layer: wear records, checkpointed chip state, exact resume."""

import json

import numpy as np
import pytest
import torch

from analog_snu.cli import main
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments import build_config, read_checkpoint, train_run
from analog_snu.experiments.checkpoint import model_tensors
from analog_snu.experiments.config import spec_for
from analog_snu.experiments.train import load_task_for
from analog_snu.models import build_model
from analog_snu.tiles.tile_access import named_layer_tiles

TINY = {"task": "digits", "layers": [8], "train-limit": 48, "epochs": 2, "device": "pcm_joshi2020",
        "training": "hil"}


def hil_config(**flags):
    return build_config(flags={**TINY, **flags})


def test_reprogram_run_records_wear_and_checkpoints_the_chip(tmp_path, capsys):
    run = tmp_path / "hil"
    assert main(["train", "--task", "digits", "--layers", "8", "--train-limit", "48", "--epochs", "1",
                 "--device", "pcm_joshi2020", "--training", "hil", "--program-every", "3", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "HIL (reprogram): 1,184 devices" in out  # 2 (64*8 + 8*10)
    wear = json.loads((run / "hil.json").read_text())
    assert set(wear) == {"scheme", "chip_seconds", "devices", "programming_events"}
    batches = 2  # 48 images in batches of 32
    assert wear["devices"] == 1184 and wear["chip_seconds"] == pytest.approx(batches * 1.0)
    assert wear["programming_events"]["max"] == 1  # one programming round: before batch 0 (every 3)
    checkpoint = read_checkpoint(run / "checkpoint.safetensors")
    assert any(name.startswith("hil/chip/") for name in checkpoint.tensors)
    assert checkpoint.meta["extra"]["hil"]["batches"] == batches
    assert json.loads((run / "final.json").read_text())["hil"] == wear


def test_mixed_run_counts_pulses_and_refreshes(tmp_path):
    # a narrow range (fine pulses) so that two batches already owe pulses
    result = train_run(hil_config(**{"hil-scheme": "mixed", "epochs": 1, "headroom": 1.5}), tmp_path / "mixed",
                       progress=False)
    wear = json.loads((tmp_path / "mixed" / "hil.json").read_text())
    assert set(wear) == {"scheme", "chip_seconds", "devices", "set_pulses", "refreshes"}
    assert wear["set_pulses"]["max"] > 0 and wear["refreshes"]["total"] >= 0
    assert result.final["hil"]["scheme"] == "mixed"


@pytest.mark.parametrize("flags", [{"chip-seconds-per-batch": 60.0},
                                   {"hil-scheme": "mixed", "headroom": 1.5, "grapes": "local", "epochs": 3}])
def test_hil_resume_continues_bit_identically(tmp_path, kill_after, flags):
    config = hil_config(**flags)
    uninterrupted = train_run(config, tmp_path / "a", progress=False)
    kill_after(config, tmp_path / "b", 1)
    resumed = train_run(config, tmp_path / "b", progress=False, resume=True)
    expected, got = model_tensors(uninterrupted.model), model_tensors(resumed.model)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert uninterrupted.final["hil"] == resumed.final["hil"]
    a = read_checkpoint(tmp_path / "a" / "checkpoint.safetensors").group_with_prefix("hil/")
    b = read_checkpoint(tmp_path / "b" / "checkpoint.safetensors").group_with_prefix("hil/")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("scheme", "headroom", "expected"), [("mixed", None, 8.0), ("reprogram", None, 1.5),
                                                            ("mixed", 3.0, 3.0)])
def test_the_chip_weight_range_follows_the_headroom(tmp_path, scheme, headroom, expected):
    flags = {"hil-scheme": scheme} | ({} if headroom is None else {"headroom": headroom})
    config = hil_config(epochs=1, **flags)
    train_run(config, tmp_path / "r", progress=False)
    meta = read_checkpoint(tmp_path / "r" / "checkpoint.safetensors").meta["extra"]["hil"]["chip"]
    assert meta["headroom"] == expected
    if scheme == "mixed":  # a fixed range: g_max maps to headroom x the initial max|W| of each tile
        first = _initial_max_weights(config)
        for tile in meta["tiles"]:
            assert tile["scale"] == pytest.approx(config.device.conductance.g_max / (expected * first[tile["name"]]),
                                                  rel=1e-6)


def _initial_max_weights(config):
    task = load_task_for(config)
    torch.manual_seed(config.training.seed)  # as train_run builds the model
    model = build_model(spec_for(config, task.head, task.input_size, task.output_size))
    return {name: float(torch.as_tensor(tile.tile.get_weights()).abs().max()) for _, name, tile in named_layer_tiles(model)}


def test_export_maps_of_a_hil_run_holds_the_wear(tmp_path):
    run = tmp_path / "hil"
    train_run(hil_config(epochs=1), run, progress=False)
    assert main(["export-maps", str(run), "--out", str(tmp_path / "maps" / "maps.npz"), "--no-png"]) == 0
    maps = np.load(tmp_path / "maps" / "maps.npz", allow_pickle=False)
    events = [k for k in maps.files if k.endswith("/programming_events")]
    assert events and all(maps[k].max() >= 1 for k in events)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"device": "digital"}, r"--training hil needs a PCM device"),
        ({"granularity": 0.0, "hil-scheme": "mixed"}, r"training.granularity: Input should be greater than 0"),
        ({"granularity": 0.01}, r"--granularity applies to --hil-scheme mixed only"),
        ({"program-every": 0}, r"training.program_every: Input should be greater than 0"),
        ({"program-every": 2, "hil-scheme": "mixed"}, r"--program-every applies to --hil-scheme reprogram"),
        ({"training": "hwa", "hil-scheme": "mixed"}, r"--hil-scheme apply to --training hil only"),
        ({"headroom": 0.5}, r"training.headroom: Input should be greater than or equal to 1"),
        ({"training": "hwa", "headroom": 2.0}, r"--headroom apply to --training hil only"),
    ],
)
def test_bad_hil_settings_are_refused(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        train_run(hil_config(**flags), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_without_chip_state_is_refused_on_resume(tmp_path):
    run = tmp_path / "r"
    train_run(hil_config(epochs=1), run, progress=False)
    # a hwa checkpoint of the same network holds no chip state; pose it as this run's checkpoint
    other = tmp_path / "hwa"
    train_run(build_config(flags={**TINY, "training": "hwa", "epochs": 1}), other, progress=False)
    checkpoint = read_checkpoint(other / "checkpoint.safetensors")
    from analog_snu.experiments import save_checkpoint
    from analog_snu.experiments.deploy import open_run

    opened = open_run(run)
    save_checkpoint(run / "checkpoint.safetensors", opened.model, opened.spec,
                    extra={**checkpoint.meta["extra"], "config": opened.config.to_dict()})
    with pytest.raises(CheckpointError, match=r"HIL state version must be|checkpoint holds no optimizer state"):
        train_run(hil_config(epochs=2), run, progress=False, resume=True)
