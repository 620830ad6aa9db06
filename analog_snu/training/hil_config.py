"""The settings of hardware-in-the-loop training: one typed :class:`HILConfig`, validated once.

The run config stores them flat, as ``training.hil_scheme``, ``training.program_every``, ... (the
layout of every run directory written so far, and of the ``--hil-scheme``, ``--program-every``
flags); :attr:`analog_snu.experiments.RunConfig.hil` builds a ``HILConfig`` from them, and
:class:`~analog_snu.training.hil.HILHook` takes one. The ranges (:data:`PROGRAM_EVERY`, ...)
and the rules between the options (:func:`check_hil_options`) are declared here and used by
both layouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import Field, PositiveInt, model_validator

from analog_snu.schema import StrictModel
from analog_snu.times import TimeSeconds

__all__ = ["HIL_SCHEMES", "HIL_DEFAULT_HEADROOM", "HIL_OPTIONS", "HILConfig", "check_hil_options",
           "CHIP_SECONDS_RANGE", "GRANULARITY_RANGE", "HEADROOM_RANGE"]

#: update schemes of hardware-in-the-loop training (the run config's ``training.hil_scheme``)
HIL_SCHEMES = ("reprogram", "mixed")

#: default weight range over the initial max|W| per scheme. The reprogram chip re-maps a tile
#: whose weights outgrow it; a mixed-precision chip cannot (its weights are its conductances), and
#: trained SNU weights grow to ~5x their initial max (digits: requested max|W| 4.7 after 15 epochs),
#: so its range must be set for the trained network up front, as in Nandakumar et al. 2020.
HIL_DEFAULT_HEADROOM = {"reprogram": 1.5, "mixed": 8.0}

class Bounds(TypedDict, total=False):
    """A field's range as ``pydantic.Field`` keywords (typed, so ``Field(None, **bounds)`` type-checks)."""

    gt: float
    ge: float
    lt: float
    le: float


#: the ranges of the options, shared with the run config's flat fields
CHIP_SECONDS_RANGE: Bounds = {"ge": 0.0}
GRANULARITY_RANGE: Bounds = {"gt": 0.0, "le": 1.0}
HEADROOM_RANGE: Bounds = {"ge": 1.0, "le": 1e3}

#: HILConfig field -> the run config's flat ``training`` field holding it
HIL_OPTIONS = {"scheme": "hil_scheme", "program_every": "program_every",
               "chip_seconds_per_batch": "chip_seconds_per_batch", "granularity": "granularity",
               "headroom": "headroom"}


def _flag(field: str) -> str:
    return "--" + HIL_OPTIONS.get(field, field).replace("_", "-")


def check_hil_options(given: Mapping[str, Any]) -> None:
    """The rules between the HIL options; ``given`` maps :class:`HILConfig` field names to the
    values a user set (``None`` or absent: not set). Raises ValueError naming the flags."""
    scheme = given.get("scheme") or "reprogram"
    if given.get("program_every") is not None and scheme == "mixed":
        raise ValueError(f"{_flag('program_every')} applies to {_flag('scheme')} reprogram, not mixed")
    if given.get("granularity") is not None and scheme != "mixed":
        raise ValueError(f"{_flag('granularity')} applies to {_flag('scheme')} mixed only")


class HILConfig(StrictModel):
    """How the chip is in the loop: the scheme and its options, defaults filled in."""

    scheme: Literal[HIL_SCHEMES] = "reprogram"  # type: ignore[valid-type]
    """reprogram: the chip is reprogrammed from software weights; mixed: mixed-precision pulses."""
    program_every: PositiveInt = 1
    """reprogram only: reprogram the chip every N batches (mixed: 1, it writes pulses every batch)."""
    chip_seconds_per_batch: TimeSeconds = Field(1.0, **CHIP_SECONDS_RANGE)
    """Chip clock advance per batch, seconds (``"1min"`` and other times accepted)."""
    granularity: float | None = Field(None, **GRANULARITY_RANGE)
    """mixed only: weight change of one SET pulse as a fraction of g_max (None: the device's dw_min)."""
    headroom: float = Field(None, **HEADROOM_RANGE)  # type: ignore[assignment]  # None is replaced per scheme before validation
    """Each tile's weight range (mapped to g_max) over its max|W| at the first programming
    (default :data:`HIL_DEFAULT_HEADROOM` of the scheme: 1.5 reprogram, 8 mixed)."""
    program_all: bool = False
    """reprogram only: every programming round writes every device (default: the changed targets)."""

    @model_validator(mode="before")
    @classmethod
    def _rules_then_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        check_hil_options(data)
        data = dict(data)
        if data.get("program_every") is None:
            data.pop("program_every", None)
        if data.get("chip_seconds_per_batch") is None:
            data.pop("chip_seconds_per_batch", None)
        if data.get("headroom") is None:
            scheme = data.get("scheme") or "reprogram"
            known = isinstance(scheme, str) and scheme in HIL_DEFAULT_HEADROOM  # else the scheme's own error
            data["headroom"] = HIL_DEFAULT_HEADROOM[scheme if known else "reprogram"]
        if data.get("scheme") is None:
            data.pop("scheme", None)
        return data

    @classmethod
    def from_training(cls, training: Any) -> "HILConfig":
        """The HIL settings of a run config's flat ``training`` part (``training.hil_scheme``, ...)."""
        return cls(**{field: getattr(training, flat) for field, flat in HIL_OPTIONS.items()})
