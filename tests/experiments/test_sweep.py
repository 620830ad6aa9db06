"""Sweeps: expansion (grid x seeds, dotted device keys), refusals before anything runs, results and
summary tables, plots, idempotent reruns, a killed trial resumed, trial == direct train, one run on Ray."""

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap

import pytest
import tomli_w
import torch
from PIL import Image

from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.experiments import evaluate_run, load_run, train_run
from analog_snu.experiments.checkpoint import model_tensors
from analog_snu.experiments.sweep import _claim, run_sweep
from analog_snu.experiments.sweep_results import drift_column
from analog_snu.experiments.sweep_spec import expand, parse_sweep_spec, read_sweep_spec, trial_id
from analog_snu.pcm import preset

TINY_BASE = {"task": "digits", "layers": [8], "train-limit": 64, "epochs": 2}


def spec(base=None, grid=None, seeds=(0,), **extra):
    return parse_sweep_spec({"seeds": list(seeds), "base": {**TINY_BASE, **(base or {})}, "grid": grid or {}, **extra})


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_same_weights(a, b):
    expected, got = model_tensors(a), model_tensors(b)
    assert sorted(expected) == sorted(got)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


# --- expansion -----------------------------------------------------------------------------------------


def test_expansion_is_the_grid_times_the_seeds_with_dotted_device_keys():
    s = spec(base={"device": "pcm_joshi2020", "training": "hwa"},
             grid={"device.drift.scale": [0.5, 2.0], "lr": [0.01, 0.001]}, seeds=(3, 4))
    trials = expand(s)
    assert s.size == 8
    expected = [(scale, lr, seed) for scale in (0.5, 2.0) for lr in (0.01, 0.001) for seed in (3, 4)]
    got = [(t.config.device.drift.scale, t.config.training.lr, t.config.training.seed) for t in trials]
    assert got == expected
    joshi = preset("pcm_joshi2020")
    for trial in trials:  # only the swept field differs from the preset
        assert trial.config.device.updated({"drift": {"scale": 1.0}}) == joshi
        assert trial.config.device_source == "pcm_joshi2020" and trial.config.training.mode == "hwa"
    assert trials[0].id == "device.drift.scale=0.5_lr=0.01_seed=3"
    assert len({t.id for t in trials}) == 8


def test_nested_toml_tables_are_dotted_keys(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent("""
        seeds = [0]
        [base]
        task = "digits"
        device = "pcm_joshi2020"
        train_limit = 32
        "device.read_noise.scale" = 2.0
        [grid.device.programming]
        scale = [0.5, 1.5]
        [eval]
        times = [86400, 31536000]
    """))
    s = read_sweep_spec(path)
    assert list(s.grid) == ["device.programming.scale"] and s.base["device.read_noise.scale"] == 2.0
    trials = expand(s)
    assert [t.config.device.programming.scale for t in trials] == [0.5, 1.5]
    assert all(t.config.device.read_noise.scale == 2.0 and t.config.task.train_limit == 32 for t in trials)
    assert s.eval.times == [86400.0, 31536000.0]


def test_long_trial_ids_are_cut_and_hashed():
    point = {"device.periphery.some_long_name": 0.123456789, "x" * 150: 1}
    tid = trial_id(point, 2)
    assert len(tid) <= 120 and tid.endswith("_seed=2")
    assert tid != trial_id({**point, "x" * 150: 2}, 2)


@pytest.mark.parametrize("data, match", [
    ({"seeds": [0], "base": TINY_BASE, "grid": {"seed": [1, 2]}}, r"\[grid\] sets 'seed'; the seeds come from"),
    ({"seeds": [0], "base": TINY_BASE, "grid": {"lr": []}}, r"grid key 'lr' has no values"),
    ({"seeds": [0], "base": TINY_BASE, "grid": {"lr": [0.1, 0.1]}}, r"grid key 'lr' repeats a value"),
    ({"seeds": [0, 0], "base": TINY_BASE}, r"seeds must not repeat"),
    ({"seeds": [], "base": TINY_BASE}, r"seeds: List should have at least 1 item"),
    ({"seeds": [0], "base": TINY_BASE, "grids": {}}, r"unknown key\(s\) \['grids'\]"),
    ({"seeds": [0], "base": TINY_BASE, "grid": {"lr": 0.1}}, r"grid.lr: Input should be a valid list"),
    ({"seeds": [0], "base": {**TINY_BASE, "lr": 0.1}, "grid": {"lr": [0.2]}}, r"'lr' is in both \[base\] and \[grid\]"),
    ({"seeds": [0], "base": TINY_BASE, "grid": {"train_limit": [1], "task.train_limit": [2]}},
     r"keys 'train_limit' and 'task.train_limit' name the same field"),
    ({"seeds": [0], "base": TINY_BASE, "eval": {"times": [-1]}}, r"times must be finite and >= 0"),
])
def test_bad_specs_are_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_sweep_spec(data)


