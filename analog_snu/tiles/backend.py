"""Lazy, guarded access to aihwkit: the one place the package imports it.

aihwkit's compiled core can be missing or built against another torch; turn that
into a :class:`~analog_snu.errors.BackendError` that says which versions were found.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

import torch

from analog_snu.errors import BackendError

__all__ = ["aihwkit_module", "aihwkit_version"]


@lru_cache(maxsize=None)
def aihwkit_module(name: str) -> ModuleType:
    """Import ``aihwkit.<name>``; raise BackendError with versions on failure."""
    try:
        return importlib.import_module(f"aihwkit.{name}")
    except ImportError as exc:  # includes a missing or ABI-mismatched rpu_base
        raise BackendError(
            f"aihwkit.{name} could not be imported ({exc}); torch {torch.__version__}, "
            f"aihwkit {aihwkit_version()}. Run `make setup` to build aihwkit 1.2.0 against this torch."
        ) from exc


def aihwkit_version() -> str:
    """Installed aihwkit version, or ``"not installed"``."""
    try:
        from importlib.metadata import version

        return version("aihwkit")
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return "not installed"
