"""Command-line flags generated from the run config: one flag per field, its default in ``--help``.

Nothing here lists config fields by hand: :data:`~analog_snu.experiments.sources.FLAG_PATHS`
names every leaf, and each field's type, default and docstring make its flag.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from typing import Any, Literal

from pydantic.fields import FieldInfo

from analog_snu.cli.time_args import time_arg
from analog_snu.errors import ConfigError
from analog_snu.experiments import FLAG_PATHS, SECTIONS, TASK_DEFAULTS, RunConfig, build_config, parse_set, read_toml
from analog_snu.pcm import list_presets
from analog_snu.times import TimeSeconds

__all__ = ["add_config_arguments", "add_set_argument", "config_from_args", "flag_values"]


def _field(path: str) -> FieldInfo:
    section, _, name = path.partition(".")
    if not name:
        return RunConfig.model_fields[section]
    return SECTIONS[section][0].model_fields[name]


def _shown(value: Any) -> str:
    """A default as a user types it: ``128 128``, ``on``/``off``, ``none``, ``0.8``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items()) if value else "none"
    if isinstance(value, (list, tuple)):
        return " ".join(map(_shown, value)) if value else "none"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _task_defaults(path: str, default: Any) -> str:
    """``digits 15; others 1``: the default of every task where one differs, else ``""``."""
    if not any(path in defaults for defaults in TASK_DEFAULTS.values()):
        return ""
    values = {task: _shown(defaults.get(path, default)) for task, defaults in TASK_DEFAULTS.items()}
    common = max(set(values.values()), key=list(values.values()).count)
    special = [f"{task} {value}" for task, value in values.items() if value != common]
    if len(special) == len(values) - 1 or not special:  # one value each, or all alike
        return ", ".join(f"{task} {value}" for task, value in values.items())
    return f"{', '.join(special)}; other tasks {common}"


def _help_text(info: FieldInfo, default_text: str) -> str:
    """The field's description without reST markup (``x`` -> x), and its default, said once."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", info.description or "")
    text = re.sub(r"``([^`]*)``", r"\1", text).strip().rstrip(".")
    text = re.sub(r"\s*\(default per task\)", "", text)
    if re.search(r"\bdefault\b", text):  # the description says it (e.g. "default 1.5 reprogram; 8 mixed")
        return text
    return f"{text} (default: {default_text})"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _is_time(annotation: Any) -> bool:
    """A :data:`~analog_snu.times.TimeSeconds` field (or ``TimeSeconds | None``): the flag takes ``1s``, ``1h``, ..."""
    return annotation == TimeSeconds or TimeSeconds in typing.get_args(annotation)


def _thread_setting(text: str) -> int | str:
    """``--threads``: an int where the text is one; anything else stays text, for the config's one-line error."""
    try:
        return int(text)
    except ValueError:
        return text


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of a table flag (``--cell-options soft=true``), the value read as TOML like ``--set``'s."""
    try:
        key, value = parse_set(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--set takes dotted.key=value", "expected KEY=VALUE")) from None
    return key, value


class _TableAction(argparse.Action):
    """``--flag KEY=VALUE ...`` -> a dict (a key given twice: the last value)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, dict(values))


def _add_flag(parser: argparse.ArgumentParser, flag: str, path: str) -> None:
    info = _field(path)
    annotation = _unwrap(info.annotation)
    per_task = _task_defaults(path, None if info.is_required() else info.default)
    if per_task:
        default_text = f"per task: {per_task}"
    elif info.is_required():
        default_text = "required"
    else:
        default_text = _shown(info.default)
    help_text = _help_text(info, default_text)
    kwargs: dict[str, Any] = {"default": None, "help": help_text.replace("%", "%%"), "dest": flag.replace("-", "_")}
    origin = typing.get_origin(annotation)
    if flag == "device":
        kwargs.update(metavar="PRESET|FILE", help=f"PCM device: 'digital', a preset {list_presets()} or a .toml/.json "
                                                  "device file; stored by value in the run (default: digital)")
    elif flag == "threads":
        kwargs.update(metavar="auto|N", type=_thread_setting)
    elif annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is list:
        kwargs.update(nargs="+", type=_unwrap(typing.get_args(annotation)[0]), metavar="N")
    elif origin is dict:
        kwargs.update(nargs="+", type=_option, action=_TableAction, metavar="KEY=VALUE")
    elif origin is Literal:
        kwargs["choices"] = list(typing.get_args(annotation))
    elif _is_time(info.annotation):
        kwargs.update(type=time_arg, metavar="TIME")
    elif annotation in (int, float):
        kwargs["type"] = annotation
    parser.add_argument(f"--{flag}", **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per run-config field, plus ``--config`` and ``--set``, grouped by section."""
    groups = {section: parser.add_argument_group(f"{section} (run config)") for section in (*SECTIONS, "hardware")}
    for flag, path in FLAG_PATHS.items():
        section = path.split(".")[0]
        _add_flag(groups.get(section, groups["hardware"]), flag, path)
    parser.add_argument("--config", metavar="RUN.toml",
                        help="TOML file with the same keys as the flags (flags win); tables [task], [model], "
                             "[training], [device] and [set] are accepted too")
    add_set_argument(parser)


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="dotted.key=VALUE",
                        help="override any config field, device parameters included, e.g. --set device.drift.scale=1.5 "
                             "--set model.decay=0.9 (repeatable; VALUE is read as TOML: true, 3, 0.5, \"text\")")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config flags given on the command line (flag name -> value)."""
    return {flag: getattr(args, flag.replace("-", "_")) for flag in FLAG_PATHS
            if getattr(args, flag.replace("-", "_"), None) is not None}


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """The run config from ``base`` (a stored config), ``--config``, the flags and ``--set``."""
    toml = read_toml(args.config) if getattr(args, "config", None) else None
    sets = [parse_set(option) for option in getattr(args, "set", [])]
    where = f"--config {args.config}" if toml is not None else "run config"
    return build_config(base=base, toml=toml, flags=flag_values(args), sets=sets, where=where)
