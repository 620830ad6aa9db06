"""Property-based abuse of what commands write and read: --out targets, symbolic links inside a run,
saves that fail half-way (full disk, read-only file system, no permission), edited checkpoint headers.

For every case: no traceback, a non-zero exit with one line (or a clean success), no file outside
what the command may write changed, and the runs still open. ``FUZZ_EXAMPLES`` (environment)
raises the number of cases; by default each property runs a few derandomized toy cases.
"""

import errno
import hashlib
import json
import os
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from analog_snu.cli import main
from analog_snu.errors import CheckpointError
from analog_snu.experiments import RunConfig, load_run, read_checkpoint
from analog_snu.experiments.outputs import OUTPUT_MARKER
from analog_snu.experiments.records import read_record
from analog_snu.experiments.run_dir import RUN_FOLDERS

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOY = ["--task", "digits", "--layers", "4", "--train-limit", "16", "--epochs", "1", "--quiet"]
DEVICE = ["--device", "pcm_joshi2020"]
COMMANDS = {
    "report": ["report", "{run}", "--quiet"],
    "drift-study": ["drift-study", "{run}", *DEVICE, "--seeds", "0", "--times", "1", "--no-plot"],
    "export-maps": ["export-maps", "{run}", *DEVICE, "--no-png"],
    "eval": ["eval", "{run}", *DEVICE, "--drift-times", "1"],
}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != ".lock"}


