"""Where a run config comes from: flags, a TOML file, ``--set dotted.key=value``, a stored run.

Every leaf of :class:`~analog_snu.experiments.config.RunConfig` has one **flag name** (the name
the CLI, ``--config`` TOML files and sweep grids use) and one **dotted path** (its place in the
nested config). The flag name is the field name with dashes (``train-limit`` ->
``task.train_limit``), except a section's main field, which takes the section's name
(``task`` -> ``task.name``, ``model`` -> ``model.cell``, ``training`` -> ``training.mode``).
``device`` takes a preset name, a ``.toml``/``.json`` device file or ``digital``; device
parameters are reached by dotted paths (``device.drift.scale``). The device is resolved here,
once: the config holds it by value, and the name it came by as ``device_source`` (kept through
``device.*`` changes; ``None`` for a device given by value, as a ``[device]`` table).

Sources are applied in this order, later ones winning: a base (the stored config of a run
being resumed), the TOML file, the flags, the TOML file's ``[set]`` table, ``--set`` options.
Everything is validated once, at the end, strictly.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel

from analog_snu.errors import ConfigError
from analog_snu.experiments.config import RunConfig, TrainingConfig, check_key_depth, flatten
from analog_snu.files import read_text_file
from analog_snu.models import ModelConfig
from analog_snu.pcm import PCMDevice, resolve_device
from analog_snu.schema import merge, validate
from analog_snu.tasks import TASK_NAMES, TaskConfig

__all__ = [
    "FLAG_PATHS",
    "SECTIONS",
    "build_config",
    "parse_set",
    "read_toml",
    "set_path",
    "device_value",
    "to_toml",
]

#: config sections -> their model and main field
SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "task": (TaskConfig, "name"),
    "model": (ModelConfig, "cell"),
    "training": (TrainingConfig, "mode"),
}


def _flag_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for section, (model, main) in SECTIONS.items():
        for name in model.model_fields:
            flag = section if name == main else name.replace("_", "-")
            if flag in paths:
                raise AssertionError(f"flag {flag!r} is both {paths[flag]} and {section}.{name}")
            paths[flag] = f"{section}.{name}"
    paths["device"] = "device"
    paths["accelerator"] = "accelerator"
    paths["threads"] = "threads"
    return paths


#: flag name -> dotted path, for every leaf of the run config
FLAG_PATHS: dict[str, str] = _flag_paths()
#: a run config or sweep spec is a few KB; anything far larger is not one
MAX_TOML_BYTES = 1 << 20
#: keys of a TOML config that are not config fields
_TOML_EXTRAS = ("out", "set")


def device_value(value: Any) -> dict[str, Any] | None:
    """A ``device`` value (preset name, device file, ``"digital"``, table or PCMDevice) as a nested dict.

    A dict, not a :class:`PCMDevice`: the sources merge into one plain tree, where later
    ``--set device.KEY=VALUE`` changes land on the device's fields (:func:`set_path`) before
    the whole config is validated once, the device with it.
    """
    if value is None or value == "digital":
        return None
    if isinstance(value, PCMDevice):
        return value.to_dict()
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return resolve_device(value).to_dict()
    raise ConfigError(f"device must be a preset name, a .toml/.json device file or 'digital', got {value!r}")


def _device_source(value: Any) -> str | None:
    """The provenance of a ``device`` value: the preset name or device file it names, else ``None``."""
    return value if isinstance(value, str) and value != "digital" else None


def _without_none(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, Mapping) else v for k, v in tree.items() if v is not None}


def to_toml(config: RunConfig) -> str:
    """``config`` as a TOML ``--config`` file that reproduces it (open values are left out, as TOML has no null)."""
    return tomli_w.dumps(_without_none(config.to_dict()))


def set_path(tree: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``tree`` with ``value`` at dotted ``path`` (intermediate tables created; validation later)."""
    head, _, rest = check_key_depth(path).partition(".")
    if not head:
        raise ConfigError(f"empty key in {path!r}")
    if not rest:
        return {**tree, head: value}
    child = tree.get(head)
    if child is None and head == "device":
        raise ConfigError(f"cannot set {path}: the run has no PCM device; pass --device PRESET|FILE first")
    if child is None:
        child = {}
    if not isinstance(child, dict):
        raise ConfigError(f"cannot set {path}: {head} is {child!r}, not a table")
    return {**tree, head: set_path(child, rest, value)}


