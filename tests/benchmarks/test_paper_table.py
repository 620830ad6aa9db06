"""benchmarks/paper_table.py: rows computed from sweep results, never typed in."""

import json
import math


def test_rows_from_sweep_results(tmp_path, load_benchmark):
    paper_table = load_benchmark("paper_table")
    hil = tmp_path / "jsb_hil_snu_tuned"
    hil.mkdir()
    results = [
        {"model": "snu", "hil-scheme": "reprogram", "seed": 0, "status": "ok", "test_nll": 8.0, "drift_31536000": 8.5,
         "test_nll_no_first": 7.9, "test_nll_per_sequence": 8.1, "test_nll_per_sequence_no_first": 8.2},
        {"model": "snu", "hil-scheme": "reprogram", "seed": 1, "status": "ok", "test_nll": 9.0, "drift_31536000": 9.5,
         "test_nll_no_first": 8.9, "test_nll_per_sequence": 9.1, "test_nll_per_sequence_no_first": 9.2},
        {"model": "snu", "hil-scheme": "reprogram", "seed": 2, "status": "failed"},
    ]
    (hil / "results.json").write_text(json.dumps(results))
    (tmp_path / "jsb_mixed").mkdir()
    mixed = [{"model": "snu", "hil-scheme": "mixed", "seed": 0, "status": "ok", "test_nll": 20.0}]
    (tmp_path / "jsb_mixed" / "results.json").write_text(json.dumps(mixed))
    table = paper_table.build(tmp_path)
    rows = {row["id"]: row for row in table["rows"]}
    row = rows["jsb_snu_hil"]
    assert row["metric"] == "test_nll" and row["seeds"] == [0, 1]
    assert row["per_seed"] == {"0": 8.0, "1": 9.0}
    assert row["mean"] == 8.5 and math.isclose(row["std"], math.sqrt(0.5))
    assert row["nll_per_sequence_no_first"]["mean"] == 8.7
    assert "benchmarks/sweeps/jsb_hil_snu_tuned.toml" in row["command"]
    # read from an older sweep's column name (seconds), named as now (1y)
    assert rows["jsb_snu_hil_1y"]["mean"] == 9.0 and rows["jsb_snu_hil_1y"]["column"] == "drift_1y"
    assert "--set data=JSB_FILE" in row["command"] and "--set data" not in rows["mnist_snu_7x256"]["command"]
    assert rows["jsb_snu_mixed"]["per_seed"] == {"0": 20.0} and rows["jsb_snu_mixed"]["std"] == 0.0
    assert rows["mnist_snu_7x256"]["mean"] is None and rows["mnist_snu_7x256"]["seeds"] == []
    assert rows["mnist_snu_7x256"]["paper"] == 0.9847
    for required in ("mnist_snu_7x256", "mnist_ssnu_4x256", "mnist_conv_snu", "jsb_snu", "jsb_ssnu", "jsb_snu_hil",
                     "jsb_ssnu_hil"):
        assert {"id", "metric", "mean", "std", "seeds", "per_seed", "paper", "command"} <= rows[required].keys()
    assert "| `jsb_snu_hil` |" in paper_table.markdown(table)


def test_rows_from_the_finished_trials_of_an_unfinished_sweep(tmp_path, load_benchmark):
    paper_table = load_benchmark("paper_table")
    for seed, accuracy in ((0, 0.98), (1, 0.96)):
        trial = tmp_path / "mnist_snu_full" / "trials" / f"seed={seed}"
        trial.mkdir(parents=True)
        (trial / "final.json").write_text(json.dumps({"metric": "accuracy", "test_accuracy": accuracy}))
    (tmp_path / "mnist_snu_full" / "trials" / "seed=2").mkdir()  # running: no final.json yet
    rows = {row["id"]: row for row in paper_table.build(tmp_path)["rows"]}
    assert rows["mnist_snu_7x256"]["per_seed"] == {"0": 0.98, "1": 0.96}
    assert math.isclose(rows["mnist_snu_7x256"]["mean"], 0.97)
