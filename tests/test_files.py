"""analog_snu.files: atomic, symlink-safe, umask-following writes that leave no temporaries."""

import os
import subprocess
import sys

import pytest

from analog_snu.errors import AnalogSNUError
from analog_snu.files import (
    atomic_write_bytes,
    finish_interrupted_writes,
    load_json,
    read_regular_file,
    read_text_file,
    replace_files,
    to_json,
    write_json,
)


def test_write_replaces_atomically_and_follows_the_umask(tmp_path):
    target = tmp_path / "a.json"
    old = os.umask(0o022)
    try:
        write_json(target, {"x": 1})
        assert oct(target.stat().st_mode & 0o777) == oct(0o644)
        os.umask(0o077)
        write_json(target, {"x": 2})
        assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(old)
    assert target.read_text() == '{\n  "x": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_symlink_planted_at_a_predictable_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for pid in (os.getpid(), os.getpid() + 1):  # the old scheme's names
        (tmp_path / f".out.bin.tmp-{pid}").symlink_to(victim)
    atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert victim.read_text() == "keep me" and (tmp_path / "out.bin").read_bytes() == b"data"


def test_orphans_of_dead_processes_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    orphan = tmp_path / f".analog_snu-tmp-{pid}-abc123"
    orphan.write_bytes(b"half written")
    mine = tmp_path / f".analog_snu-tmp-{os.getpid()}-live"
    mine.write_bytes(b"in progress")
    atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert not orphan.exists() and mine.exists()


def test_nan_is_refused_and_a_missing_directory_is_named(tmp_path):
    with pytest.raises(AnalogSNUError, match=r"cannot write JSON: .*NaN or infinite"):
        to_json({"loss": float("nan")})
    with pytest.raises(AnalogSNUError, match=r"cannot write .*missing/out.bin"):
        atomic_write_bytes(tmp_path / "missing" / "out.bin", b"x")


# --- replace_files: several files, all or nothing -------------------------------------------------


def _fail_on(monkeypatch, name, function="replace", errno_=28):
    """Make ``os.<function>`` fail (errno ``errno_``, 28 = ENOSPC) for paths named ``name``, as a full
    disk, a missing permission or an immutable file would."""
    real = getattr(os, function)

    def failing(*args, **kwargs):
        target = args[1] if function == "replace" else args[0]
        if os.path.basename(target) == name:
            raise OSError(errno_, os.strerror(errno_), target)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, function, failing)


