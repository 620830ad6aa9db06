"""TOML/JSON files of device configs: read into dicts, written atomically."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from analog_snu.errors import ConfigError
from analog_snu.files import atomic_write_text, load_json, read_regular_file

__all__ = ["FILE_SUFFIXES", "load_file", "save_file"]

#: file formats understood by :func:`load_file` / :func:`save_file`
FILE_SUFFIXES = (".toml", ".json")
#: a device file is a few KB; anything far larger is not one
MAX_DEVICE_FILE_BYTES = 1 << 20


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError(f"device config file must end in one of {list(FILE_SUFFIXES)}, got {str(path)!r}")
    return suffix


def load_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` config file into a dict (ConfigError naming the file otherwise)."""
    path = Path(path)
    suffix = _suffix(path)
    if not os.path.lexists(path):
        raise ConfigError(f"device config file {str(path)!r} not found")
    raw = read_regular_file(path, "device config file", error=ConfigError, max_bytes=MAX_DEVICE_FILE_BYTES)
    where = f"device config file {str(path)!r}"
    if suffix == ".json":
        data = load_json(raw, where, error=ConfigError)
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ConfigError(f"{where} is not valid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"device config file {str(path)!r} must hold a table of fields, got {type(data).__name__}")
    if not data:  # an empty (or truncated) file would silently be the default device
        raise ConfigError(f"device config file {str(path)!r} holds no fields; a device file names its parameters "
                          "(write one with PCMDevice.save, or start from a preset's)")
    return data


def save_file(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as TOML or JSON (by suffix), atomically; returns the path."""
    path = Path(path)
    text = tomli_w.dumps(data) if _suffix(path) == ".toml" else json.dumps(data, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return path