@pytest.mark.parametrize("base, grid, extra, match", [
    ({"device": "pcm_joshi2020"}, {"device.drift.scal": [1.0]}, {}, r"device.drift.scal=1.0, seed 0: .*unknown key '(device\.)?drift.scal'; valid keys of (device\.)?drift: \[.*'scale'\]"),
    ({}, {"recurrent": ["false"]}, {}, r"seed 0: model.recurrent: Input should be a valid boolean"),
    ({}, {"device.drift.scale": [1.0]}, {}, r"the run has no PCM device"),
    ({}, {}, {"eval": {"times": [1.0]}}, r"is digital: \[eval\] needs device ="),
    ({"device": "pcm_joshi2020"}, {}, {"eval": {"times": [1.0], "device": "no_such_preset"}}, r"no_such_preset"),
])
def test_invalid_trials_are_refused_before_anything_runs(tmp_path, base, grid, extra, match):
    with pytest.raises(ConfigError, match=match):
        run_sweep(spec(base=base, grid=grid, **extra), tmp_path / "sweep", use_ray=False, progress=False)
    assert not (tmp_path / "sweep").exists()


def test_spec_file_problems_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep spec .*missing.toml does not exist"):
        read_sweep_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seeds = [0\n")
    with pytest.raises(ConfigError, match=r"bad.toml is not valid TOML"):
        read_sweep_spec(bad)


# --- running -------------------------------------------------------------------------------------------


def test_trials_equal_direct_train_tables_plots_and_an_idempotent_rerun(tmp_path, capsys):
    s = spec(grid={"lr": [0.01, 0.002]}, seeds=(0, 1))
    out = tmp_path / "sweep"
    result = run_sweep(s, out, use_ray=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 4 and lines[-1].startswith("trial 4/4 [lr=0.002, seed=1]: test accuracy ") and "ETA" in lines[0]
    assert [r["state"] for r in result.rows] == ["trained"] * 4 and not result.failed

    # a trial equals `analog-snu train` with the same configuration, bit for bit (digital)
    trial = out / "trials" / "lr=0.002_seed=1"
    assert main(["train", "--task", "digits", "--layers", "8", "--train-limit", "64", "--epochs", "2", "--lr", "0.002",
                 "--seed", "1", "--out", str(tmp_path / "direct"), "--quiet"]) == 0
    direct_final = json.loads((tmp_path / "direct" / "final.json").read_text())
    trial_final = json.loads((trial / "final.json").read_text())
    assert {k: v for k, v in trial_final.items() if k != "mean_train_s_per_epoch"} == \
        {k: v for k, v in direct_final.items() if k != "mean_train_s_per_epoch"}
    _assert_same_weights(load_run(tmp_path / "direct")[0], load_run(trial)[0])

    # results: a column per grid key, seed, and every key of final.json, equal to the trial's files
    rows = rows_of(out / "results.csv")
    assert list(rows[0])[:4] == ["lr", "seed", "trial", "status"]
    assert set(trial_final) <= set(rows[0])
    for row in rows:
        final = json.loads((out / "trials" / row["trial"] / "final.json").read_text())
        assert float(row["test_accuracy"]) == final["test_accuracy"] and float(row["lr"]) in (0.01, 0.002)
    assert json.loads((out / "results.json").read_text())[3]["test_accuracy"] == trial_final["test_accuracy"]

    # summary: mean and sample std over the two seeds
    summary = rows_of(out / "summary.csv")
    assert [(float(r["lr"]), int(r["n"])) for r in summary] == [(0.01, 2), (0.002, 2)]
    for entry in summary:
        values = [float(r["test_accuracy"]) for r in rows if r["lr"] == entry["lr"]]
        assert float(entry["test_accuracy_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert float(entry["test_accuracy_std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
    with Image.open(out / "plot_lr.png") as image:
        assert min(image.info["dpi"]) >= 149.9

    # calling the same sweep again reruns nothing
    stamp = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/checkpoint.safetensors")}
    again = run_sweep(s, out, use_ray=False, progress=False)
    assert [r["state"] for r in again.rows] == ["done"] * 4
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert [r["test_accuracy"] for r in again.rows] == [r["test_accuracy"] for r in result.rows]

    # the thread count is not part of a run: a spec that only sets it reruns nothing
    threaded = run_sweep(spec(base={"threads": 1}, grid={"lr": [0.01, 0.002]}, seeds=(0, 1)), out, use_ray=False,
                         progress=False)
    assert [r["state"] for r in threaded.rows] == ["done"] * 4

    # a changed spec that would reuse a trial directory for another config is refused up front
    with pytest.raises(ConfigError, match=r"holds a run of another config \(fields \['model.layers'\]\)"):
        run_sweep(spec(base={"layers": [9]}, grid={"lr": [0.01]}), out, use_ray=False, progress=False)


_KILL_AFTER_EPOCH_1 = """
import os, signal, sys
from analog_snu.experiments import RunConfig, train_run
import json
config = RunConfig.from_dict(json.loads(sys.argv[1]))
def hook(epoch, row):
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)
train_run(config, sys.argv[2], progress=False, on_epoch_end=hook)
"""


def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path):
    s = spec(base={"epochs": 3}, seeds=(5,))
    (trial,) = expand(s)
    _claim(tmp_path / "sweep")  # the sweep directory as a first call leaves it
    run_dir = tmp_path / "sweep" / "trials" / trial.id
    killed = subprocess.run([sys.executable, "-c", _KILL_AFTER_EPOCH_1, json.dumps(trial.config.to_dict()), str(run_dir)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (run_dir / "checkpoint.safetensors").is_file() and not (run_dir / "final.json").exists()

    result = run_sweep(s, tmp_path / "sweep", use_ray=False, progress=False)  # the dead process's lock is gone
    assert result.rows[0]["state"] == "resumed" and result.rows[0]["status"] == "ok"
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    uninterrupted = train_run(trial.config, tmp_path / "direct", progress=False)
    _assert_same_weights(uninterrupted.model, load_run(run_dir)[0])


def test_eval_times_give_drift_columns_equal_to_evaluate_run(tmp_path):
    s = spec(base={"device": "pcm_joshi2020", "epochs": 1, "train-limit": 48},
             grid={"device.programming.scale": [0.5, 2.0]}, eval={"times": ["1d", 31536000]})
    assert s.eval.times == [86400.0, 31536000.0]
    out = tmp_path / "sweep"
    result = run_sweep(s, out, use_ray=False, progress=False)
    assert [drift_column(86400), drift_column(31536000)] == ["drift_1d", "drift_1y"]
    for row in result.rows:
        again = evaluate_run(out / "trials" / row["trial"], drift_times=[86400, 31536000], seed=0)
        assert row["drift_1d"] == again["drift"]["1d"] and row["drift_1y"] == again["drift"]["1y"]
        assert 0.0 <= row["drift_1y"] <= 1.0
    summary = rows_of(out / "summary.csv")
    assert {"drift_1d_mean", "drift_1y_std"} <= set(summary[0])
    # an older run directory keyed its eval results in seconds ("86400", "3.1536e+07"): still read, not redone
    for path in out.glob("trials/*/eval/*.json"):
        data = json.loads(path.read_text())
        data["drift"] = {"86400": data["drift"]["1d"], "3.1536e+07": data["drift"]["1y"]}
        path.write_text(json.dumps(data))
    again = run_sweep(s, out, use_ray=False, progress=False)
    assert [r["state"] for r in again.rows] == ["done", "done"]
    assert [(r["drift_1d"], r["drift_1y"]) for r in again.rows] == [(r["drift_1d"], r["drift_1y"]) for r in result.rows]


def test_a_foreign_output_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"is not a sweep directory of analog-snu .* not empty \(notes.txt\)"):
        run_sweep(spec(), tmp_path, use_ray=False, progress=False)


def test_cli_sweep_on_ray_equals_the_in_process_sweep(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent("""
        seeds = [0]
        [base]
        task = "digits"
        layers = [8]
        train-limit = 64
        epochs = 1
        [grid]
        lr = [0.01, 0.002]
    """))
    assert main(["sweep", str(path), "--out", str(tmp_path / "ray"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "trial 2/2" in out and "lr=0.01 (n=1): test_accuracy" in out
    local = run_sweep(read_sweep_spec(path), tmp_path / "local", use_ray=False, progress=False)
    on_ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert [r["test_accuracy"] for r in on_ray] == [r["test_accuracy"] for r in local.rows]
    assert [r["test_loss"] for r in on_ray] == [r["test_loss"] for r in local.rows]


def test_cli_sweep_in_process_starts_no_ray(tmp_path, capsys):
    import ray

    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent("""
        seeds = [0, 1]
        [base]
        task = "digits"
        layers = [8]
        train-limit = 64
        epochs = 1
    """))
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--in-process"]) == 0
    assert "trial 2/2" in capsys.readouterr().out and not ray.is_initialized()
    rows = json.loads((tmp_path / "s" / "results.json").read_text())
    for row in rows:  # each row is its trial's own run directory's result
        final = json.loads((tmp_path / "s" / "trials" / row["trial"] / "final.json").read_text())
        assert row["test_accuracy"] == final["test_accuracy"]
    assert [row["seed"] for row in rows] == [0, 1]
    assert main(["sweep", str(path), "--out", str(tmp_path / "t"), "--in-process", "--workers", "2"]) != 0
    assert "--in-process runs without Ray: --address and --workers do not apply" in capsys.readouterr().err


def test_cli_refuses_bad_workers(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "expected an int >= 1, got 0" in capsys.readouterr().err


def test_plot_joins_numeric_values_only(monkeypatch):
    from analog_snu.experiments import sweep_results

    figures = []
    monkeypatch.setattr(sweep_results, "figure_png", lambda fig, dpi: figures.append(fig) or b"png")
    summary = [{"model": m, "lr": 0.1, "test_accuracy_mean": a, "test_accuracy_std": 0.01}
               for m, a in (("snu", 0.9), ("ssnu", 0.8))]
    sweep_results._plot("model", ["snu", "ssnu"], summary, ["model"], ["test_accuracy"], "accuracy", 50)
    numeric = [{"lr": lr, "test_accuracy_mean": a, "test_accuracy_std": 0.0} for lr, a in ((0.1, 0.9), (0.2, 0.8))]
    sweep_results._plot("lr", [0.1, 0.2], numeric, ["lr"], ["test_accuracy"], "accuracy", 50)
    categorical, ordered = (fig.axes[0].lines[0] for fig in figures)  # the data line (caps come after)
    assert categorical.get_linestyle() == "None" and ordered.get_linestyle() == "-"
    assert list(categorical.get_ydata()) == [0.9, 0.8]
    assert [t.get_text() for t in figures[0].axes[0].get_xticklabels()] == ["snu", "ssnu"]
    sweep_results._plot("layers", [[], [4, 4]], [{"layers": [], "test_accuracy_mean": 0.5, "test_accuracy_std": 0.0}],
                        ["layers"], ["test_accuracy"], "accuracy", 50)
    assert [t.get_text() for t in figures[-1].axes[0].get_xticklabels()] == ["[]", "4-4"]


@pytest.mark.parametrize("grid, seeds, trials, shape", [
    ({"lr": list(range(1, 1001)), "decay": [i / 1000 for i in range(1000)]}, [0], "1,000,000", "1000 lr x 1000 decay x 1 seeds"),
    ({"lr": list(range(1, 102))}, list(range(100)), "10,100", "101 lr x 100 seeds"),
    ({}, list(range(10_001)), None, None),
])
def test_an_unbounded_grid_is_refused_before_any_trial_config_is_built(tmp_path, monkeypatch, grid, seeds, trials, shape):
    import analog_snu.experiments.sweep_spec as sweep_spec

    built = []
    monkeypatch.setattr(sweep_spec, "build_config", lambda **kw: built.append(kw))
    path = tmp_path / "big.toml"
    path.write_text(tomli_w.dumps({"seeds": seeds, "base": TINY_BASE, "grid": grid}))
    match = rf"the sweep has {trials} trials \({shape}\); a sweep runs at most 10,000" if trials else \
        r"seeds: List should have at most 10000 items"
    with pytest.raises(ConfigError, match=match):
        run_sweep(read_sweep_spec(path), tmp_path / "sweep", use_ray=False, progress=False)
    assert built == [] and not (tmp_path / "sweep").exists()


def test_a_sweep_at_the_bound_is_accepted():
    spec = parse_sweep_spec({"seeds": list(range(100)), "base": TINY_BASE, "grid": {"lr": list(range(1, 101))}})
    assert spec.size == 10_000


def test_trials_side_by_side_share_the_cpus(monkeypatch):
    from analog_snu.experiments import sweep

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sweep, "usable_cpus", lambda: 16)
    assert sweep._cpu_share(None) is None and sweep._cpu_share(1) is None  # one at a time: all of them
    assert (sweep._cpu_share(3), sweep._cpu_share(16), sweep._cpu_share(40)) == (5, 1, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert sweep._cpu_share(3) is None  # the user's thread count decides, in every trial


def test_a_trial_runs_within_its_share(monkeypatch):
    from analog_snu import threads
    from analog_snu.experiments import sweep

    seen = {}

    def trial(payload):
        seen.update(cpus=threads.usable_cpus(), omp=os.environ.get("OMP_NUM_THREADS"))
        return {}

    monkeypatch.setattr(sweep, "_run_trial", trial)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in the worker of a one-CPU task
    sweep.run_trial({"cpus": 4})
    assert seen == {"cpus": 4, "omp": None} and threads.usable_cpus() == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's, reaching the trial: kept
    sweep.run_trial({"cpus": None})
    assert seen == {"cpus": 8, "omp": "2"}
