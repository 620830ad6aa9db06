"""A sweep spec (``SPEC.toml``) and its trials: the grid times the seeds, each a full run config.

A spec has four parts::

    seeds = [0, 1, 2]                     # every grid point is trained once per seed

    [base]                                # run-config keys shared by every trial: the keys
    task = "digits"                       # --config accepts (flag names, dotted paths)
    device = "pcm_joshi2020"
    training = "hwa"
    epochs = 5
    "device.read_noise.scale" = 2.0       # a dotted path, quoted (TOML refuses a device.x table next to device = ...)

    [grid]                                # key -> the values it takes
    "device.drift.scale" = [0.5, 1.0, 2.0]
    lr = [0.01, 0.001]

    [eval]                                # optional: after training, program with the trial's seed
    times = ["1d", "1y"]                  # and drift this long after programming (or seconds: 86400)
    device = "pcm_joshi2020"              # optional: evaluate on this device (needed for digital trials)

A key is a flag name (``lr``, ``train-limit``, ``layers``; underscores work too) or a dotted
path into the run config (``device.drift.scale``). Nested TOML tables under ``[base]`` and
``[grid]`` are read as dotted paths, so ``[grid.device.drift] scale = [...]`` is the same key as
``"device.drift.scale"``. Dotted paths apply after the flags, so ``device = "pcm_joshi2020"``
and ``"device.drift.scale" = 2.0`` give the preset with that one change. ``seed`` is not a
base or grid key: the top-level ``seeds`` list sets it.

:func:`expand` turns a spec into :class:`Trial` s and validates every trial's config before
any is run; a spec of more than :data:`MAX_TRIALS` trials is refused before any is built. Trial
ids are readable and stable (``lr=0.01_device.drift.scale=1.5_seed=0``; long or clashing ones
end in a short hash of the grid point).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from analog_snu.errors import ConfigError
from analog_snu.experiments.config import RunConfig, flatten
from analog_snu.experiments.sources import FLAG_PATHS, build_config, read_toml
from analog_snu.pcm import resolve_device
from analog_snu.schema import Seed, StrictModel, validate
from analog_snu.times import TimeSeconds

__all__ = ["EvalSpec", "SweepSpec", "Trial", "read_sweep_spec", "with_base", "expand", "trial_id", "format_value",
           "MAX_TRIALS"]

#: longest trial id kept readable; longer ones are cut and end in a hash
MAX_ID_LENGTH = 120
#: most trials (grid points x seeds) one sweep may have; checked before any trial config is built
MAX_TRIALS = 10_000


class EvalSpec(StrictModel):
    """Evaluation of every trial after training (``[eval]``)."""

    times: list[TimeSeconds] = Field(min_length=1)
    """Times after programming (each finite and >= 0) at which the test metric is measured: seconds, or
    text such as ``"1d"``, ``"1y"``."""
    device: str | None = None
    """Preset name or device file to evaluate on; default: the trial's own PCM device."""
    split: Literal["train", "valid", "test"] = "test"
    """Split to evaluate."""

    @model_validator(mode="after")
    def _times_are_times(self) -> "EvalSpec":
        for seconds in self.times:
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(f"times must be finite and >= 0 seconds after programming, got {seconds!r}")
        if len(set(self.times)) != len(self.times):
            raise ValueError(f"times must not repeat, got {self.times}")
        return self


class SweepSpec(StrictModel):
    """A parsed sweep spec (see the module docstring). ``base`` and ``grid`` hold flat keys."""

    seeds: list[Seed] = Field(min_length=1, max_length=10_000)
    """Training seeds; every grid point is trained once per seed."""
    base: dict[str, Any] = {}
    """Run-config keys shared by all trials (flag names or dotted paths) -> value."""
    grid: dict[str, list[Any]] = {}
    """Run-config key -> the values it takes (each list non-empty)."""
    eval: EvalSpec | None = None
    """Drift evaluation after training (optional)."""

    @model_validator(mode="after")
    def _keys_make_sense(self) -> "SweepSpec":
        if self.size > MAX_TRIALS:
            shape = " x ".join([*(f"{len(v)} {k}" for k, v in self.grid.items()), f"{len(self.seeds)} seeds"])
            raise ValueError(f"the sweep has {self.size:,} trials ({shape}); a sweep runs at most {MAX_TRIALS:,}: "
                             "split it into several sweeps or take fewer values")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must not repeat, got {self.seeds}")
        for part in ("base", "grid"):
            for key in getattr(self, part):
                if _canonical(key) == "training.seed":
                    raise ValueError(f"[{part}] sets {key!r}; the seeds come from the top-level seeds = [...] list")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values; give a non-empty list")
            encoded = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(encoded)) != len(encoded):
                raise ValueError(f"grid key {key!r} repeats a value: {values}")
        seen: dict[str, str] = {}
        for key in [*self.grid, *self.base]:
            path = _canonical(key)
            if path in seen and seen[path] != key:
                raise ValueError(f"keys {seen[path]!r} and {key!r} name the same field {path}")
            if key in self.grid and key in self.base:
                raise ValueError(f"{key!r} is in both [base] and [grid]; keep it in one")
            seen[path] = key
        return self

    @property
    def size(self) -> int:
        """Number of trials: grid points times seeds."""
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a grid point and a seed, with its validated config."""

    id: str
    """Directory name under ``DIR/trials/``."""
    point: dict[str, Any]
    """Grid key (as in the spec) -> value."""
    seed: int
    config: RunConfig = field(compare=False)
    """The trial's run config, with the name its device came by (``config.device_source``)."""


