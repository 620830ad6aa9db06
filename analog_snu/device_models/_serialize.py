"""Dict and file (TOML / JSON) round trips of frozen config dataclasses."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError

__all__ = ["to_dict", "from_dict", "load_file", "save_file", "FILE_SUFFIXES"]

#: file formats understood by :func:`load_file` / :func:`save_file`
FILE_SUFFIXES = (".toml", ".json")


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build ``cls`` from a nested dict; missing keys take defaults, unknown keys raise."""
    where = f"{prefix}." if prefix else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__} must be a table/dict of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown field(s) {[where + key for key in unknown]}; valid fields of {prefix or cls.__name__}: {names}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value, where + name)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError(f"device config file must end in one of {list(FILE_SUFFIXES)}, got {str(path)!r}")
    return suffix


def load_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` config file into a dict."""
    path = Path(path)
    suffix = _suffix(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read device config file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"device config file {str(path)!r} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"device config file {str(path)!r} must hold a table of fields, got {type(data).__name__}")
    return data


def save_file(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as TOML or JSON (by suffix), atomically (temporary file + rename)."""
    path = Path(path)
    if _suffix(path) == ".toml":
        import tomli_w

        text = tomli_w.dumps(data)
    else:
        text = json.dumps(data, indent=2) + "\n"
    write_text_atomic(path, text)
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
