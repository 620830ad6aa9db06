"""Smoke run of benchmarks/bench_forgetting.py at toy size, and its bookkeeping (not an accuracy test)."""

import json

import pytest
import torch


def test_permutations_are_seeded_and_task_0_is_plain_mnist(load_benchmark):
    bench = load_benchmark("bench_forgetting")
    perms = bench.permutations(4, 784, seed=3)
    assert torch.equal(perms[0], torch.arange(784))
    for perm in perms[1:]:
        assert torch.equal(perm.sort().values, torch.arange(784)) and not torch.equal(perm, torch.arange(784))
    assert all(torch.equal(a, b) for a, b in zip(perms, bench.permutations(4, 784, seed=3)))
    assert not torch.equal(perms[1], bench.permutations(4, 784, seed=4)[1])


def test_quick_run_writes_the_accuracy_matrix_and_forgetting(tmp_path, load_benchmark):
    bench = load_benchmark("bench_forgetting")
    out = tmp_path / "forgetting"
    bench.main(["--quick", "--tasks", "3", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    runs = {r["optimizer"]: r for r in report["runs"]}
    assert set(runs) == {"sgd", "grapes", "sgd-2xlr"}
    assert runs["sgd-2xlr"]["lr"] == pytest.approx(2 * runs["sgd"]["lr"])
    for run in runs.values():
        matrix = run["accuracy_matrix"]
        assert [len(row) for row in matrix] == [1, 2, 3]  # after task t: tested on tasks 0..t
        assert all(0.0 <= a <= 1.0 for row in matrix for a in row)
        assert run["forgetting"] == pytest.approx([matrix[0][0] - matrix[2][0], matrix[1][1] - matrix[2][1]])
        assert run["final_mean_accuracy"] == pytest.approx(sum(matrix[2]) / 3)
    # same seed, data and initial weights: GRAPES changes the trajectory
    assert runs["sgd"]["accuracy_matrix"] != runs["grapes"]["accuracy_matrix"]