def _canonical(key: str) -> str:
    """A spec key as a dotted path (flag names mapped, ``_`` accepted for ``-``)."""
    flag = key.replace("_", "-")
    if "." not in key and flag in FLAG_PATHS:
        return FLAG_PATHS[flag]
    return key


def parse_sweep_spec(data: Mapping[str, Any], where: str = "sweep spec") -> SweepSpec:
    """A spec from its TOML data (nested ``[base]``/``[grid]`` tables read as dotted keys)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    unknown = sorted(set(data) - {"seeds", "base", "grid", "eval"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: ['base', 'eval', 'grid', 'seeds']")
    tree = dict(data)
    for part in ("base", "grid"):
        if part in tree:
            if not isinstance(tree[part], dict):
                raise ConfigError(f"{where}: [{part}] must be a table, got {tree[part]!r}")
            tree[part] = flatten(tree[part])
    return validate(SweepSpec, tree, where=where)


def read_sweep_spec(path: str | Path) -> SweepSpec:
    """Read ``SPEC.toml``; missing, unreadable, invalid files and bad keys raise ConfigError naming it."""
    return parse_sweep_spec(read_toml(path, what="sweep spec"), where=f"sweep spec {path}")


def with_base(spec: SweepSpec, values: Sequence[tuple[str, Any]], where: str = "--set") -> SweepSpec:
    """``spec`` with ``values`` (``(key, value)`` pairs) added to or replacing its ``[base]`` keys.

    How a spec takes what belongs to the machine it runs on, such as a data file
    (``analog-snu sweep SPEC --set data=PATH``). A key spelled differently but naming the same
    field replaces the spec's; a ``[grid]`` key cannot be set.
    """
    base = dict(spec.base)
    for key, value in values:
        path = _canonical(key)
        if any(_canonical(g) == path for g in spec.grid):
            raise ConfigError(f"{where} {key}: {key!r} is a [grid] key of the spec; edit the spec to change its values")
        base = {k: v for k, v in base.items() if _canonical(k) != path}
        base[key] = value
    return validate(SweepSpec, {**spec.to_dict(), "base": base}, where=where)


def format_value(value: Any) -> str:
    """A grid value as it appears in trial ids and tables (``0.01``, ``pcm_joshi2020``, ``128-128``).

    >>> format_value(0.01), format_value(3), format_value(True), format_value([128, 64]), format_value(1.5e-05)
    ('0.01', '3', 'true', '128-64', '1.5e-05')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    return str(value)


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-.") or "x"


def trial_id(point: Mapping[str, Any], seed: int) -> str:
    """``key=value_..._seed=S``, file-name safe; cut and hashed beyond :data:`MAX_ID_LENGTH`.

    >>> trial_id({"lr": 0.01, "device.drift.scale": 1.5}, 0)
    'lr=0.01_device.drift.scale=1.5_seed=0'
    """
    readable = _sanitise("_".join(f"{key}={format_value(value)}" for key, value in point.items()))
    suffix = f"seed={seed}"
    text = f"{readable}_{suffix}" if point else suffix
    if len(text) <= MAX_ID_LENGTH:
        return text
    return f"{readable[: MAX_ID_LENGTH - len(suffix) - 10]}-{_digest(point)}_{suffix}"


def _digest(point: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:8]


def _build(spec: SweepSpec, point: Mapping[str, Any], seed: int, where: str) -> RunConfig:
    flags: dict[str, Any] = {}
    sets: list[tuple[str, Any]] = []
    for key, value in [*spec.base.items(), *point.items()]:
        flag = key.replace("_", "-")
        if "." not in key and flag in FLAG_PATHS:
            flags[flag] = value
        else:
            sets.append((key, value))
    flags["seed"] = seed
    return build_config(flags=flags, sets=sets, where=where)


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of ``spec`` (grid points in spec order, seeds innermost), each config validated.

    Raises ConfigError naming the first trial whose config is invalid, before anything runs.
    An ``[eval]`` without a device needs every trial to have one.
    """
    keys = list(spec.grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(spec.grid[k] for k in keys))]
    trials: list[Trial] = []
    ids: dict[str, dict[str, Any]] = {}
    for point in points:
        for seed in spec.seeds:
            tid = trial_id(point, seed)
            if tid in ids and ids[tid] != point:  # two values sanitised alike: disambiguate both by hash
                tid = f"{_sanitise('_'.join(f'{k}={format_value(v)}' for k, v in point.items()))[:80]}-{_digest(point)}_seed={seed}"
            ids[tid] = point
            shown = ", ".join(f"{k}={format_value(v)}" for k, v in point.items()) or "base"
            config = _build(spec, point, seed, where=f"sweep trial {shown}, seed {seed}")
            if spec.eval is not None and spec.eval.device is None and config.device is None:
                raise ConfigError(f"sweep trial {shown}, seed {seed} is digital: [eval] needs device = "
                                  "\"PRESET\" or \"FILE.toml\" to program it on")
            trials.append(Trial(tid, dict(point), seed, config))
    if spec.eval is not None and spec.eval.device is not None:
        resolve_device(spec.eval.device)  # an unknown preset or bad file is refused before anything runs
    return trials