def _call(capfd, argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capfd.readouterr().err


def _one_line(code: int, err: str) -> None:
    event(f"exit code {code}")  # shown by --hypothesis-show-statistics
    assert "Traceback" not in err, err
    if code != 0:
        assert err.count("\n") == 1, err


def _consistent(run: Path) -> None:
    """The run opens: its checkpoint loads and config.json agrees with it."""
    load_run(run)
    read_record(run, expect=RunConfig.from_dict(read_checkpoint(run / "checkpoint.safetensors").meta["extra"]["config"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_files")
    for name in ("a", "b"):
        assert main(["train", *TOY, "--out", str(root / name)]) == 0
    return root


@pytest.fixture
def fresh(trained, tmp_path):
    """A workspace per test: copies of runs a and b."""

    def make(name: str) -> Path:
        case = tmp_path / name
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        shutil.copytree(trained / "a", case / "a")
        shutil.copytree(trained / "b", case / "b")
        return case

    return make


# --- outputs outside run directories -------------------------------------------------------------------

_names = st.text(alphabet=string.ascii_lowercase + "._", min_size=1, max_size=10).filter(
    lambda n: n not in (".", "..") and not n.startswith(".analog_snu"))
_own_names = st.sampled_from(["index.html", "training_curves.png", "drift_study.csv", "drift_study.json",
                              "maps.npz", "maps.json"])
_targets = st.one_of(
    st.tuples(st.just("user folder"), st.lists(st.one_of(_names, _own_names), min_size=1, max_size=4, unique=True)),
    st.tuples(st.just("empty folder"), st.just([])),
    st.tuples(st.just("new folder"), st.just([])),
    st.tuples(st.just("other run"), st.sampled_from([[], ["eval"], ["report"], ["new"]])),
    st.tuples(st.just("own run"), st.sampled_from([[], ["report2"], ["eval"], ["checkpoint.safetensors"]])),
    st.tuples(st.just("file"), st.just([])),
    st.tuples(st.just("link to other run"), st.just([])),
)


@FUZZ
@given(command=st.sampled_from(["report", "drift-study", "export-maps"]), target=_targets, force=st.booleans())
def test_outputs_never_touch_what_analog_snu_did_not_write(fresh, capfd, command, target, force):
    case = fresh("out")
    kind, detail = target
    if kind in ("user folder", "empty folder", "file"):
        place = case / "u"
        if kind == "file":
            place.write_text("mine")
        else:
            place.mkdir()
            for name in detail:
                (place / name).write_text(f"user's {name}")
    elif kind == "new folder":
        place = case / "new" / "deeper"
    elif kind == "other run":
        place = case.joinpath("b", *detail)
    elif kind == "own run":
        place = case.joinpath("a", *detail)
    else:
        place = case / "link"
        place.symlink_to(case / "b")
    before = _digest(case)
    out = place / "maps.npz" if command == "export-maps" and kind != "file" else place
    argv = [*(p.format(run=case / "a") for p in COMMANDS[command]), "--out", out, *(["--force"] if force else [])]
    code, err = _call(capfd, argv)
    _one_line(code, err)
    after = _digest(case)
    for key, value in before.items():
        if key.startswith("u/") and force and kind == "user folder":
            if Path(key).name in {"index.html", "training_curves.png", "drift_study.csv", "drift_study.json",
                                  "maps.npz", "maps.json"}:
                continue  # --force: analog_snu's names may be replaced, nothing else
        assert after.get(key) == value, f"{key} changed ({kind}, force={force}, exit {code}: {err})"
    # export-maps --out FILE names a file: with --force it may go next to the user's file, never over it
    file_is_a_folder = kind == "file" and (command != "export-maps" or not force)
    if kind in ("other run", "own run", "link to other run") or file_is_a_folder or (kind == "user folder" and not force):
        assert code == 2, (kind, force, err)
    if code == 0 and kind in ("empty folder", "new folder"):
        assert (place / OUTPUT_MARKER).is_file()
    changed_inside_b = {k for k in set(after) | set(before) if k.startswith("b/") and after.get(k) != before.get(k)}
    assert not changed_inside_b
    _consistent(case / "a")
    _consistent(case / "b")


# --- symbolic links inside a run ---------------------------------------------------------------------


@FUZZ
@given(folder=st.sampled_from(RUN_FOLDERS), deeper=st.sampled_from([None, "label"]),
       points_to=st.sampled_from(["outside", "dangling", "other run", "own run"]),
       command=st.sampled_from([*COMMANDS, "train --resume"]))
def test_links_inside_a_run_are_never_followed(fresh, capfd, folder, deeper, points_to, command):
    case = fresh("links")
    run, outside = case / "a", case / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    target = {"outside": outside, "dangling": case / "nothing", "other run": case / "b", "own run": run}[points_to]
    link = run / folder if deeper is None else run / folder / deeper
    shutil.rmtree(run / folder, ignore_errors=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    before = {name: _digest(case / name) for name in ("outside", "b")}
    argv = (["train", "--resume", run, "--epochs", "2", "--quiet"] if command == "train --resume"
            else [p.format(run=run) for p in COMMANDS[command]])
    code, err = _call(capfd, argv)
    _one_line(code, err)
    assert {name: _digest(case / name) for name in ("outside", "b")} == before
    assert not (case / "nothing").exists()
    if deeper is None:
        assert code == 2 and "is a symbolic link" in err, err
    _consistent(run)


# --- saves that fail half-way ---------------------------------------------------------------------------

_RUN_FILES = ["checkpoint.safetensors", "checkpoint_best.safetensors", "config.json", "metrics.csv", "metrics.json",
              "final.json"]
_faults = st.one_of(
    st.tuples(st.just("read-only file system"), st.just("*"), st.just(errno.EROFS)),
    st.tuples(st.sampled_from(["replace", "link", "unlink"]), st.sampled_from(_RUN_FILES),
              st.sampled_from([errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO])),
    st.tuples(st.just("write"), st.sampled_from(_RUN_FILES), st.sampled_from([errno.ENOSPC, errno.EDQUOT, errno.EIO])),
)


def _inject(mp, run: Path, fault) -> None:
    kind, name, code = fault
    real = {f: getattr(os, f) for f in ("open", "replace", "link", "unlink", "fsync")}

    def hit(path) -> bool:
        path = Path(os.fsdecode(path))
        return path.parent == run and (name == "*" or path.name == name)

    def fail(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    if kind == "read-only file system":  # nothing can be created, replaced or removed in the run
        mp.setattr(os, "open", lambda p, flags, *a, **k: fail(p) if hit(p) and flags & os.O_CREAT else real["open"](p, flags, *a, **k))
        mp.setattr(os, "replace", lambda s, d, *a, **k: fail(d) if hit(d) else real["replace"](s, d, *a, **k))
        mp.setattr(os, "unlink", lambda p, *a, **k: fail(p) if hit(p) else real["unlink"](p, *a, **k))
    elif kind == "replace":
        mp.setattr(os, "replace", lambda s, d, *a, **k: fail(d) if hit(d) else real["replace"](s, d, *a, **k))
    elif kind == "link":
        mp.setattr(os, "link", lambda s, d, *a, **k: fail(s) if hit(s) else real["link"](s, d, *a, **k))
        mp.setattr(os, "replace", lambda s, d, *a, **k: fail(d) if hit(d) else real["replace"](s, d, *a, **k))
    elif kind == "unlink":
        mp.setattr(os, "unlink", lambda p, *a, **k: fail(p) if hit(p) else real["unlink"](p, *a, **k))
    else:  # the disk fills while a file is written: fsync of its temporary fails
        staged: dict[int, str] = {}

        def opening(p, flags, *a, **k):
            fd = real["open"](p, flags, *a, **k)
            staged[fd] = os.fsdecode(p)
            return fd

        def syncing(fd):
            if fd in staged and Path(staged[fd]).parent == run:
                raise OSError(code, os.strerror(code))
            return real["fsync"](fd)

        mp.setattr(os, "open", opening)
        mp.setattr(os, "fsync", syncing)


@FUZZ
@given(fault=_faults, epochs=st.integers(2, 3), finished=st.booleans(), lr=st.sampled_from([None, "0.002"]))
def test_a_failed_extension_never_costs_the_run(fresh, capfd, fault, epochs, finished, lr):
    case = fresh("extend")
    run = case / "a"
    if not finished:
        (run / "final.json").unlink()  # killed after its last checkpoint
    before = _digest(run)
    argv = ["train", "--resume", run, "--epochs", epochs, "--quiet", *(["--lr", lr] if lr else [])]
    with pytest.MonkeyPatch.context() as mp:
        _inject(mp, run, fault)
        code, err = _call(capfd, argv)
    _one_line(code, err)
    if code != 0:  # nothing half-done: the files agree with each other, and resuming finishes the run
        _agree(run)
        if read_checkpoint(run / "checkpoint.safetensors").meta["extra"]["epoch"] == 1:
            assert _digest(run) == before, err  # failed before its first new epoch was saved: all as it was
        code, err = _call(capfd, argv)
        assert code == 0, err
    _agree(run)
    assert json.loads((run / "final.json").read_text())["epochs"] == epochs


def _agree(run: Path) -> None:
    """config.json, metrics.json and final.json (if any) describe the checkpoint."""
    _consistent(run)
    extra = read_checkpoint(run / "checkpoint.safetensors").meta["extra"]
    assert json.loads((run / "metrics.json").read_text()) == extra["history"]
    if (run / "final.json").exists():
        final = json.loads((run / "final.json").read_text())
        assert final["epochs"] == extra["config"]["training"]["epochs"] and final["last"]["epoch"] == extra["epoch"]


# --- edited checkpoint headers -------------------------------------------------------------------------


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _leaves(value, (*path, index))
    else:
        yield path, tree


def _changed(value, pick):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + (1 if isinstance(value, int) else 10 ** -(pick % 6 + 1)) * (1 + abs(value))
    if isinstance(value, str):
        return value + "x"
    return 0 if value is None else None


@FUZZ
@given(pick=st.integers(0, 10**6), how=st.sampled_from(["change a value", "add a key", "drop the digest"]),
       command=st.sampled_from([["eval"], ["train", "--resume"], ["export-maps", *DEVICE, "--no-png"]]))
def test_an_edited_header_is_refused(fresh, capfd, pick, how, command):
    case = fresh("header")
    path = case / "a" / "checkpoint.safetensors"
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8:8 + size])["__metadata__"]
    meta = json.loads(metadata["analog_snu"])
    if how == "change a value":
        leaves = list(_leaves(meta))
        where, value = leaves[pick % len(leaves)]
        node = meta
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = _changed(value, pick)
        metadata["analog_snu"] = json.dumps(meta, sort_keys=True)
    elif how == "add a key":
        metadata[f"note{pick}"] = "x"
    else:
        metadata.pop("analog_snu_sha256")
    path.write_bytes(safetensors_save(safetensors_load(data), metadata=metadata))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    before = _digest(case / "a")
    argv = ["train", "--resume", case / "a", "--epochs", "2", "--quiet"] if command[0] == "train" \
        else [command[0], case / "a", *command[1:]]
    code, err = _call(capfd, argv)
    _one_line(code, err)
    assert code == 1 and "is corrupt or was edited" in err, err
    assert _digest(case / "a") == before
