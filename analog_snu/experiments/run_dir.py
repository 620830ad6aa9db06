"""A run directory: owned (a marker says analog_snu made it), locked while in use, never mixed up.

Layout::

    RUN/.analog_snu-run            marker: this directory belongs to analog_snu (JSON)
    RUN/.lock                      OS-level lock (filelock) held by the process using the run
    RUN/config.json                the run config (device by value), device source, versions
    RUN/checkpoint.safetensors     weights, optimizer, RNG, history after the last epoch
    RUN/metrics.csv, metrics.json  one row per finished epoch
    RUN/final.json                 test metrics; its presence marks a finished run
    RUN/hil.json                   device wear of a hardware-in-the-loop run
    RUN/eval/, drift_study/, weight_maps/, report/   results of later commands, named by their settings

Rules: a directory holding files that analog_snu did not write is never written into (not even
with ``--force``); a result folder that is a symbolic link is never followed (the run is refused
until the link is removed, as results would land outside the run); a second process is refused
while the first holds the lock (a lock dies with its process, so a killed run never blocks the
next); ``--force`` removes only analog_snu's own files, and only after the new run has been
validated and built.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.files import atomic_write_text, finish_interrupted_writes, to_json

__all__ = ["RunDirectory", "RUN_FILES", "RUN_FOLDERS", "MARKER_NAME", "CHECKPOINT_NAME", "BEST_CHECKPOINT_NAME",
           "is_run_directory", "check_no_links", "result_folder", "SWEEP_MARKER", "OWNED_MARKERS"]

MARKER_NAME = ".analog_snu-run"
#: marker of a sweep directory (:mod:`analog_snu.experiments.sweep`)
SWEEP_MARKER = ".analog_snu-sweep"
#: markers of the directories analog_snu owns as a whole: nothing else may write into them
OWNED_MARKERS = (MARKER_NAME, SWEEP_MARKER)
LOCK_NAME = ".lock"
CHECKPOINT_NAME = "checkpoint.safetensors"
#: copy of the checkpoint of the epoch with the lowest validation loss
BEST_CHECKPOINT_NAME = "checkpoint_best.safetensors"
#: files a run writes (``--force`` removes exactly these)
RUN_FILES = ("config.json", CHECKPOINT_NAME, BEST_CHECKPOINT_NAME, "metrics.csv", "metrics.json",
             "final.json", "hil.json", "eval.json")
#: result folders of later commands (``--force`` removes them too: they describe the old run)
RUN_FOLDERS = ("eval", "drift_study", "weight_maps", "report")
_OWN_NAMES = {MARKER_NAME, LOCK_NAME, *RUN_FILES, *RUN_FOLDERS}


def is_run_directory(path: str | Path) -> bool:
    """True when ``path`` is a directory carrying analog_snu's run marker."""
    return (Path(path) / MARKER_NAME).is_file()


def _linked(folder: Path) -> ConfigError:
    return ConfigError(f"{folder} is a symbolic link; analog_snu does not follow links inside a run directory "
                       "(results would land outside the run): remove the link")


def check_no_links(path: str | Path) -> None:
    """Refuse a run whose result folders (``eval/``, ``report/``, ...) are symbolic links."""
    for name in RUN_FOLDERS:
        if (Path(path) / name).is_symlink():
            raise _linked(Path(path) / name)


def result_folder(path: str | Path, *parts: str) -> Path:
    """The folder ``path/part/...`` inside a run, created level by level; a symbolic link or a
    file on the way is refused, never followed."""
    folder = Path(path)
    for part in parts:
        folder = folder / part
        if folder.is_symlink():
            raise _linked(folder)
        try:
            folder.mkdir(exist_ok=True)
        except FileExistsError:
            raise ConfigError(f"{folder} exists and is not a directory") from None
        except OSError as exc:
            raise ConfigError(f"cannot create {folder}: {exc.strerror or exc}") from None
    return folder


def _is_own_temporary(name: str) -> bool:
    return name.startswith(".analog_snu-tmp-")


class RunDirectory:
    """Claim, lock and manage one run directory. Use as a context manager::

        with RunDirectory(path, create=True) as run:
            run.path / "config.json"
    """

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self.create = create
        self._lock = FileLock(str(self.path / LOCK_NAME), timeout=0)

    # --- ownership -----------------------------------------------------------------------------

    def foreign_files(self) -> list[str]:
        """Names in the directory that analog_snu did not write."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name not in _OWN_NAMES and not _is_own_temporary(p.name))

    def _claim(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} exists and is not a directory")
        if not self.path.exists():
            if not self.create:  # naming a folder that is no run is a usage error, as in `report` (exit 2)
                raise ConfigError(f"{self.path} does not exist; name a run directory of `analog-snu train`")
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise ConfigError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from None
        if is_run_directory(self.path):
            return
        entries = [p.name for p in self.path.iterdir()]
        if entries and not self.create:
            raise ConfigError(f"{self.path} is not a run directory of `analog-snu train` (no {MARKER_NAME} marker); "
                              "name a folder that `analog-snu train` wrote")
        if entries:
            raise ConfigError(
                f"{self.path} is not an analog_snu run directory (no {MARKER_NAME} marker) and is not empty "
                f"({', '.join(sorted(entries)[:5])}{', ...' if len(entries) > 5 else ''}); refusing to write into it: "
                "choose a new or empty --out"
            )
        if not self.create:
            raise ConfigError(f"{self.path} is empty; it holds no run of `analog-snu train`")
        atomic_write_text(self.path / MARKER_NAME, to_json({"format": "analog_snu.run", "version": 1}) + "\n")

    # --- locking ---------------------------------------------------------------------------------

    def __enter__(self) -> "RunDirectory":
        self._claim()
        try:
            self._lock.acquire()
        except Timeout:
            raise CheckpointError(
                f"{self.path} is in use by another analog-snu process (lock {self.path / LOCK_NAME}); "
                "wait for it to finish or use another directory"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        finish_interrupted_writes(self.path)  # a set of files a killed process was renaming into place
        foreign = self.foreign_files()
        if foreign:
            self._lock.release()
            raise ConfigError(f"{self.path} holds files analog_snu did not write ({', '.join(foreign[:5])}); "
                              "refusing to write into it")
        try:
            check_no_links(self.path)
        except ConfigError:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()

    # --- state -----------------------------------------------------------------------------------

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def started(self) -> bool:
        """A checkpoint exists (at least one epoch finished; it is checked when read)."""
        return os.path.lexists(self.checkpoint)

    @property
    def finished(self) -> bool:
        """``final.json`` exists."""
        return os.path.lexists(self.path / "final.json")

    def check_request(self, *, resume: bool, force: bool) -> None:
        """Refuse a request that does not fit what the directory holds (nothing is changed)."""
        if resume and force:
            raise ConfigError("--resume and --force exclude each other")
        if resume and not self.started:
            raise CheckpointError(f"cannot resume: {self.path} holds no {CHECKPOINT_NAME}")
        if force or resume:
            return
        if self.finished:
            raise CheckpointError(f"{self.path} already holds a finished run (final.json); pass --force to overwrite it")
        if self.started or (self.path / "config.json").exists():
            raise CheckpointError(f"{self.path} holds an unfinished run; pass --resume to continue it or --force to restart")

    def clear(self) -> None:
        """Remove what analog_snu wrote for the previous run (marker and lock stay)."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            folder = self.path / name
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
            elif folder.is_symlink():
                folder.unlink()
