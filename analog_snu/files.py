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

Reading is one way too: :func:`read_regular_file` opens without blocking and reads only a
regular file (a FIFO, a device or a socket given where a file is expected is refused, never
waited on), and :func:`load_json` parses strict JSON (a key twice in one object, ``NaN`` and
``Infinity`` are refused, not silently resolved).

Rank 0 of the package (imports only :mod:`analog_snu.errors`): every layer may use it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from analog_snu.errors import AnalogSNUError

__all__ = ["atomic_write_bytes", "atomic_write_text", "replace_files", "finish_interrupted_writes", "write_json",
           "to_json", "current_umask", "open_regular_file", "read_regular_file", "read_text_file", "read_json_file",
           "load_json"]

_TMP_PREFIX = ".analog_snu-tmp-"
#: name ending of the journal replace_files writes before its renames
_JOURNAL = "-journal"


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


def _dead_owner(name: str) -> bool:
    """A temporary name of a process that no longer exists."""
    pid_text = name[len(_TMP_PREFIX):].split("-", 1)[0]
    return pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))


def _finish(directory: Path, journal: str) -> None:
    """Complete the renames a killed :func:`replace_files` had planned in ``journal`` (roll forward:
    every temporary named there was written whole before the journal was)."""
    try:
        plan = json.loads((directory / journal).read_text(encoding="utf-8"))
        for temporary, target in plan["renames"]:
            if os.path.lexists(directory / temporary):
                os.replace(directory / temporary, directory / target)
        for target in plan["removals"]:
            if os.path.lexists(directory / target):
                os.unlink(directory / target)
        os.unlink(directory / journal)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # unreadable: left to the orphan clean-up below; the old files stay


def _clean_orphans(directory: Path) -> None:
    """Finish the writes and remove the temporaries of processes that no longer exist (never follows symlinks)."""
    try:
        entries = [entry.name for entry in os.scandir(directory) if entry.name.startswith(_TMP_PREFIX)]
    except OSError:
        return
    for name in entries:
        if name.endswith(_JOURNAL) and _dead_owner(name):
            _finish(directory, name)
    for name in entries:
        if _dead_owner(name) and os.path.lexists(directory / name):
            try:
                os.unlink(directory / name)
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
    renamed into place and the removals done. When any step fails (or the process is
    interrupted), what was already done is undone from the second names and
    :class:`~analog_snu.errors.AnalogSNUError` names the file: the previous files are as they
    were. For files in one directory a journal of the planned renames is written first, so a
    process killed between two renames is completed by the next write into that directory (or
    :func:`finish_interrupted_writes`): never a mix of old and new files.
    """
    targets = [Path(p) for p in writes]
    removals = [Path(p) for p in remove if os.path.lexists(p)]
    directories = {p.parent if str(p.parent) else Path(".") for p in [*targets, *removals]}
    for directory in directories:
        _clean_orphans(directory)
    staged: dict[Path, str] = {}
    backups: dict[Path, str | None] = {}
    journal: Path | None = None
    try:
        for path, data in zip(targets, writes.values()):
            staged[path] = _stage(path, data)
        if len(targets) + len(removals) > 1:  # one rename alone is atomic: nothing to undo
            for path in [*targets, *removals]:
                backups[path] = _backup(path)
            if len(directories) == 1:
                (directory,) = directories
                journal = directory / f"{_TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}{_JOURNAL}"
                plan = {"renames": [[Path(staged[p]).name, p.name] for p in targets],
                        "removals": [p.name for p in removals]}
                os.replace(_stage(journal, json.dumps(plan).encode()), journal)
        done: list[Path] = []
        try:
            for path in targets:
                os.replace(staged[path], path)
                del staged[path]
                done.append(path)
            for path in removals:
                os.unlink(path)
                done.append(path)
        except BaseException as exc:  # an error, or Ctrl-C between two renames
            if journal is not None:
                _remove_quietly([str(journal)])  # from here on, nothing may roll the set forward
            for path in reversed(done):  # put the previous files back
                kept = backups.get(path)
                if kept is not None:
                    os.replace(kept, path)
                    backups[path] = None
                elif path in targets:
                    os.unlink(path)
            if not isinstance(exc, OSError):
                raise
            failed = next(p for p in [*targets, *removals] if p not in done)
            raise AnalogSNUError(f"cannot write {failed}: {exc.strerror or exc}; no file was changed") from exc
    except OSError as exc:  # staging, second names or the journal: nothing was changed yet
        raise AnalogSNUError(f"cannot write {next(iter(targets or removals))}: {exc.strerror or exc}; "
                             "no file was changed") from exc
    finally:
        _remove_quietly([str(journal)] if journal is not None else [])
        _remove_quietly(staged.values())
        _remove_quietly(backups.values())


def finish_interrupted_writes(directory: str | os.PathLike) -> None:
    """Complete a :func:`replace_files` in ``directory`` whose process was killed between renames."""
    _clean_orphans(Path(directory))


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


# --- reading ---------------------------------------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def open_regular_file(path: str | os.PathLike, what: str = "file", *,
                      error: type[AnalogSNUError] = AnalogSNUError) -> BinaryIO:
    """The regular file at ``path`` opened for binary reading; anything else raises ``error`` naming it as ``what``.

    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` before anything is read, so
    a FIFO (or a device, a socket, a directory) is refused at once instead of blocking.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise error(f"{what} {path} is a directory, not a file")
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise error(f"{what} {path} is {kind}, not a regular file; give a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular_file(path: str | os.PathLike, what: str = "file", *, error: type[AnalogSNUError] = AnalogSNUError,
                      max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (see :func:`open_regular_file`); a file larger
    than ``max_bytes`` is refused before it is read."""
    with open_regular_file(path, what, error=error) as handle:
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise error(f"{what} {path} has {size} bytes, more than the {max_bytes} allowed")
        try:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{what} {path} has more than the {max_bytes} bytes allowed")
    return data


def read_text_file(path: str | os.PathLike, what: str = "file", *, error: type[AnalogSNUError] = AnalogSNUError,
                   max_bytes: int | None = None) -> str:
    """:func:`read_regular_file` decoded as UTF-8 (invalid UTF-8 raises ``error``)."""
    data = read_regular_file(path, what, error=error, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise _DuplicateKey(f"key {twice!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(data: str | bytes, where: str, *, error: type[AnalogSNUError] = AnalogSNUError) -> Any:
    """Parse strict JSON: a key repeated in one object, ``NaN`` and ``Infinity`` raise ``error`` naming ``where``."""
    try:
        return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(f"{where} is not valid JSON: {exc}") from None


def read_json_file(path: str | os.PathLike, what: str = "file", *, error: type[AnalogSNUError] = AnalogSNUError,
                   max_bytes: int | None = None) -> Any:
    """:func:`read_regular_file` parsed by :func:`load_json` (errors name ``what`` and the path)."""
    return load_json(read_regular_file(path, what, error=error, max_bytes=max_bytes), f"{what} {path}", error=error)