def _state(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("failing", ["a", "b", "c"])
def test_replace_files_changes_nothing_when_any_rename_fails(tmp_path, monkeypatch, failing):
    (tmp_path / "a").write_bytes(b"old a")
    (tmp_path / "b").write_bytes(b"old b")
    (tmp_path / "gone").write_bytes(b"to be removed")
    before = _state(tmp_path)
    _fail_on(monkeypatch, failing, errno_=1)
    with pytest.raises(AnalogSNUError, match=rf"cannot write .*/{failing}: .*no file was changed"):
        replace_files({tmp_path / "a": b"new a", tmp_path / "b": b"new b", tmp_path / "c": b"new c"},
                      remove=[tmp_path / "gone"])
    assert _state(tmp_path) == before  # "c" did not exist and does not now; no temporaries left
    monkeypatch.undo()
    replace_files({tmp_path / "a": b"new a", tmp_path / "c": b"new c"}, remove=[tmp_path / "gone"])
    assert _state(tmp_path) == {"a": b"new a", "b": b"old b", "c": b"new c"}


def test_replace_files_puts_everything_back_when_a_removal_fails(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"old a")
    (tmp_path / "final").write_bytes(b"result")
    before = _state(tmp_path)
    _fail_on(monkeypatch, "final", function="unlink", errno_=1)
    with pytest.raises(AnalogSNUError, match=r"cannot write .*/final: Operation not permitted"):
        replace_files({tmp_path / "a": b"new a", tmp_path / "b": b"new b"}, remove=[tmp_path / "final"])
    assert _state(tmp_path) == before


def test_replace_files_on_a_full_disk_leaves_the_old_files(tmp_path):
    """A real write failure: the file-size limit (as a full disk) stops the second, larger file."""
    import resource
    import signal

    (tmp_path / "small").write_bytes(b"old small")
    (tmp_path / "large").write_bytes(b"old large")
    before = _state(tmp_path)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        with pytest.raises(AnalogSNUError, match=r"cannot write .*/large: File too large"):
            replace_files({tmp_path / "small": b"new", tmp_path / "large": b"x" * 100_000})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert _state(tmp_path) == before


# --- reading: regular files only, strict JSON ------------------------------------------------------


def test_only_regular_files_are_read(tmp_path, no_hang):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(AnalogSNUError, match=r"^run record .*fifo\.json is a FIFO, not a regular file"):
        read_regular_file(fifo, "run record")
    with pytest.raises(AnalogSNUError, match=r"^input /dev/zero is a character device, not a regular file"):
        read_regular_file("/dev/zero", "input")  # would never end
    with pytest.raises(AnalogSNUError, match=r"is a directory, not a file"):
        read_regular_file(tmp_path, "input")
    with pytest.raises(AnalogSNUError, match=r"missing\.txt does not exist"):
        read_regular_file(tmp_path / "missing.txt")
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(AnalogSNUError, match=r"big has 101 bytes, more than the 100 allowed"):
        read_regular_file(tmp_path / "big", max_bytes=100)
    assert read_regular_file(tmp_path / "big", max_bytes=101) == b"x" * 101
    (tmp_path / "link").symlink_to(tmp_path / "big")  # a symlink to a regular file is a regular file
    assert read_text_file(tmp_path / "link") == "x" * 101


@pytest.mark.parametrize("text, problem", [
    ('{"a": 1, "a": 2}', r"key 'a' appears twice in one object"),
    ('{"x": {"b": [1, {"c": 1, "c": 1}]}}', r"key 'c' appears twice"),
    ('{"loss": NaN}', r"NaN is not a JSON number"),
    ('[Infinity]', r"Infinity is not a JSON number"),
    ('{"a": 1', r"Expecting"),
    ("[" * 100_000, r"recursion|Expecting"),
])
def test_strict_json_refuses_what_plain_json_resolves_silently(text, problem):
    with pytest.raises(AnalogSNUError, match=rf"^device file x\.json is not valid JSON: .*{problem}"):
        load_json(text, "device file x.json")
    assert load_json('{"a": 1, "b": {"a": 2}}', "ok") == {"a": 1, "b": {"a": 2}}


# a process killed between two renames of replace_files: the next write completes the set
_KILLED_MID_COMMIT = """
import os, signal, sys
from analog_snu import files

real, calls = os.replace, []

def replace(src, dst, *args, **kwargs):
    if not os.path.basename(str(dst)).startswith(".analog_snu-tmp-"):
        calls.append(dst)
        if len(calls) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 or a power cut would
    return real(src, dst, *args, **kwargs)

os.replace = replace
folder = sys.argv[1]
files.replace_files({f"{folder}/a": b"new a", f"{folder}/b": b"new b", f"{folder}/c": b"new c"},
                    remove=[f"{folder}/gone"])
"""


@pytest.mark.parametrize("killed_at", [1, 2, 3])
def test_a_process_killed_between_renames_is_completed_by_the_next_write(tmp_path, killed_at):
    for name in ("a", "b", "gone"):
        (tmp_path / name).write_bytes(f"old {name}".encode())
    done = subprocess.run([sys.executable, "-c", _KILLED_MID_COMMIT, str(tmp_path), str(killed_at)],
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, capture_output=True)
    assert done.returncode == -9, done.stderr
    assert any(p.name.endswith("-journal") for p in tmp_path.iterdir())  # the plan survived the kill
    finish_interrupted_writes(tmp_path)
    assert _state(tmp_path) == {"a": b"new a", "b": b"new b", "c": b"new c"}  # all new, nothing left over


def test_ctrl_c_between_two_renames_puts_the_old_files_back(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"old a")
    (tmp_path / "b").write_bytes(b"old b")
    before = _state(tmp_path)
    real, calls = os.replace, []

    def interrupted(src, dst, *args, **kwargs):
        if not os.path.basename(str(dst)).startswith(".analog_snu-tmp-"):
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_files({tmp_path / "a": b"new a", tmp_path / "b": b"new b"})
    monkeypatch.undo()
    assert _state(tmp_path) == before
    finish_interrupted_writes(tmp_path)  # no journal is left that could roll the set forward later
    assert _state(tmp_path) == before
