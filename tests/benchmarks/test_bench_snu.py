"""Smoke runs of the SNU speed benchmarks at toy size (no timing assertions)."""

import json

import pytest
import torch


def toy_config(bench, **kwargs):
    return bench.BenchConfig(steps=3, batch=4, sizes=(12, 8, 6, 3), rate=0.5, threshold=0.2, rounds=2, best_of=1,
                             **kwargs)


def test_bench_snu_reports_every_path_rates_and_ratios(load_benchmark):
    bench = load_benchmark("bench_snu")
    results = bench.run(toy_config(bench))
    times = {key for key in results if key.endswith("_ms")}
    assert times == {f"{p}_ms" for p in bench.PATHS} | {"gemm_floor_ms"}
    assert all(results[key] > 0 for key in times)
    assert len(results["spike_rates"]) == 2 and all(0 < r <= 1 for r in results["spike_rates"])
    assert set(results["spike_rates_by_path"]) == set(bench.PATHS) - set(bench.DIGITAL_PATHS[1:])
    assert results["threads"] == 1
    for spread in results["ratios"].values():
        assert spread["min"] <= spread["median"] <= spread["max"]
    assert {"preset_hwa/digital", "digital/gemm_floor", "digital_dense_spikes/gemm_floor"} <= set(results["ratios"])
    assert set(results["targets"]) == set(bench.TARGETS)
    for name, target in results["targets"].items():
        assert target["met"] == (results["ratios"][name]["median"] <= bench.TARGETS[name])
    json.dumps(results)  # one JSON object
    assert "| preset_hwa |" in bench.markdown(results)


def test_cpu_clock_times_process_cpu_and_needs_one_thread(load_benchmark, monkeypatch, capsys):
    bench = load_benchmark("bench_snu")
    ticks = iter(range(0, 1000, 2))  # a fake CPU clock: every step takes 2 s
    monkeypatch.setitem(bench.CLOCKS, "cpu", lambda: next(ticks))
    assert bench._timed(lambda: None, "cpu") == 2000.0
    results = bench.run(toy_config(bench, paths=("digital",), clock="cpu"))
    assert results["clock"] == "cpu" and results["digital_ms"] == 2000.0
    assert "| path | CPU ms (median of 2 rounds)" in bench.markdown(results)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--clock", "cpu", "--threads", "2"])
    assert exc.value.code == 2
    assert "--clock cpu times one thread" in capsys.readouterr().err


def test_gemm_floor_covers_the_step_products(load_benchmark):
    bench = load_benchmark("bench_snu")
    config = toy_config(bench)
    names = [name for name, *_ in bench._gemm_operands(config)]
    assert len(names) == 8  # 3 forward (2 layers + readout), 5 backward (no input gradient for layer 1)
    floor = bench.GemmFloor(config)  # checks every backend against torch.mm
    assert floor.time_round(1) > 0 and set(floor.choice) == set(names)


def test_time_major_path_is_the_same_network_without_the_feature_major_layout(load_benchmark):
    bench = load_benchmark("bench_snu")
    torch.manual_seed(0)
    net = bench.SNUNetwork([128, 128, 128, 3], threshold=0.3)
    with torch.no_grad():  # weights on a 1/256 grid: exact currents from 0/1 spikes in either layout
        for layer in net.layers:
            layer.weight_ih.weight.copy_(torch.round(layer.weight_ih.weight * 256) / 256)
    x = torch.bernoulli(torch.full((6, 24, 128), 0.3))
    layouts = []
    hook = net.layers[1].register_forward_hook(lambda module, inputs, output: layouts.append(inputs[0].is_contiguous()))
    torch.testing.assert_close(bench.with_time_major(net, x), net(x), rtol=1e-5, atol=1e-6)
    hook.remove()
    feature_major = bench.linear_module.onednn_applies(x.reshape(-1, 128), net.layers[0].weight_ih.weight)
    assert layouts == [True, not feature_major]  # the second layer's input: the first layer's spikes


def test_naive_loop_is_the_same_network(load_benchmark):
    bench = load_benchmark("bench_snu")
    torch.manual_seed(0)
    net = bench.SNUNetwork([12, 6, 5, 3], threshold=0.2)
    x = torch.bernoulli(torch.full((4, 2, 12), 0.5))
    torch.testing.assert_close(bench.naive_forward(net, x), net(x))


def test_memory_of_one_path_in_process(load_benchmark):
    bench = load_benchmark("bench_snu")
    config = toy_config(bench)
    result = bench.memory_of_path(config, "digital")
    assert result["peak_rise_mib"] >= 0 and result["rss_before_mib"] > 0
    # at least the input (T, N, 12) and each SNU layer's spikes and outputs (T, N, 8) and (T, N, 6), float32
    steps, batch = config.steps, config.batch
    at_least = 4 * steps * batch * (12 + 2 * 8 + 2 * 6)
    assert at_least <= result["saved_mib"] * 2**20 < 4 * at_least


