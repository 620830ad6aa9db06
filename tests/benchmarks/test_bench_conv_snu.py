"""Smoke run of the conv-SNU speed benchmark at toy size (no timing assertions)."""

import json
import os

import pytest


def test_bench_conv_snu_times_both_paths_with_firing_layers_and_restores_the_switch(load_benchmark, monkeypatch):
    bench = load_benchmark("bench_conv_snu")
    monkeypatch.delenv("ANALOG_SNU_TORCH_LOOPS", raising=False)
    config = bench.BenchConfig(steps=3, batch=2, side=16, channels=(2, 3), hidden=(4,), classes=3, rate=2.0,
                               lit=0.5, threshold=0.1, rounds=2)
    result = bench.run(config)
    assert set(result["ms_per_image"]) == set(result["cpu_ms_per_image"]) == set(bench.PATHS)
    assert all(v > 0 for v in result["ms_per_image"].values())
    for spread in result["ratio_compiled_over_torch_loops"].values():
        assert spread["min"] <= spread["median"] <= spread["max"]
    # both paths train the same network on the same input: the same spike rates, every layer firing
    assert result["spike_rates"]["compiled"] == pytest.approx(result["spike_rates"]["torch_loops"])
    assert len(result["spike_rates"]["compiled"]) == 3 and all(r > 0 for r in result["spike_rates"]["compiled"])
    assert result["threads"] == 1 and "ANALOG_SNU_TORCH_LOOPS" not in os.environ
    json.dumps(result)
    assert "| compiled |" in bench.table(result)


def test_bench_conv_snu_refuses_bad_arguments(load_benchmark, capsys):
    bench = load_benchmark("bench_conv_snu")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rounds", "0"])
    assert exc.value.code == 2
    assert "must be positive" in capsys.readouterr().err
