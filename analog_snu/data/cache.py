"""Where derived datasets are cached (built once from installed packages, then read in seconds).

Order of precedence: an explicit ``cache_dir`` argument, the ``ANALOG_SNU_CACHE_DIR``
environment variable, ``$XDG_CACHE_HOME/analog_snu``, ``~/.cache/analog_snu``.
Cache files are ``.npz`` archives written atomically and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CACHE_ENV_VAR", "default_cache_dir", "resolve_cache_dir", "save_npz_atomic"]

CACHE_ENV_VAR = "ANALOG_SNU_CACHE_DIR"
"""Environment variable overriding the default cache directory."""


def default_cache_dir() -> Path:
    """``$ANALOG_SNU_CACHE_DIR``, else ``$XDG_CACHE_HOME/analog_snu``, else ``~/.cache/analog_snu``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "analog_snu"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` if given, else :func:`default_cache_dir`."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed npz via a temporary file and a rename.

    A crash mid-write leaves no partial file under ``path``; concurrent writers each rename a
    complete file into place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
