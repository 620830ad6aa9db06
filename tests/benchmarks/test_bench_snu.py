"""Smoke runs of the SNU speed benchmarks at toy size (no timing assertions)."""

import importlib.util
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_snu_reports_every_path():
    bench = load("bench_snu")
    results = bench.run(bench.BenchConfig(steps=3, batch=2, sizes=(12, 6, 5, 3), repeats=1))
    assert set(results) == {"digital_ms", "torch_inference_ms", "cpp_inference_ms", "cpp_float_ms", "naive_digital_ms"}
    assert all(value > 0 for value in results.values())


def test_naive_loop_is_the_same_network():
    bench = load("bench_snu")
    torch.manual_seed(0)
    net = bench.SNUNetwork([12, 6, 5, 3], threshold=0.2)
    x = torch.bernoulli(torch.full((4, 2, 12), 0.5))
    torch.testing.assert_close(bench.naive_forward(net, x), net(x))


def test_functional_benchmark_ways_agree():
    assert load("bench_snu_functional").check_equal(torch.device("cpu")) < 1e-12
