"""Property-based abuse of the command line: random flags, random TOML, damaged files.

For every case: no traceback, a non-zero exit (or a clean success), nothing outside the run
directory changed, and the previous checkpoint still loads. ``FUZZ_EXAMPLES`` (environment)
raises the number of cases (benchmarks/RESULTS.md records a larger run).
"""

import hashlib
import os
import shutil
import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analog_snu.cli import main
from analog_snu.experiments import FLAG_PATHS, load_run

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOY = ["--task", "digits", "--layers", "4", "--train-limit", "16", "--epochs", "1", "--quiet"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".lock" not in p.name}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    run = root / "run"
    assert main([*["train", *TOY], "--out", str(run)]) == 0
    (root / "bystander.txt").write_text("must not change")
    return root, run


def _call(capfd, argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capfd.readouterr().err
    return code, err


def _check_invariants(root: Path, run: Path, before: dict[str, str], code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code != 0:
        assert err.strip(), "a failure must say why"
    after = _digest(root)
    outside = {k: v for k, v in before.items() if not k.startswith("run/") and not k.startswith("work/")}
    assert {k: after.get(k) for k in outside} == outside, "something outside the run directory changed"
    load_run(run)  # the previous checkpoint still loads


_text = st.text(alphabet=string.ascii_letters + string.digits + "._-/=[]{}\"' ", max_size=12)
_value = st.one_of(_text, st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["nan", "inf", "-1", "0", "1e308", "true", "[1]", ""]))


@FUZZ
@given(flags=st.lists(st.tuples(st.sampled_from(sorted(FLAG_PATHS)), _value), min_size=1, max_size=3))
def test_random_flag_values(workspace, capfd, flags):
    root, run = workspace
    before = _digest(root)
    argv = ["train", *TOY, "--out", root / "work", "--force"]
    for flag, value in flags:
        argv += [f"--{flag}", value]
    code, err = _call(capfd, argv)
    _check_invariants(root, run, before, code, err)


_toml_scalar = st.one_of(st.booleans(), st.integers(-5, 10**9), st.floats(allow_nan=False), _text,
                         st.lists(st.integers(-3, 300), max_size=3), st.lists(st.floats(allow_nan=False), max_size=2))


@FUZZ
@given(table=st.dictionaries(st.sampled_from(sorted(FLAG_PATHS) + ["colour", "set", "out"]), _toml_scalar, max_size=4))
def test_random_toml(workspace, capfd, table):
    root, run = workspace
    before = _digest(root)
    config = root / "work.toml"
    table = {**table, "task": table.get("task", "digits")}
    table.pop("out", None)
    config.write_text(tomli_w.dumps(table))
    code, err = _call(capfd, ["train", "--config", config, "--train-limit", "16", "--layers", "4", "--epochs", "1",
                              "--quiet", "--out", root / "work", "--force"])
    _check_invariants(root, run, {**before, "work.toml": _digest(root).get("work.toml")}, code, err)


@FUZZ
@given(name=st.sampled_from(["checkpoint.safetensors", "config.json", "final.json"]),
       damage=st.one_of(st.tuples(st.just("truncate"), st.floats(0, 0.99)),
                        st.tuples(st.just("flip"), st.floats(0, 0.9999))),
       command=st.sampled_from([["eval"], ["export-maps", "--device", "pcm_joshi2020", "--no-png"],
                                ["train", "--resume"]]))
def test_damaged_run_files_are_refused_cleanly(workspace, capfd, name, damage, command):
    root, run = workspace
    copy = root / "run" / ".." / "damaged"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy)
    target = copy / name
    data = bytearray(target.read_bytes())
    kind, where = damage
    if kind == "truncate":
        data = data[: int(len(data) * where)]
    else:
        data[int(len(data) * where)] ^= 0x04
    target.write_bytes(bytes(data))
    before = _digest(root)
    argv = [command[0], copy, *command[1:]] if command[0] != "train" else ["train", "--resume", copy, "--quiet"]
    code, err = _call(capfd, argv)
    assert "Traceback" not in err, err
    assert code != 0 or name == "final.json", f"damaged {name} was accepted: {err}"
    after = _digest(root)
    assert {k: after.get(k) for k in before if not k.startswith("damaged/")} == \
           {k: v for k, v in before.items() if not k.startswith("damaged/")}
    load_run(run)
