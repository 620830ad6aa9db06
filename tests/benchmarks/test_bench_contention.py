"""bench_contention at toy size: its commands, environments, result parsing, ratios and interleaving (no timings asserted)."""

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture
def bench(load_benchmark):
    return load_benchmark("bench_contention")


def test_settings_are_environments(bench):
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "7", "OPENBLAS_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "2"}
    assert bench.setting_env("default", base) == {"PATH": "/bin"}  # the package decides
    one = {"PATH": "/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert bench.setting_env("one", base) == one
    assert bench.setting_env("all", base, cpus=6) == {k: "6" if k != "PATH" else v for k, v in one.items()}


def test_commands(bench, tmp_path):
    config = bench.ContentionConfig(steps=5, toy=True)
    network = bench.command("network_hwa", config, tmp_path)
    assert network[0] == sys.executable and Path(network[1]).name == "bench_contention.py"
    assert network[2:] == ["--child", "network_hwa", "--steps", "5", "--toy"]
    hwa = bench.command("digits_hwa", config, tmp_path / "run")
    assert hwa[:2] == [sys.executable, "-c"] and hwa[3:7] == ["train", "--task", "digits", "--out"]
    assert " ".join(hwa).count("--device pcm_joshi2020 --training hwa") == 1
    digital = bench.command("digits_digital", bench.ContentionConfig(), tmp_path / "run")
    assert "--device" not in digital and "--train-limit" not in digital


def test_results_are_parsed(bench):
    child = json.dumps({"seconds": 1.5, "threads": 2, "decision": "auto: ..."})
    assert bench.parse_result("network_digital", 9.0, "log line\n" + child + "\n", "") == {"seconds": 1.5, "threads": 2}
    assert bench.parse_result("digits_hwa", 8.0, "digits snu (hwa): test accuracy 0.9\n",
                              'epoch 1\n{"threads": 1}\n') == {"seconds": 8.0, "threads": 1}
    with pytest.raises(RuntimeError, match="digits_digital: no result line"):
        bench.parse_result("digits_digital", 8.0, "", "Traceback ...")


def test_ratios_within_rounds(bench):
    times = {"busy default": [2.0, 3.0], "busy one": [1.6, 2.0],
             "quiet default": [1.0, 1.1], "quiet one": [1.0, 1.2], "quiet all": [0.9, 1.0]}
    ratios = bench.ratios(times)
    assert ratios["busy default/one"] == pytest.approx({"min": 1.25, "median": 1.375, "max": 1.5})
    assert ratios["quiet default/best"] == pytest.approx({"min": 1.1, "median": (1.0 / 0.9 + 1.1) / 2, "max": 1.0 / 0.9})


def test_an_interleaved_run_starts_the_busy_process_for_the_busy_case_only(bench):
    calls, state = [], {"busy": False}
    seconds = {("quiet", "default"): 1.0, ("quiet", "one"): 1.0, ("quiet", "all"): 0.9,
               ("busy", "default"): 1.2, ("busy", "one"): 1.0}

    class Busy:
        def __init__(self, settle):
            pass

        def __enter__(self):
            state["busy"] = True

        def __exit__(self, *exc):
            state["busy"] = False

    def timer(workload, setting, config, out):
        case = "busy" if state["busy"] else "quiet"
        calls.append((workload, case, setting))
        return {"seconds": seconds[case, setting], "threads": 1}

    config = bench.ContentionConfig(rounds=2, workloads=("network_digital",))
    result = bench.run(config, timer=timer, busy=Busy)
    order = [(c, s) for _, c, s in calls]
    assert order == [("quiet", "default"), ("quiet", "one"), ("quiet", "all"), ("busy", "default"), ("busy", "one"),
                     ("busy", "one"), ("busy", "default"), ("quiet", "all"), ("quiet", "one"), ("quiet", "default")]
    entry = result["workloads"]["network_digital"]
    assert entry["ratios"]["busy default/one"]["median"] == pytest.approx(1.2)
    assert entry["ratios"]["quiet default/best"]["median"] == pytest.approx(1.0 / 0.9)
    assert result["within_target"]["network_digital"] == {"busy default/one": True, "quiet default/best": False}
    json.dumps(result)  # one JSON object
    assert "| network_digital | 1.20 (1.20-1.20) ok | 1.11 (1.11-1.11) MISSED |" in bench.table(result)


@pytest.mark.parametrize("workload", ["network_digital", "digits_digital"])
def test_a_toy_timing_runs_in_its_own_process(bench, tmp_path, workload):
    timed = bench.run_process(workload, "one", bench.ContentionConfig(steps=2, toy=True), tmp_path / "run")
    assert timed["seconds"] > 0 and timed["threads"] == 1