def test_saved_for_backward_counts_each_storage_once(load_benchmark):
    bench = load_benchmark("bench_snu")
    x = torch.randn(1024, requires_grad=True)  # 4 KiB
    with bench.SavedForBackward() as saved:
        y = x.exp()  # saves its result: 4 KiB
        z = x * x  # saves x (twice, one storage): 4 KiB
        w = x[:10].sin()  # saves a view of x: no new storage
        k = torch.ones(256) * 2.0  # nothing needs a gradient: nothing saved
    assert saved.mib * 2**20 == 2 * 4096
    (y.sum() + z.sum() + w.sum() + k.sum()).backward()  # the saved tensors are unpacked unchanged
    torch.testing.assert_close(x.grad[:10], x.detach()[:10].exp() + 2 * x.detach()[:10] + x.detach()[:10].cos())


def test_functional_benchmark_ways_agree(load_benchmark):
    assert load_benchmark("bench_snu_functional").check_equal(torch.device("cpu")) < 1e-12


def test_run_memory_reports_the_median_over_hash_seeds(load_benchmark, monkeypatch):
    bench = load_benchmark("bench_snu")
    rises = {"digital": [50.0, 70.0, 60.0], "preset_hwa": [90.0, 130.0, 100.0]}
    saved = {"digital": 20.0, "preset_hwa": 30.0}
    seen = []

    def fake_run(args, capture_output, text, check, env):
        path = args[args.index("--memory-path") + 1]
        seen.append((path, env["PYTHONHASHSEED"], env.get("MALLOC_MMAP_THRESHOLD_")))
        rise = rises[path][int(env["PYTHONHASHSEED"])]
        stdout = json.dumps({"rss_before_mib": 300.0, "peak_rise_mib": rise, "saved_mib": saved[path]})
        return type("Done", (), {"stdout": stdout})()

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    result = bench.run_memory(toy_config(bench, paths=("digital", "preset_hwa")), repeats=3)
    assert seen == [("digital", "0", None), ("preset_hwa", "0", None), ("digital", "1", None),
                    ("preset_hwa", "1", None), ("digital", "2", None), ("preset_hwa", "2", None)]  # interleaved
    assert result["paths"]["digital"] == {"peak_rise_mib": 60.0, "min_mib": 50.0, "max_mib": 70.0,
                                          "rss_before_mib": 300.0, "saved_mib": 20.0}
    assert result["ratio_to_digital"]["preset_hwa"] == 100.0 / 60.0
    assert result["saved_ratio_to_digital"]["preset_hwa"] == 1.5
    seen.clear()
    result = bench.run_memory(toy_config(bench, paths=("digital",)), repeats=1, mmap_threshold=131072)
    assert seen == [("digital", "0", "131072")] and result["malloc_mmap_threshold"] == 131072


def test_bench_peers_setting_at_toy_size_on_the_cpu_clock(load_benchmark):
    peers = load_benchmark("bench_peers")
    result = peers.run_setting(steps=2, batch=2, rounds=1, best_of=1, clock="cpu")
    assert result["steps"] == 2 and result["batch"] == 2 and result["ms"]["analog_snu"] > 0
    available = {name for name, build in peers.builders().items() if build is not None}
    assert set(result["ratio_to_analog_snu"]) == available - {"analog_snu"}
    assert all(result["ms"][name] is None for name in set(result["ms"]) - available)
    assert result["target"]["min_speedup"] == peers.TARGET_SPEEDUP
    assert set(result["target"]["median_speedup"]) == set(peers.TARGET_PEERS)


def test_bench_peers_target_needs_every_named_peer_at_the_speedup(load_benchmark):
    peers = load_benchmark("bench_peers")

    def ratios(**medians):
        return {name: {"min": m, "median": m, "max": m} for name, m in medians.items()}

    assert peers.target_check(ratios(snntorch_leaky=1.6, norse_lif_box=1.5, norse_lif=0.5))["met"] is True
    assert peers.target_check(ratios(snntorch_leaky=1.6, norse_lif_box=1.49))["met"] is False
    assert peers.target_check(ratios(snntorch_leaky=2.0))["met"] is None  # Norse not installed
    assert peers._all_met([True, True]) is True and peers._all_met([True, None, False]) is False
    assert peers._all_met([True, None]) is None


