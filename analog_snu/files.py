"""The one way analog_snu writes a file: atomically, safely, readable by the group.

:func:`atomic_write_bytes` writes to a temporary file made by :func:`tempfile.mkstemp` in the
target's directory (random name, ``O_CREAT | O_EXCL``: a symlink planted there is never
followed), fsyncs it, gives it the mode a plain ``open()`` would (``0o666 & ~umask``, so
colleagues can read results where the umask allows it; mkstemp alone makes 0600 files) and
moves it over the target with ``os.replace``. A crash leaves either the old file or the new
one, whole. Temporaries left by a process that died mid-write carry its pid in their name and
are removed by the next write into the same directory.

Several files that must agree with each other (a checkpoint, the ``config.json`` describing it,
its metrics) are written by :func:`replace_files`: all or none of them change, so a failed write
(disk full, permission denied, an immutable file) leaves the previous set whole.

Rank 0 of the package (imports only :mod:`analog_snu.errors`): every layer may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from analog_snu.errors import AnalogSNUError

__all__ = ["atomic_write_bytes", "atomic_write_text", "replace_files", "write_json", "to_json", "current_umask"]

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


def _write_error(path: Path, exc: OSError) -> AnalogSNUError:
    return AnalogSNUError(f"cannot write {path}: {exc.strerror or exc}")


def _stage(path: Path, data: bytes) -> str:
    """``data`` in a fresh temporary next to ``path`` (fsynced, umask mode); returns its name."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
    except OSError as exc:
        os.unlink(tmp)
        raise _write_error(path, exc) from exc
    return tmp


def _backup(path: Path) -> str | None:
    """A second name for the file at ``path`` (a hard link, else a copy), to put it back; None if absent."""
    if not os.path.lexists(path):
        return None
    name = str(path.parent / f"{_TMP_PREFIX}{os.getpid()}-keep-{os.urandom(6).hex()}")
    try:
        os.link(path, name, follow_symlinks=False)
        return name
    except OSError:  # no hard links here (or an immutable file): keep a copy instead
        pass
    try:
        return _stage(path, path.read_bytes()) if path.is_file() and not path.is_symlink() else None
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _remove_quietly(names: Iterable[str | None]) -> None:
    for name in names:
        if name is not None and os.path.lexists(name):
            try:
                os.unlink(name)
            except OSError:
                pass


def replace_files(writes: Mapping[str | os.PathLike, bytes], remove: Iterable[str | os.PathLike] = ()) -> None:
    """Write every file of ``writes`` and remove every file of ``remove``: all of it, or nothing.

    Every new content is first written to a temporary (as :func:`atomic_write_bytes` does) and
    every file to be replaced or removed gets a second name; only then are the temporaries
    renamed into place and the removals done. When any step fails, what was already done is
    undone from the second names and :class:`~analog_snu.errors.AnalogSNUError` names the file:
    the previous files are then as they were.
    """
    targets = [Path(p) for p in writes]
    removals = [Path(p) for p in remove if os.path.lexists(p)]
    for directory in {p.parent if str(p.parent) else Path(".") for p in targets}:
        _clean_orphans(directory)
    staged: dict[Path, str] = {}
    backups: dict[Path, str | None] = {}
    try:
        for path, data in zip(targets, writes.values()):
            staged[path] = _stage(path, data)
        if len(targets) + len(removals) > 1:  # one rename alone is atomic: nothing to undo
            for path in [*targets, *removals]:
                backups[path] = _backup(path)
        done: list[Path] = []
        try:
            for path in targets:
                os.replace(staged[path], path)
                del staged[path]
                done.append(path)
            for path in removals:
                os.unlink(path)
                done.append(path)
        except OSError as exc:
            failed = next(p for p in [*targets, *removals] if p not in done)
            for path in reversed(done):  # put the previous files back
                kept = backups.get(path)
                if kept is not None:
                    os.replace(kept, path)
                    backups[path] = None
                elif path in targets:
                    os.unlink(path)
            raise AnalogSNUError(f"cannot write {failed}: {exc.strerror or exc}; no file was changed") from exc
    finally:
        _remove_quietly(staged.values())
        _remove_quietly(backups.values())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring).

    Raises :class:`~analog_snu.errors.AnalogSNUError` naming the file when the directory is
    missing or unwritable or the disk is full; the previous file is then untouched.
    """
    replace_files({path: data})


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
