"""Where ``report``, ``drift-study`` and ``export-maps`` write: the run's own result folder, or an
``--out`` folder owned as a run directory is (see :mod:`analog_snu.experiments.run_dir`).

An ``--out`` folder that analog_snu creates, or finds empty, gets a marker listing the files
analog_snu wrote into it::

    OUT/.analog_snu-output    {"format": "analog_snu.output", "version": 1, "files": [...]}

Rules, checked before anything is computed or written:

- ``--out`` inside a run or sweep directory is refused, ``--force`` or not (a file of another
  run would be replaced, and a file analog_snu does not know would lock that run out for
  good); the one exception is the run's own result folder for the command
  (``report RUN --out RUN/report/v2``);
- a new or empty folder is created and claimed; a claimed folder takes more files as long as
  it holds only files analog_snu wrote there;
- any other existing folder (or a file in the way) is refused unless ``force`` (``--force``):
  then the files are written into it, same-named files replaced, and the folder is not claimed.

Commands without a run (``fit-device``) use :func:`standalone_folder` for a folder (same rules)
and :func:`output_file` for a single file: it is written when absent or when it begins with the
command's own header line (a file the command wrote before); any other existing file is replaced
only with ``--force``, and nothing is written inside a run or sweep directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from analog_snu.errors import AnalogSNUError, ConfigError
from analog_snu.experiments.run_dir import OWNED_MARKERS, result_folder
from analog_snu.files import read_json_file, replace_files, to_json

__all__ = ["OUTPUT_MARKER", "OutputFolder", "output_folder", "standalone_folder", "output_file"]

OUTPUT_MARKER = ".analog_snu-output"
_FORMAT = "analog_snu.output"


@dataclass(frozen=True)
class OutputFolder:
    """A folder results may be written into (made by :func:`output_folder`)."""

    path: Path
    """The folder (it exists)."""
    claimed: bool
    """An ``--out`` folder analog_snu owns: the files it writes are listed in its marker."""

    def write(self, files: Mapping[Path, bytes]) -> None:
        """Write ``files`` (paths directly in this folder) all together; listed in the marker first."""
        outside = [str(p) for p in files if Path(p).parent != self.path]
        if outside:
            raise ConfigError(f"cannot write {outside[0]}: not directly in the output folder {self.path}")
        if self.claimed:
            _mark(self.path, [*_listed(self.path), *(Path(p).name for p in files)])
        replace_files(files)


def _listed(folder: Path) -> list[str]:
    """The files the marker of ``folder`` says analog_snu wrote there."""
    try:
        marker = read_json_file(folder / OUTPUT_MARKER, "output marker")
    except AnalogSNUError as exc:
        raise ConfigError(f"{exc}; pass --force to write into {folder} anyway") from None
    names = marker.get("files") if isinstance(marker, dict) and marker.get("format") == _FORMAT else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{folder / OUTPUT_MARKER} is not an analog_snu output marker; pass --force to write "
                          f"into {folder} anyway")
    return names


def _mark(folder: Path, names: Iterable[str]) -> None:
    replace_files({folder / OUTPUT_MARKER: (to_json({"format": _FORMAT, "version": 1,
                                                     "files": sorted(set(names))}) + "\n").encode()})


def _owner(path: Path) -> Path | None:
    """The nearest run or sweep directory holding ``path`` (``path`` itself included)."""
    for folder in (path, *path.parents):
        if any((folder / marker).is_file() for marker in OWNED_MARKERS):
            return folder
    return None


def output_folder(run: Path, folder: str, *default: str, out: str | Path | None = None,
                  force: bool = False) -> OutputFolder:
    """The folder a command on ``run`` writes into: ``run/folder/default...`` (created, no links
    followed), or ``out`` under the rules of the module docstring."""
    if out is None:
        return OutputFolder(result_folder(run, folder, *default), claimed=False)
    out = Path(out)
    owner = _owner(out.resolve())
    if owner is not None:
        inside = out.resolve().relative_to(owner).parts
        if owner == run.resolve() and inside[:1] == (folder,):
            return OutputFolder(result_folder(run, *inside), claimed=False)
        raise ConfigError(f"--out folder {out} is inside the analog_snu directory {owner}; nothing is written into a "
                          f"run or sweep directory but its own result folders (not even with --force): choose a "
                          f"folder outside it, or leave out --out to write into {run / folder}")
    return _claim(out, force)


def standalone_folder(out: str | Path, *, flag: str = "--report", force: bool = False) -> OutputFolder:
    """An output folder of a command that has no run (``fit-device --report DIR``), under the same
    rules: never inside a run or sweep directory; new, empty or claimed before, or ``force``."""
    out = Path(out)
    owner = _owner(out.resolve())
    if owner is not None:
        raise ConfigError(f"{flag} folder {out} is inside the analog_snu directory {owner}; nothing is written into a "
                          "run or sweep directory by this command (not even with --force): choose a folder outside it")
    return _claim(out, force, flag)


def output_file(path: str | Path, header: str, *, flag: str = "--out", force: bool = False) -> Path:
    """Check that the single file ``path`` may be written by a command whose files begin with
    ``header``: not inside a run or sweep directory; absent, or a regular file beginning with
    ``header`` (written by the same command before), or any regular file with ``force``. Its
    folder is created. Returns the path."""
    path = Path(path)
    owner = _owner(path.resolve().parent)
    if owner is not None:
        raise ConfigError(f"{flag} {path} is inside the analog_snu directory {owner}; choose a path outside it")
    if os.path.lexists(path):
        if path.is_symlink() or not path.is_file():
            raise ConfigError(f"{flag} {path} exists and is not a regular file; choose another path")
        if not force:
            try:
                with open(path, "rb") as handle:
                    ours = handle.read(len(header.encode())) == header.encode()
            except OSError as exc:
                raise ConfigError(f"{flag} {path} exists and cannot be read ({exc.strerror or exc}); pass --force "
                                  "to replace it") from None
            if not ours:
                raise ConfigError(f"{flag} {path} exists and was not written by this command; choose another path, "
                                  "or pass --force to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of {flag} {path}: {exc.strerror or exc}") from None
    return path


def _claim(out: Path, force: bool, flag: str = "--out") -> OutputFolder:
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} folder {out} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if (target / OUTPUT_MARKER).is_file():
            own = {OUTPUT_MARKER, *_listed(target)}
            foreign = sorted(p.name for p in target.iterdir()
                             if p.name not in own and not p.name.startswith(".analog_snu-tmp-"))
            if not foreign:
                return OutputFolder(out, claimed=True)
            if not force:
                raise ConfigError(f"{flag} folder {out} holds files analog_snu did not write "
                                  f"({', '.join(foreign[:5])}); choose a new or empty folder, or pass --force to "
                                  "write into it anyway")
            return OutputFolder(out, claimed=False)
        if not force:
            entries = sorted(p.name for p in target.iterdir())
            raise ConfigError(f"{flag} folder {out} was not created by analog_snu and is not empty "
                              f"({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}); choose a new or "
                              "empty folder, or pass --force to write into it anyway")
        return OutputFolder(out, claimed=False)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {flag} {out}: {exc.strerror or exc}") from None
    _mark(target, [])
    return OutputFolder(out, claimed=True)
