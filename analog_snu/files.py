"""The one way analog_snu writes a file: atomically, safely, readable by the group.

:func:`atomic_write_bytes` writes to a temporary file made by :func:`tempfile.mkstemp` in the
target's directory (random name, ``O_CREAT | O_EXCL``: a symlink planted there is never
followed), fsyncs it, gives it the mode a plain ``open()`` would (``0o666 & ~umask``, so
colleagues can read results where the umask allows it; mkstemp alone makes 0600 files) and
moves it over the target with ``os.replace``. A crash leaves either the old file or the new
one, whole. Temporaries left by a process that died mid-write carry its pid in their name and
are removed by the next write into the same directory.

Rank 0 of the package (imports only :mod:`analog_snu.errors`): every layer may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from analog_snu.errors import AnalogSNUError

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "to_json", "current_umask"]

_TMP_PREFIX = ".analog_snu-tmp-"


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _clean_orphans(directory: Path) -> None:
    """Remove temporaries of processes that no longer exist (never follows symlinks)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_TMP_PREFIX):
            continue
        pid_text = entry.name[len(_TMP_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring).

    Raises :class:`~analog_snu.errors.AnalogSNUError` naming the file when the directory is
    missing or unwritable or the disk is full; the previous file is then untouched.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    _clean_orphans(directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=directory)
    except OSError as exc:
        raise AnalogSNUError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise AnalogSNUError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """``json.dumps`` that refuses NaN/inf (invalid JSON) with a named error; tuples become lists."""
    try:
        return json.dumps(data, indent=indent, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise AnalogSNUError(f"cannot write JSON: {exc} (a NaN or infinite result?)") from exc


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON (NaN/inf refused), atomically."""
    atomic_write_text(path, to_json(data) + "\n")
