"""Learning-rate schedules by name, with their parameters checked up front.

Every schedule steps once per epoch (:func:`scheduler_step`); ``"plateau"`` needs the
epoch's validation metric. They work on torch optimizers and on aihwkit's analog
optimizers alike (those are torch optimizers; pulsed tiles read the group's lr at each
update).

==============  ==================================================================  =========================
kind            lr at epoch e (0-based, lr0 = the optimizer's lr)                   parameters (defaults)
==============  ==================================================================  =========================
``"none"``      lr0                                                                 (none)
``"step"``      lr0 * gamma ** floor(e / step_size)                                 step_size (epochs, >= 1),
                                                                                    gamma (0.1, in (0, 1])
``"cosine"``    eta_min + (lr0 - eta_min) (1 + cos(pi e / t_max)) / 2               t_max (epochs, >= 1),
                                                                                    eta_min (0, in [0, lr0))
``"plateau"``   lr * factor when the metric has not improved by more than           mode ("min" | "max"),
                ``threshold`` (relative) for ``patience`` epochs; never below       factor (0.1, in (0, 1)),
                ``min_lr``; ``cooldown`` epochs of rest after a cut                 patience (10, >= 0),
                                                                                    threshold (1e-4, >= 0),
                                                                                    min_lr (0, >= 0),
                                                                                    cooldown (0, >= 0)
==============  ==================================================================  =========================
"""

from __future__ import annotations

import math
from typing import Any

import torch

from analog_snu.errors import ConfigError

__all__ = ["SCHEDULES", "make_scheduler", "scheduler_step"]

#: kind -> {parameter: default}; ``None`` marks a required parameter
SCHEDULES: dict[str, dict[str, Any]] = {
    "none": {},
    "step": {"step_size": None, "gamma": 0.1},
    "cosine": {"t_max": None, "eta_min": 0.0},
    "plateau": {"mode": "min", "factor": 0.1, "patience": 10, "threshold": 1e-4, "min_lr": 0.0, "cooldown": 0},
}


def _int_at_least(kind: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{kind} schedule: {name} must be an int >= {low}, got {value!r}")
    return value


def _float_in(kind: str, name: str, value: Any, low: float, high: float, low_open: bool, high_open: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"{kind} schedule: {name} must be a number in {interval}, got {value!r}")
    return float(value)


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str = "none",
                   **params: Any) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A learning-rate scheduler of ``kind`` (see the module table) over ``optimizer``.

    Args:
        optimizer: a torch (or aihwkit analog) optimizer.
        kind: ``"none"``, ``"step"``, ``"cosine"`` or ``"plateau"``.
        **params: the kind's parameters; unknown names, missing required ones and impossible
            values raise :class:`~analog_snu.errors.ConfigError`.

    Returns:
        ``None`` for ``"none"``, else a ``torch.optim.lr_scheduler`` object; step it once per
            epoch with :func:`scheduler_step`.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"schedule kind must be one of {list(SCHEDULES)}, got {kind!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    allowed = SCHEDULES[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"{kind} schedule: unknown parameter(s) {unknown}; valid: {sorted(allowed)}")
    values = {**allowed, **params}
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise ConfigError(f"{kind} schedule: missing required parameter(s) {missing}")
    if kind == "none":
        return None
    lr0 = min(group["lr"] for group in optimizer.param_groups)
    if kind == "step":
        step_size = _int_at_least(kind, "step_size", values["step_size"], 1)
        gamma = _float_in(kind, "gamma", values["gamma"], 0.0, 1.0, True, False)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if kind == "cosine":
        t_max = _int_at_least(kind, "t_max", values["t_max"], 1)
        eta_min = _float_in(kind, "eta_min", values["eta_min"], 0.0, lr0, False, True)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min)
    if values["mode"] not in ("min", "max"):
        raise ConfigError(f"plateau schedule: mode must be 'min' or 'max', got {values['mode']!r}")
    factor = _float_in(kind, "factor", values["factor"], 0.0, 1.0, True, True)
    patience = _int_at_least(kind, "patience", values["patience"], 0)
    threshold = _float_in(kind, "threshold", values["threshold"], 0.0, math.inf, False, True)
    min_lr = _float_in(kind, "min_lr", values["min_lr"], 0.0, math.inf, False, True)
    if min_lr > lr0:
        raise ConfigError(f"plateau schedule: min_lr={min_lr} is above the optimizer's lr={lr0}")
    cooldown = _int_at_least(kind, "cooldown", values["cooldown"], 0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=values["mode"], factor=factor, patience=patience, threshold=threshold,
        threshold_mode="rel", cooldown=cooldown, min_lr=min_lr,
    )


def scheduler_step(scheduler, metric: float | None = None) -> None:
    """End-of-epoch step: ``step(metric)`` for ``"plateau"`` (metric required), ``step()`` otherwise; None: no-op."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if metric is None or not math.isfinite(metric):
            raise ConfigError(f"the plateau schedule needs the epoch's finite validation metric, got {metric!r}")
        scheduler.step(metric)
    else:
        scheduler.step()
