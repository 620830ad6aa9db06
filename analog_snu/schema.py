"""The one validator of analog_snu's configs: pydantic v2 models in strict mode.

Why pydantic v2 (strict): it refuses wrong types instead of coercing them (``"false"`` is not
a bool, ``"16"`` and ``16.7`` are not ints, ``true`` is not a float; an int is accepted as a
float), refuses unknown keys, reports every problem with its location, round-trips nested
configs to plain JSON, and declares ranges next to the fields (``Field(gt=0)``) with its
validators in a compiled core. msgspec is as strict but has no per-field range constraints
with this reach; cattrs needs hand-written hooks for what pydantic declares.

Every config (the PCM device, the model, the task options, the run) derives from
:class:`StrictModel`; its errors are one :class:`~analog_snu.errors.ConfigError` line per
problem (:func:`format_validation_error`), e.g. ``drift.t0: Input should be greater than 0
(got -1)`` or ``unknown key 'drift.nu_scal'; valid keys of drift: [...]``.
Rank 0: imports only :mod:`analog_snu.errors`.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from analog_snu.errors import ConfigError

__all__ = ["StrictModel", "finite_tuple", "format_validation_error", "merge", "validate", "MAX_SEED", "Seed",
           "check_seed"]

M = TypeVar("M", bound=BaseModel)

#: the largest seed: every stream derived from a seed (``seed * 1_000_003 + epoch``, ...) then stays
#: within the 64 bits torch's generators take
MAX_SEED = 2**32 - 1
#: a seed in a config: an int in [0, :data:`MAX_SEED`]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def check_seed(value: Any, name: str = "seed", *, optional: bool = False) -> Any:
    """``value`` if it is a seed (an int in [0, :data:`MAX_SEED`], or ``None`` when ``optional``),
    else a :class:`~analog_snu.errors.ConfigError` naming ``name``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name} must be a non-negative int{' or None' if optional else ''}, got {value!r} "
                          f"(seeds are ints in [0, 2**32 - 1])")
    return value


def _sequence_to_tuple(value: Any) -> Any:
    """Lists (TOML/JSON arrays) become tuples; anything else is passed on for strict checking."""
    return tuple(value) if isinstance(value, list) else value


def finite_tuple(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
                 min_length: int = 1, max_length: int = 8) -> Any:
    """Annotated ``tuple[float, ...]`` of finite numbers in a range; a list is accepted as input."""
    item = Annotated[float, Field(ge=ge, gt=gt, le=le)]
    return Annotated[
        tuple[item, ...],
        BeforeValidator(_sequence_to_tuple),
        Field(min_length=min_length, max_length=max_length),
    ]


class StrictModel(BaseModel):
    """Frozen, strict, NaN-refusing pydantic model; construction errors raise :class:`ConfigError`.

    Field docstrings are the field descriptions (shown by ``--help`` and the JSON schema).
    """

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

    # Nested validation (a dict for a field of this type, or this model inside another one)
    # must not go through __init__, or the ConfigError above would be wrapped into the outer
    # model's ValidationError as a "value error"; pydantic skips an __init__ marked as its own.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls: type[M], data: Any, *, where: str = "") -> M:
        """Validate a nested dict (as parsed from JSON/TOML; lists stand for tuples) strictly."""
        return validate(cls, data, where=where)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (lists for tuples), ready for JSON/TOML; ``from_dict`` inverts it exactly."""
        return self.model_dump(mode="json")

    def updated(self, changes: dict[str, Any]) -> Self:
        """A copy with the nested ``changes`` merged in, validated again."""
        return validate(type(self), merge(self.to_dict(), changes))


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged recursively (dicts merge, everything else replaces)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(model: type[M], data: Any, *, where: str = "") -> M:
    """``model.model_validate(data)`` with errors as one :class:`ConfigError` (prefixed by ``where``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, model)
        raise ConfigError(f"{where}: {message}" if where else message) from None


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
