"""analog_snu.files: atomic, symlink-safe, umask-following writes that leave no temporaries."""

import os
import subprocess
import sys

import pytest

from analog_snu.errors import AnalogSNUError
from analog_snu.files import atomic_write_bytes, to_json, write_json


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
