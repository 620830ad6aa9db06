"""One pass of the estimator over all measurements: the per-quantity fits in dependency order.

``g_max`` and the stuck fractions come first (programming data), then the read noise (it sets
the weights of the drift fit), then the drift, then the programming polynomial again with the
fitted read noise and drift (its variance holds both). Each fit uses the current values of the
others, the base device's where a kind of data is missing. :func:`estimate` is what the
bootstrap repeats on resampled devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analog_snu.fitting.drift_fit import DriftFit, fit_drift
from analog_snu.fitting.measurements import Measurements
from analog_snu.fitting.model import EffectiveModel
from analog_snu.fitting.programming_fit import ProgrammingFit, fit_programming, read_spread
from analog_snu.fitting.read_noise_fit import ReadNoiseFit, fit_read_noise

__all__ = ["Estimate", "estimate", "parameter_values", "DOTTED", "resample"]

#: effective field -> the device field it is written to (dotted)
DOTTED = {
    "g_max": "conductance.g_max", "g_max_spread": "conductance.g_max_spread",
    "fraction_at_zero": "stuck.fraction_at_zero", "fraction_at_gmax": "stuck.fraction_at_gmax",
    "q": "read_noise.q", "exponent": "read_noise.exponent", "t0": "drift.t0",
    "nu_mean_slope": "drift.nu_mean_slope", "nu_mean_offset": "drift.nu_mean_offset",
    "nu_std_slope": "drift.nu_std_slope", "nu_std_offset": "drift.nu_std_offset",
    **{f"nu_{k}_{b}": f"drift.nu_{k}_{b}" for k in ("mean", "std") for b in ("min", "max")},
}


@dataclass
class Estimate:
    """The fitted model and what each stage found."""

    model: EffectiveModel
    fitted: list[str] = field(default_factory=list)
    """Effective fields estimated from data, in stage order (``coeffs`` for the polynomial)."""
    programming: ProgrammingFit | None = None
    read_noise: ReadNoiseFit | None = None
    drift: DriftFit | None = None


def parameter_values(model: EffectiveModel, fitted: list[str]) -> dict[str, float]:
    """Dotted device field -> effective value of every fitted field (``programming.coeffs[i]`` each)."""
    values: dict[str, float] = {}
    for name in fitted:
        if name == "coeffs":
            values.update({f"programming.coeffs[{i}]": float(c) for i, c in enumerate(model.coeffs)})
        else:
            values[DOTTED[name]] = float(getattr(model, name))
    return values


def estimate(measurements: Measurements, base: EffectiveModel, start: Estimate | None = None) -> Estimate:
    """Fit every quantity the measurements inform (``start``: a previous estimate to begin from)."""
    model = base
    result = Estimate(model)
    prog = measurements.programming
    first = start.model if start is not None else None
    full = start is None  # the bootstrap repeats one pass from the estimate, without curvatures
    if prog is not None:
        coeffs = None if first is None else np.asarray(first.coeffs)
        result.programming = fit_programming(prog, model, coeffs, passes=2 if full else 1, hessian=full)
        model = result.programming.model
    if measurements.read_noise is not None:
        result.read_noise = fit_read_noise(measurements.read_noise, model, first, hessian=full)
        model = result.read_noise.model
    if measurements.drift is not None:
        fix = None if start is None or start.drift is None else not start.drift.t0_identified
        result.drift = fit_drift(measurements.drift, model, lambda g, t: read_spread(model, g, t), first, fix_t0=fix,
                                 hessian=full)
        model = result.drift.model
    if prog is not None and (measurements.read_noise is not None or measurements.drift is not None):
        result.programming = fit_programming(prog, model, np.asarray(model.coeffs), passes=1, hessian=full)
        model = result.programming.model
    result.model = model
    for stage in (result.programming, result.read_noise, result.drift):
        if stage is not None:
            result.fitted += [name for name in stage.fitted if name not in result.fitted]
    return result


def resample(measurements: Measurements, rng: np.random.Generator) -> Measurements:
    """The same measurements with the devices of each file drawn with replacement."""
    parts = {}
    for kind in measurements.kinds():
        data = getattr(measurements, kind)
        parts[kind] = data.subset(rng.integers(0, data.devices, data.devices))
    return Measurements(**parts, sources=measurements.sources)
