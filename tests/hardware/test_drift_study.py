"""Drift study function and the export-maps / drift-study commands."""

import json

import pytest
import torch

from analog_snu import SNUNetwork
from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.hardware import drift_study
from analog_snu.pcm import preset
from analog_snu.reports import save_drift_study
from analog_snu.tiles import device_rpu_config


def _setup(mode="hwa"):
    device = preset("pcm_joshi2020")
    if mode == "pulsed":  # aihwkit's C++ tiles draw output noise from their own, unseedable RNG
        device = device.updated({"periphery": {"out_noise": 0.0}})
    torch.manual_seed(0)
    net = SNUNetwork([8, 6, 3], rpu_config=device_rpu_config(device, mode))
    x = torch.bernoulli(torch.full((5, 16, 8), 0.5), generator=torch.Generator().manual_seed(1))

    def mean_output(model):
        with torch.no_grad():
            return float(model(x).abs().mean())

    return net, mean_output


@pytest.mark.parametrize("mode", ["hwa", "pulsed"])
def test_drift_study_rows_summary_and_restores_model(tmp_path, mode):
    net, metric = _setup(mode)
    torch.manual_seed(0)
    before = metric(net.eval())
    result = drift_study(net, metric, times=[1.0, 3.0e7], seeds=[0, 1], metric="mean |output|")
    assert result.reference == pytest.approx(before)
    assert len(result.rows) == 2 * 2 * 2
    summary = {(s["time_s"], s["compensated"]): s for s in result.summary()}
    assert set(summary) == {(1.0, False), (1.0, True), (3.0e7, False), (3.0e7, True)}
    # without compensation the output shrinks with drift; compensation brings it back up
    assert summary[(3.0e7, False)]["mean"] < summary[(3.0e7, True)]["mean"]
    assert summary[(3.0e7, False)]["mean"] < summary[(1.0, False)]["mean"]
    torch.manual_seed(0)
    assert metric(net) == before  # trained weights are back
    assert "      1s | " in result.table() and "mean |output|" in result.table()
    paths = result.save(tmp_path / "out")
    assert paths["csv"].read_text().startswith("time_s,compensated,mean,std,n")
    assert json.loads(paths["json"].read_text())["seeds"] == [0, 1]
    assert "png" not in paths and not (tmp_path / "out" / "drift_study.png").exists()  # hardware/ draws nothing
    drawn = save_drift_study(result, tmp_path / "drawn")
    assert drawn["png"].read_bytes()[:4] == b"\x89PNG"
    assert {kind: drawn[kind].read_bytes() for kind in paths} == {kind: paths[kind].read_bytes() for kind in paths}


def test_drift_study_errors():
    net, metric = _setup()
    with pytest.raises(ConfigError, match=r"times must be a finite time >= 0"):
        drift_study(net, metric, times=[-1.0])
    with pytest.raises(ConfigError, match="seeds must be a non-empty list"):
        drift_study(net, metric, seeds=[])
    with pytest.raises(ConfigError, match=r"compensation must be one of \['global', 'per_column'\] or None"):
        drift_study(net, metric, compensation="none")


@pytest.mark.parametrize(("seeds", "times", "match"), [
    ([0, 0], [1.0], r"seeds must not repeat, got \[0, 0\] \(repeated: \[0\]\)"),
    ([3, 1, 2, 1, 3], [1.0], r"repeated: \[1, 3\]"),
    ([0], [60.0, 3600.0, 60.0], r"times must not repeat"),
    ([0], [60, 60.0], r"times must not repeat"),  # the same second, written two ways
])
def test_repeated_seeds_or_times_would_fake_the_statistics_and_are_refused(seeds, times, match):
    net, metric = _setup()
    calls = []
    with pytest.raises(ConfigError, match=match):
        drift_study(net, lambda model: calls.append(1) or metric(model), seeds=seeds, times=times)
    assert calls == []  # refused before any evaluation


def test_cli_drift_study_and_export_maps_on_demo_network(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --demo keeps its run in ./analog_snu_demo_run
    common = ["--demo", "--epochs", "1", "--hidden", "8"]
    assert main(["drift-study", *common, "--seeds", "0", "--times", "1", "86400", "--out", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "accuracy before programming" in out and "      1d | " in out
    assert (tmp_path / "ds" / "drift_study.csv").is_file() and (tmp_path / "ds" / "drift_study.png").is_file()
    assert main(["export-maps", *common, "--out", str(tmp_path / "maps" / "m.npz"), "--time", "3600", "--no-png"]) == 0
    meta = json.loads((tmp_path / "maps" / "m.json").read_text())
    assert meta["time_since_programming_s"] == 3600.0 and meta["device"]["name"] == "pcm_joshi2020"
    assert "PCM devices: 1,184" in capsys.readouterr().out  # 2 * (64*8 + 8*10)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["drift-study", str(tmp_path), "--device", "nope"]) == 2
    assert "device 'nope' is neither a preset nor a device file" in capsys.readouterr().err
    assert main(["export-maps", str(tmp_path)]) == 2  # a RUN that holds no run: a usage error, as in every command
    assert "is empty; it holds no run" in capsys.readouterr().err


def test_cli_refuses_repeated_seeds_before_training_the_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["drift-study", "--demo", "--epochs", "1", "--hidden", "8", "--seeds", "0", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seeds must not repeat" in err, err
