"""Any run on any device: eval, drift-study and export-maps, results named by their settings."""

import json
import re

import numpy as np
import pytest

from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.experiments import build_config, evaluate_run, train_run
from analog_snu.pcm import preset

TINY = ["--task", "digits", "--layers", "8", "--train-limit", "48", "--epochs", "1", "--quiet"]


def run_cli(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def digital_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digital") / "run"
    train_run(build_config(flags={"task": "digits", "layers": [8], "train-limit": 48, "epochs": 1}), out,
              progress=False)
    return out


def test_as_trained_equals_final_json_for_a_digital_run(digital_run):
    final = json.loads((digital_run / "final.json").read_text())
    results = evaluate_run(digital_run)
    assert results["as_trained"] == final["test_accuracy"] and "note" not in results


def test_a_digital_run_is_evaluated_on_two_presets_without_overwriting(digital_run, capsys):
    for name in ("pcm_joshi2020", "pcm_aged_lowyield"):
        assert run_cli("eval", digital_run, "--device", name, "--drift-times", 0, 31536000) == 0
    files = sorted((digital_run / "eval").glob("test_pcm_*_seed0.json"))
    assert [f.name.split("-")[0] for f in files] == ["test_pcm_aged_lowyield", "test_pcm_joshi2020"]
    results = {f.name.split("-")[0]: json.loads(f.read_text()) for f in files}
    for name, result in results.items():
        assert set(result["drift"]) == {"0s", "1y"}
        assert all(0.0 <= v <= 1.0 for v in result["drift"].values())
    aged = results["test_pcm_aged_lowyield"]
    assert aged["device"] == preset("pcm_aged_lowyield").to_dict()
    # the same request twice gives the same figures (seeded programming and read noise, torch tiles)
    again = evaluate_run(digital_run, device="pcm_aged_lowyield", drift_times=[0, 31536000])
    assert again["drift"] == aged["drift"] and again["path"] == aged["path"]


def test_a_digital_run_needs_a_device_to_go_on_pcm(digital_run, capsys):
    assert run_cli("eval", digital_run, "--drift-times", 60) == 2
    assert "this run is digital: name a PCM device" in capsys.readouterr().err


def test_a_device_file_drives_train_and_eval_and_survives_its_deletion(tmp_path):
    device_file = tmp_path / "my_pcm.toml"
    preset("pcm_joshi2020").updated({"stuck": {"fraction_at_zero": 0.05}}).save(device_file)
    run = tmp_path / "run"
    assert run_cli("train", *TINY, "--device", device_file, "--out", run) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["config"]["device"]["stuck"]["fraction_at_zero"] == 0.05
    assert stored["config"]["training"]["mode"] == "hwa" and stored["device_source"] == str(device_file)
    assert run_cli("eval", run, "--drift-times", 3600) == 0
    first = json.loads(next((run / "eval").glob("*.json")).read_text())
    device_file.unlink()
    assert run_cli("eval", run, "--drift-times", 3600) == 0  # the run carries its device by value
    second = json.loads(next((run / "eval").glob("*.json")).read_text())
    assert first["drift"] == second["drift"] and first["device"]["stuck"]["fraction_at_zero"] == 0.05


def test_set_on_a_device_field_changes_the_programmed_conductances(digital_run):
    maps = {}
    for label, sets in (("base", []), ("zero", ["--set", "device.stuck.fraction_at_zero=0.5"])):
        out = digital_run.parent / "maps" / f"{label}.npz"  # one folder analog_snu creates, then adds to
        assert run_cli("export-maps", digital_run, "--device", "pcm_joshi2020", *sets, "--out", out, "--no-png") == 0
        maps[label] = np.load(out, allow_pickle=False)
    key = next(k for k in maps["base"].files if k.endswith("stuck"))
    assert (maps["base"][key] == 2).mean() == 0.0  # pcm_joshi2020 has no stuck devices
    assert 0.4 < (maps["zero"][key] == 2).mean() < 0.6
    g_key = next(k for k in maps["base"].files if k.endswith("g_plus_programmed"))
    assert not np.array_equal(maps["base"][g_key], maps["zero"][g_key])


def test_set_in_eval_refuses_non_device_keys(digital_run, capsys):
    assert run_cli("eval", digital_run, "--device", "pcm_joshi2020", "--set", "model.decay=0.1") == 2
    assert "--set here changes device parameters only" in capsys.readouterr().err


def test_negative_times_are_refused(digital_run):
    with pytest.raises(ConfigError, match=r"--drift-times must be a finite time >= 0"):
        evaluate_run(digital_run, device=preset("pcm_joshi2020"), drift_times=[-5])
    assert run_cli("export-maps", digital_run, "--device", "pcm_joshi2020", "--time", -5) == 2


def test_drift_study_and_export_maps_outputs_are_named_by_their_settings(digital_run):
    for seeds in (["0"], ["0", "1"]):
        assert run_cli("drift-study", digital_run, "--device", "pcm_joshi2020", "--times", 1, 86400,
                       "--seeds", *seeds, "--no-plot") == 0
    folders = sorted(p.name for p in (digital_run / "drift_study").iterdir())
    assert len(folders) == 2 and folders[0].endswith("_seeds0") and folders[1].endswith("_seeds0-1")
    for time in (0, 3600):
        assert run_cli("export-maps", digital_run, "--device", "pcm_joshi2020", "--time", time, "--no-png") == 0
    names = sorted(p.name for p in (digital_run / "weight_maps").iterdir())
    assert [n.rsplit("_", 1)[1] for n in names] == ["t0s", "t1h"]


def test_times_are_taken_printed_and_named_in_units(digital_run, capsys):
    """`1s 1h 1d 1y` or seconds wherever a time is given; printed, folder names and JSON keys in those units."""
    assert run_cli("eval", digital_run, "--device", "pcm_joshi2020", "--drift-times", "1h", "1y", "86400") == 0
    out = capsys.readouterr().out
    assert "drift 1h: " in out and "drift 1y: " in out and "drift 1d: " in out and "e+07" not in out
    path = next(line.removeprefix("wrote ") for line in out.splitlines() if line.startswith("wrote "))
    assert set(json.loads(open(path).read())["drift"]) == {"1h", "1y", "1d"}
    # the same evaluation in seconds gives the same figures (1y = 365 days)
    again = evaluate_run(digital_run, device="pcm_joshi2020", drift_times=[3600, 31_536_000, "1d"])
    assert again["drift"] == json.loads(open(path).read())["drift"]
    assert run_cli("drift-study", digital_run, "--device", "pcm_joshi2020", "--drift-times", "1s", "1y",
                   "--seeds", "0", "--no-plot", "--out", digital_run.parent / "study_units") == 0
    table = capsys.readouterr().out
    assert re.search(r"\n +1s \| ", table) and re.search(r"\n +1y \| ", table)
    study = json.loads((digital_run.parent / "study_units" / "drift_study.json").read_text())
    assert study["times"] == [1.0, 31_536_000.0]
    assert run_cli("export-maps", digital_run, "--device", "pcm_joshi2020", "--time", "1d", "--no-png") == 0
    assert "(t = 1d)" in capsys.readouterr().out
    assert any(p.name.endswith("_seed0_t1d") for p in (digital_run / "weight_maps").iterdir())
    assert run_cli("eval", digital_run, "--device", "pcm_joshi2020", "--drift-times", "1 week") == 2
    assert ("argument --drift-times: expected a time such as 1s, 1h, 1d, 1y or a number of seconds (units: s, min, h, "
            "d, y), got '1 week'; see analog-snu eval --help") in capsys.readouterr().err


def test_hwa_as_trained_matches_final_json(tmp_path):
    run = tmp_path / "hwa"
    assert run_cli("train", *TINY, "--device", "pcm_joshi2020", "--out", run) == 0
    final = json.loads((run / "final.json").read_text())
    assert evaluate_run(run)["as_trained"] == final["test_accuracy"]


def test_pulsed_runs_are_programmed_and_drifted(tmp_path):
    run = tmp_path / "pulsed"
    assert run_cli("train", *TINY, "--device", "pcm_joshi2020", "--training", "pulsed", "--optimizer", "sgd",
                   "--lr", 0.05, "--out", run) == 0
    results = evaluate_run(run, drift_times=[60, 86400])
    assert set(results["drift"]) == {"1min", "1d"}
