"""Smoke run of benchmarks/bench_grapes.py at toy size (not a timing or accuracy test)."""

import json


def test_quick_benchmark_writes_results(tmp_path, capsys, load_benchmark):
    bench = load_benchmark("bench_grapes")
    out = tmp_path / "grapes"
    bench.main(["--quick", "--seeds", "0", "1", "--modes", "digital", "pulsed", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 1 + 2 * 2 * 3  # header + nets x modes x opts
    assert len(report["runs"]) == 2 * 2 * 3 * 2
    for run in report["runs"]:
        assert len(run["test_accuracy"]) == report["config"]["epochs"][run["mode"]]
        assert all(0.0 <= a <= 1.0 for a in run["test_accuracy"])
    losses = {(r["net"], r["mode"], r["optimizer"], r["seed"]): r["train_loss"] for r in report["runs"]}
    # same seed, data and initial weights: GRAPES changes the training trajectory
    assert losses[("mlp", "digital", "sgd", 0)][0] != losses[("mlp", "digital", "grapes-propagating", 0)][0]
    assert losses[("mlp", "pulsed", "sgd", 0)][-1] != losses[("mlp", "pulsed", "grapes-local", 0)][-1]
    assert "epochs to target" in capsys.readouterr().out


def test_quick_benchmark_rules_depths_and_lr_sweep(tmp_path, capsys, load_benchmark):
    bench = load_benchmark("bench_grapes")
    out = tmp_path / "rules"
    bench.main(["--quick", "--nets", "mlp", "--modes", "digital", "--seeds", "0", "1", "--depths", "2", "3",
                "--width", "8", "--optimizers", "sgd", "fa", "dfa-grapes", "--lr-sweep", "0.05", "0.2",
                "--init", "he_uniform", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert len(report["runs"]) == 2 * 2 * 2 * 3  # depths x lrs x seeds x rules
    assert {r["depth"] for r in report["runs"]} == {2, 3}
    assert all(len(r["valid_accuracy"]) == len(r["test_accuracy"]) for r in report["runs"])
    best = report["best"]
    assert len(best) == 2 * 3  # one lr per (depth, rule)
    for row in best:  # the chosen lr has the best mean final validation accuracy of its group
        group = [s for s in report["summary"] if (s["depth"], s["optimizer"]) == (row["depth"], row["optimizer"])]
        assert row["valid_mean"] == max(s["valid_mean"] for s in group)
    assert "best lr" in capsys.readouterr().out


def test_diverged_grapes_run_is_recorded_not_fatal(load_benchmark):
    bench = load_benchmark("bench_grapes")
    config = bench.quick_config("unused")
    split = bench.load_digits()
    data = (split["train"][0][:64], split["train"][1][:64], split["test"][0][:32], split["test"][1][:32])
    result = bench.run_one("mlp", "digital", "grapes-propagating", 0, config, data, lr=1e30)
    assert result["diverged_at_epoch"] in (1, 2)  # detected when the next batch reads the weights
    assert len(result["test_accuracy"]) == config.epochs["digital"]
    assert result["train_loss"][-1] != result["train_loss"][-1]  # NaN after divergence


def test_quick_benchmark_cnn_under_every_rule(tmp_path, load_benchmark):
    bench = load_benchmark("bench_grapes")
    out = tmp_path / "cnn"
    bench.main(["--quick", "--nets", "cnn", "--modes", "digital", "hwa", "--seeds", "0", "--depths", "2",
                "--optimizers", "sgd", "grapes-propagating", "fa", "dfa", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert len(report["runs"]) == 2 * 4  # modes x rules; --depths does not apply to the CNN
    assert {r["depth"] for r in report["runs"]} == {None}
    losses = {(r["mode"], r["optimizer"]): r["train_loss"][0] for r in report["runs"]}
    assert len(set(losses.values())) == len(losses)  # every rule trains the CNN its own way
    assert out.with_suffix(".png").stat().st_size > 0