def parse_set(option: str) -> tuple[str, Any]:
    """``"dotted.key=value"`` -> ``(path, value)``; the value is read as a TOML value
    (``true``, ``3``, ``0.5``, ``"text"``, ``[1, 2]``), a bare word as a string."""
    path, sep, text = option.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ConfigError(f"--set takes dotted.key=value, got {option!r}")
    control = sorted({repr(ch) for ch in option if (ord(ch) < 32 and ch != "\t") or ord(ch) == 127})
    if control:  # a second line would be read as another key and dropped, or change the value unseen
        raise ConfigError(f"--set {option!r} holds a line break or control character ({', '.join(control)}); "
                          "give one dotted.key=value per --set")
    check_key_depth(path)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except RecursionError:
        raise ConfigError(f"--set {path}=...: the value is nested too deeply to be a config value") from None
    return path, value


def read_toml(path: str | Path, what: str = "--config file") -> dict[str, Any]:
    """A TOML file as a dict; missing, unreadable or invalid files raise ConfigError naming them (as ``what``)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory, not a TOML file")
    text = read_text_file(path, what, error=ConfigError, max_bytes=MAX_TOML_BYTES)
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def _split_toml(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, Any]]]:
    """TOML top level -> (flag values, section tables, [set] entries)."""
    flags: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    sets: list[tuple[str, Any]] = []
    for key, value in data.items():
        flag = key.replace("_", "-")
        if key == "set":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [set] must be a table of dotted.key = value")
            sets.extend(flatten(value).items())
        elif key in (*SECTIONS, "device") and isinstance(value, dict):
            tables[key] = value
        elif flag in FLAG_PATHS:
            flags[key] = value  # as spelled: the same flag twice (train_limit, train-limit) is refused
        elif key not in _TOML_EXTRAS:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {sorted([*FLAG_PATHS, *_TOML_EXTRAS])} "
                              f"or the tables {sorted([*SECTIONS, 'device'])}")
    return flags, tables, sets


def _flag_name(key: str) -> str:
    """A flag name as given (``train-limit``) or with underscores (``train_limit``, as TOML keys and
    Python identifiers spell it) -> the flag name."""
    return key.replace("_", "-")


def _apply_flags(tree: dict[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    seen: dict[str, str] = {}
    for key, value in flags.items():
        flag = _flag_name(key)
        if flag not in FLAG_PATHS:
            raise ConfigError(f"unknown key {key!r}; valid keys: {sorted(FLAG_PATHS)} (or with _ for -)")
        if flag in seen:
            raise ConfigError(f"{seen[flag]!r} and {key!r} are the same key {flag!r}; give it once")
        seen[flag] = key
        if flag == "device":  # the device by value, and the name it came by
            tree = {**tree, "device": device_value(value), "device_source": _device_source(value)}
        else:
            tree = set_path(tree, FLAG_PATHS[flag], value)
    return tree


def build_config(
    *,
    base: Mapping[str, Any] | None = None,
    toml: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[tuple[str, Any]] = (),
    where: str = "run config",
) -> RunConfig:
    """Merge the sources (see the module docstring) and validate them strictly once.

    ``flags`` maps flag names (``"lr"``, ``"train-limit"`` or ``"train_limit"``, ``"device"``) to values; ``sets``
    holds ``(dotted.path, value)`` pairs. A key in a set that is not a flag name is taken as
    a dotted path (``device.drift.scale``).
    """
    tree: dict[str, Any] = dict(base or {})
    toml_sets: list[tuple[str, Any]] = []
    if toml:
        toml_flags, tables, toml_sets = _split_toml(toml, where)
        for name, table in tables.items():
            current = tree.get(name)
            if name == "device":
                tree["device"] = table  # a device table is the whole device, by value: it came by no name
                tree["device_source"] = None
            else:
                tree[name] = merge(current if isinstance(current, dict) else {}, table)
        tree = _apply_flags(tree, toml_flags)
    tree = _apply_flags(tree, dict(flags or {}))
    for path, value in [*toml_sets, *sets]:
        if path.split(".")[0].replace("-", "_") == "device_source":
            raise ConfigError(f"{path} is not set: it records the name --device was given by (set device instead)")
        if "." not in path and _flag_name(path) in FLAG_PATHS:
            tree = _apply_flags(tree, {path: value})
        else:
            tree = set_path(tree, path, value)
    if "task" not in tree or not isinstance(tree["task"], dict) or "name" not in tree["task"]:
        raise ConfigError(f"{where}: no task given (--task); valid tasks: {list(TASK_NAMES)}")
    return validate(RunConfig, tree, where=where)