def test_torch_loops_path_runs_the_recurrence_without_the_compiled_loops(load_benchmark, monkeypatch):
    bench = load_benchmark("bench_snu")
    from analog_snu.functional import snu_loops
    from analog_snu.models import SNUNetwork

    def refuse(*args):
        raise AssertionError("compiled loop called")

    net = SNUNetwork([6, 5, 3], threshold=0.5)
    x = (torch.rand(4, 2, 6) < 0.5).float()
    expected = net(x)
    for name in ("spike_forward", "recurrence_backward"):
        monkeypatch.setattr(snu_loops, name, refuse)
    out = bench.with_torch_loops(net, x)
    out.sum().backward()  # the backward too follows the forward's choice
    torch.testing.assert_close(out, expected)
    with pytest.raises(AssertionError, match="compiled loop called"):
        net(x)


def test_periphery_accuracy_compares_means_within_standard_errors(load_benchmark):
    bench = load_benchmark("periphery_accuracy")

    def runs(*accuracies):
        return [{"seed": i, "test_accuracy": a, "cpu_s": 1.0} for i, a in enumerate(accuracies)]

    close = bench.summarise({"compiled": runs(92.0, 93.0, 94.0), "torch": runs(92.5, 93.5, 94.5)}, bound=3.0)
    assert close["difference"] == -0.5 and close["within_bound"] is True
    assert abs(close["standard_error"] - (2 * 1.0 / 3) ** 0.5) < 1e-12  # std 1 on both sides, 3 seeds
    far = bench.summarise({"compiled": runs(80.0, 80.5, 81.0), "torch": runs(92.0, 92.5, 93.0)}, bound=3.0)
    assert far["within_bound"] is False
    assert bench.summarise({"compiled": runs(90.0), "torch": runs(91.0)}, bound=3.0)["within_bound"] is None


def test_periphery_parts_times_each_part_and_restores_it(load_benchmark):
    parts = load_benchmark("periphery_parts")
    bench = load_benchmark("bench_snu")
    config = toy_config(bench, paths=("preset_hwa",))
    x, labels = bench.make_input(config)
    forward, net = bench.build_paths(config)["preset_hwa"]
    originals = [owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                 for owner, name, _ in parts.PARTS]
    with parts.Timers() as timers:
        bench.train_step(forward, net, x, labels)
    for label in ("tile forward (all of it)", "    output stage loop", "compiled backward (GEMMs + loops)"):
        assert timers.calls[label] > 0 and timers.ms[label] >= 0
    assert [owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            for owner, name, _ in parts.PARTS] == originals


def test_periphery_parts_times_the_general_path_of_soft_inputs(load_benchmark):
    parts = load_benchmark("periphery_parts")
    bench = load_benchmark("bench_snu")
    config = toy_config(bench, paths=("preset_hwa_ssnu", "preset_hwa_ssnu_torch_general"))
    x, labels = bench.make_input(config)
    paths = bench.build_paths(config)
    labels_general = ("  compiled general forward (GEMMs + loops)", "    input stage loop (general)",
                      "    output stage loop (general)", "compiled general backward (GEMMs + loops)",
                      "  input-gradient loop (general)")
    with parts.Timers() as timers:
        bench.train_step(*paths["preset_hwa_ssnu"], x, labels)
        assert all(timers.calls[label] > 0 for label in labels_general)
        timers.reset()
        bench.train_step(*paths["preset_hwa_ssnu_torch_general"], x, labels)  # the ablation: torch operations
        assert not any(timers.calls[label] for label in labels_general)


def test_dense_spikes_path_is_the_same_network_with_dense_products(load_benchmark):
    bench = load_benchmark("bench_snu")
    torch.manual_seed(0)
    net = bench.SNUNetwork([128, 128, 128, 3], threshold=0.3)
    with torch.no_grad():  # weights on a 1/256 grid: exact currents from 0/1 spikes whatever the summation order
        for layer in net.layers:
            layer.weight_ih.weight.copy_(torch.round(layer.weight_ih.weight * 256) / 256)
    x = torch.bernoulli(torch.full((6, 24, 128), 0.05))  # sparse enough for the gather-sums
    taken = []
    hooks = [layer.register_forward_hook(lambda module, inputs, output: taken.append(output[0].is_contiguous()))
             for layer in net.layers]
    dense = bench.with_dense_spikes(net, x)
    assert taken == [False, False]  # dense: both layers' currents and spikes feature-major (oneDNN's layout)
    sparse = net(x)
    assert taken[2:] == [True, True]  # gather-sums: row-major
    for hook in hooks:
        hook.remove()
    # the same spikes; the time mean sums them in the other layout's order (float rounding only)
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-6)


def test_table_of_a_run_without_the_digital_path(load_benchmark):
    bench = load_benchmark("bench_snu")
    table = bench.markdown(bench.run(toy_config(bench, paths=("preset_hwa",))))
    assert "| preset_hwa |" in table and table.splitlines()[-1].endswith("| - |")
