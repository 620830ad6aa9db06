"""Benchmark scripts and sweep specs take the JSB file as an argument: none names a path of the
machine they were written on."""

import re
import subprocess
from pathlib import Path

import pytest

from analog_snu.errors import ConfigError
from analog_snu.experiments.sweep_spec import expand, read_sweep_spec, with_base

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted([*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("*.sh"), *BENCHMARKS.glob("sweeps/*.toml")])
JSB_SPECS = sorted(BENCHMARKS.glob("sweeps/jsb_*.toml"))


def test_no_script_or_spec_names_an_absolute_or_machine_path():
    assert len(SCRIPTS) > 20 and len(JSB_SPECS) >= 3
    for path in SCRIPTS:
        text = path.read_text()
        assert "/work/" not in text and "shared/data" not in text, path.name
        assert not re.search(r"""data\s*=\s*["'][^"']*\.(json|pickle)""", text), path.name


@pytest.mark.parametrize("spec_path", JSB_SPECS, ids=lambda p: p.stem)
def test_jsb_specs_take_the_data_file_from_set(spec_path, tmp_path):
    jsb = tmp_path / "jsb.json"
    spec = read_sweep_spec(spec_path)
    assert "data" not in spec.base
    assert "--set data=JSB_FILE" in spec_path.read_text()  # the usage line says how
    trials = expand(with_base(spec, [("data", str(jsb))]))
    assert trials and {t.config.task.data for t in trials} == {str(jsb)}


def test_with_base_replaces_a_key_of_another_spelling_and_refuses_grid_keys(tmp_path):
    spec = read_sweep_spec(BENCHMARKS / "sweeps" / "jsb_paper_budget.toml")
    changed = with_base(spec, [("eval_batch_size", 4)])
    assert "eval-batch-size" not in changed.base and changed.base["eval_batch_size"] == 4
    assert {t.config.task.eval_batch_size for t in expand(changed)} == {4}
    with pytest.raises(ConfigError, match=r"--set model: 'model' is a \[grid\] key of the spec"):
        with_base(spec, [("model", "lstm")])


def test_bench_tasks_passes_the_jsb_file_and_needs_it(load_benchmark):
    script = load_benchmark("bench_tasks")
    runs = script.commands("jsb", 1, 1, Path("out"), 0, jsb_file="my/jsb.json")
    assert len(runs) == 4
    for _, _, args in runs:
        assert args[args.index("--data") + 1] == "my/jsb.json"
    with pytest.raises(ValueError, match="--suite jsb needs --jsb FILE"):
        script.commands("jsb", 1, 1, Path("out"), 0)


@pytest.mark.parametrize("script", ["hil_jsb.sh", "jsb_baselines.sh", "jsb_paper_budget.sh"])
def test_shell_scripts_refuse_to_start_without_the_jsb_file(script, tmp_path):
    done = subprocess.run(["bash", str(BENCHMARKS / script), str(tmp_path / "missing.json"), "snu"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("usage: ") and "JSB_FILE" in done.stderr
