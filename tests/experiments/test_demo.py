"""The demo (`analog-snu demo`, `make demo`) at toy size: two trainings, the PCM one programmed and drifted."""

import re

from analog_snu.cli.demo import report
from analog_snu.experiments import run_demo
from analog_snu.training.loop import ProgressMode


def test_demo_reports_three_accuracies(tmp_path):
    results = run_demo(epochs=1, out=tmp_path, progress=False, hidden=8)
    for key in ("digital_accuracy", "hwa_accuracy", "pcm_accuracy_1day"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["runs"] == str(tmp_path) and (tmp_path / "hwa" / "eval").is_dir()


def test_demo_lines_are_labelled_and_accuracy_is_in_percent(tmp_path, capsys):
    run_demo(epochs=1, out=tmp_path, progress=ProgressMode(bars=False, epoch_lines=True), hidden=8)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ")[0] for line in lines] == ["[digital SNU"] * 2 + ["[PCM SNU, HWA-trained"] * 2
    assert lines[0] == f"[digital SNU] training digits: snu 64-8-10, digital; adam lr 0.005, 1 epoch, seed 0; " \
                       f"run directory {tmp_path / 'digital'}"
    assert lines[2].startswith("[PCM SNU, HWA-trained] training digits: snu 64-8-10, hwa on pcm_joshi2020; ")
    assert re.search(r"^\[digital SNU\] epoch 1/1: .*valid accuracy \d+\.\d\d % \(", lines[1])
    # the CLI's summary: the same labels, the same unit
    report({"digital_accuracy": 0.9277777, "digital_train_s": 29.0, "hwa_accuracy": 0.9222222, "hwa_train_s": 34.0,
            "pcm_accuracy_1day": 0.925, "runs": None})
    summary = capsys.readouterr().out.splitlines()
    assert [line.split(" test accuracy: ")[1].split("  ")[0] for line in summary] == ["92.78 %", "92.22 %", "92.50 %"]
    assert summary[0].startswith("digital SNU ") and summary[1].startswith("PCM SNU, HWA-trained ")
