"""Cache location and atomic npz writes."""

from pathlib import Path

import numpy as np
import pytest

from analog_snu.data import cache
from analog_snu.data.cache import CACHE_ENV_VAR, default_cache_dir, resolve_cache_dir, save_npz_atomic


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "analog_snu"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "analog_snu"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir(None) == tmp_path / "mine"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "x.npz"
    save_npz_atomic(path, {"a": np.arange(3)})
    with np.load(path, allow_pickle=False) as archive:
        assert archive["a"].tolist() == [0, 1, 2]

    def crash(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_npz_atomic(path, {"a": np.arange(5)})
    monkeypatch.undo()
    with np.load(path, allow_pickle=False) as archive:
        assert archive["a"].tolist() == [0, 1, 2]
    assert [p.name for p in Path(path.parent).iterdir()] == ["x.npz"]  # no temp file left behind
