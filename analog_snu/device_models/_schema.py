"""The strict schema base of the device configs: pydantic v2 models whose errors become ConfigErrors.

Why pydantic: see the docstring of :mod:`analog_snu.device_models.pcm`. This module holds the
shared pieces: :class:`StrictConfig` (frozen, ``extra="forbid"``, ``strict=True``,
``allow_inf_nan=False``), :func:`format_validation_error` (a pydantic error as one line with
dotted locations, usable for any model that embeds a device config) and the TOML/JSON file IO.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from analog_snu.errors import ConfigError
from analog_snu.files import atomic_write_text

__all__ = [
    "FILE_SUFFIXES",
    "StrictConfig",
    "finite_tuple",
    "format_validation_error",
    "load_file",
    "save_file",
]

#: file formats understood by :func:`load_file` / :func:`save_file`
FILE_SUFFIXES = (".toml", ".json")


def _sequence_to_tuple(value: Any) -> Any:
    """Lists (TOML/JSON arrays) become tuples; anything else is passed on for strict checking."""
    return tuple(value) if isinstance(value, list) else value


def finite_tuple(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
                 min_length: int = 1, max_length: int = 8) -> Any:
    """Annotated ``tuple[float, ...]`` of finite numbers in a range; a list is accepted as input."""
    item = Annotated[float, Field(ge=ge, gt=gt, le=le)]
    return Annotated[
        tuple[item, ...],  # type: ignore[valid-type]
        BeforeValidator(_sequence_to_tuple),
        Field(min_length=min_length, max_length=max_length),
    ]


class StrictConfig(BaseModel):
    """Frozen, strict, NaN-refusing pydantic model; construction errors raise :class:`ConfigError`."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        validate_default=False,
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, type(self))) from None

    # Nested validation (a dict for a field of this type, or this model inside the run config)
    # must not go through __init__, or the ConfigError above would be wrapped into another
    # model's ValidationError as a "value error"; pydantic skips an __init__ marked as its own.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: Any) -> typing.Self:
        """Validate a (possibly partial) nested dict; lists stand for tuples; unknown keys raise."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, cls)) from None

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (lists for tuples), ready for JSON/TOML; ``from_dict`` inverts it exactly."""
        return self.model_dump(mode="json")


# -- error messages ------------------------------------------------------------------------------------


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes inside an annotation (``X``, ``X | None``, ``Annotated[X, ...]``)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _model_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _model_types(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """Follow ``loc`` down from ``root``: (the location without union-member tags, the model reached)."""
    model: type[BaseModel] | None = root
    union: list[type[BaseModel]] = []
    out: list[Any] = []
    for part in loc:
        tagged = [m for m in union if m.__name__ == part]
        union = []
        if tagged:  # pydantic names the union member it tried; it is not a key of the input
            model = tagged[0]
            continue
        out.append(part)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            found = _model_types(model.model_fields[part].annotation)
            model = found[0] if len(found) == 1 else None
            union = found if len(found) > 1 else []
        else:
            model = None
    return tuple(out), model


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def format_validation_error(error: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """One line for a pydantic :class:`ValidationError` of ``root``: ``dotted.field: what (got x)``.

    An unknown key reads ``unknown key 'drift.nu_scal'; valid keys of drift: [...]``. Several
    errors are joined with ``"; "``. ``prefix`` is put in front of every location.
    """
    parts = []
    for item in error.errors(include_url=False):
        loc, _ = _walk(root, tuple(item["loc"]))
        where = ".".join(p for p in (prefix, _dotted(loc)) if p)
        if item["type"] == "extra_forbidden":
            _, parent = _walk(root, tuple(item["loc"])[:-1])
            level = ".".join(p for p in (prefix, _dotted(loc[:-1])) if p) or root.__name__
            valid = list(parent.model_fields) if parent is not None else []
            parts.append(f"unknown key {where!r}; valid keys of {level}: {valid}")
            continue
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] in ("model_type", "dataclass_type") and isinstance(item.get("input"), (str, int, float, list)):
            message = "expected a table/dict of fields"
        got = item.get("input")
        shown = repr(got) if not isinstance(got, dict) else "a table"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        parts.append(f"{where or root.__name__}: {message} (got {shown})" if item["type"] != "value_error"
                     else f"{where or root.__name__}: {message}")
    return "; ".join(parts)


# -- files ------------------------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError(f"device config file must end in one of {list(FILE_SUFFIXES)}, got {str(path)!r}")
    return suffix


def load_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` config file into a dict (ConfigError naming the file otherwise)."""
    path = Path(path)
    suffix = _suffix(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"device config file {str(path)!r} not found") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read device config file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"device config file {str(path)!r} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"device config file {str(path)!r} must hold a table of fields, got {type(data).__name__}")
    return data


def save_file(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as TOML or JSON (by suffix), atomically; returns the path."""
    path = Path(path)
    text = tomli_w.dumps(data) if _suffix(path) == ".toml" else json.dumps(data, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return path
