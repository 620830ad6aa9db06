"""benchmarks/mnist_paper_plot.py on hand-made sweep results: the right rows, means and stds."""

import json

import pytest


def test_rows_from_sweep_results(tmp_path, capsys, load_benchmark):
    script = load_benchmark("mnist_paper_plot")
    deep = [{"layers": [256] * 7, "seed": s, "status": "ok", "test_accuracy": a} for s, a in enumerate((0.90, 0.92, 0.94))]
    deep += [{"layers": [256] * 2, "seed": 0, "status": "ok", "test_accuracy": 0.95},
             {"layers": [256] * 2, "seed": 1, "status": "failed", "test_accuracy": 0.10}]
    conv = [{"conv-channels": [16, 32], "seed": 0, "status": "ok", "test_accuracy": 0.97}]
    # one trial with the column names of older sweeps (seconds), one with today's (1d, 1y)
    hwa = [{"seed": 0, "status": "ok", "test_accuracy": 0.90, "drift_0": 0.89, "drift_86400": 0.88, "drift_31536000": 0.87},
           {"seed": 1, "status": "ok", "test_accuracy": 0.94, "drift_0s": 0.93, "drift_1d": 0.92, "drift_1y": 0.91}]
    for folder, rows in (("sweep_mnist_deep_snu", deep), ("sweep_mnist_conv", conv), ("sweep_mnist_deep_snu_hwa", hwa)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results.json").write_text(json.dumps(rows))
    digital, hwa_rows, missing = script.collect(tmp_path)
    assert missing == ["sweep_mnist_deep_ssnu", "sweep_mnist_deep_ssnu_hwa"]
    by_label = {row["label"]: row for row in digital}
    assert by_label["SNU 7x256"]["mean"] == pytest.approx(92.0) and by_label["SNU 7x256"]["std"] == pytest.approx(2.0)
    assert by_label["SNU 2x256"]["n"] == 1  # the failed trial is left out
    assert by_label["conv SNU 16-32-256 (5k images)"]["paper"] == 99.21
    assert "SNU 256 (5k images)" not in by_label  # no dense trial in that sweep
    (row,) = hwa_rows
    assert row["columns"]["1 year"][0] == pytest.approx(89.0) and row["columns"]["0 s"][2] == 2
    out = tmp_path / "plot.png"
    script.main(["--sweeps", str(tmp_path), "--out", str(out)])
    text = capsys.readouterr().out
    assert "| SNU 7x256 | **92.00 +- 2.00** (n = 3) | 90.00, 92.00, 94.00 | 98.47 |" in text
    assert out.stat().st_size > 0


def test_running_hwa_sweep_contributes_its_evaluated_trials(tmp_path, load_benchmark):
    script = load_benchmark("mnist_paper_plot")
    for seed, acc in ((0, 0.70), (1, 0.74)):
        folder = tmp_path / "sweep_mnist_deep_ssnu_hwa" / "trials" / f"seed={seed}" / "eval"
        folder.mkdir(parents=True)
        drift = ({"0": acc - 0.01, "86400": acc, "3.1536e+07": acc - 0.02} if seed == 0  # an older run directory
                 else {"0s": acc - 0.01, "1d": acc, "1y": acc - 0.02})
        (folder / f"test_pcm_seed{seed}.json").write_text(json.dumps({"as_trained": acc, "drift": drift}))
    (tmp_path / "sweep_mnist_deep_ssnu_hwa" / "trials" / "seed=2").mkdir()  # still training: no eval yet
    _, hwa_rows, missing = script.collect(tmp_path)
    (row,) = hwa_rows
    assert row["label"] == "sSNU 4x256, HWA" and "sweep_mnist_deep_snu_hwa" in missing
    assert row["columns"]["as trained"][0] == pytest.approx(72.0) and row["columns"]["as trained"][2] == 2
    assert row["columns"]["1 year"][0] == pytest.approx(70.0) and row["columns"]["0 s"][0] == pytest.approx(71.0)
