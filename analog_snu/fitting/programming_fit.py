r"""Programming data: stuck devices, ``g_max`` and its spread, and the programming-noise polynomial.

**Stuck devices** are devices whose read does not follow their target (the model draws them
independently of the target, so a fraction estimated on the devices where they are recognisable
is unbiased):

- stuck at 0 µS: a read at most :data:`ZERO_BAND` ``g_max`` on a device whose target is more than
  5 read spreads above that band (a working device gets there with probability < 3e-7); the
  fraction is over those *eligible* devices;
- stuck at ``g_max`` (stuck SET): a read more than 6 spreads above the target and above ``g_max / 2``. Their reads are
  their own ``g_max`` (the model: ``g_max (1 + spread xi)``), which gives ``g_max_spread`` when at
  least :data:`MIN_STUCK_FOR_GMAX` devices with targets below ``g_max / 2`` are stuck there; the
  fraction is over the devices whose target lies 6 spreads below ``g_max (1 - 4 spread)``.

``g_max`` itself is the device's nominal full scale, which the lab sets (the targets are
fractions of it): it is given, not fitted (``fit_device(g_max=...)``, ``--g-max``; default the
base device's). The read spreads used to recognise stuck devices come from the data first (the
median absolute deviation per conductance bin), then from the fit.

**Programming noise** is the maximum-likelihood polynomial under the model's read of a
programmed device, moment-matched to a Gaussian and censored at 0 as the model clamps:
mean :math:`G_T \bar D(t)`, variance :math:`(\sigma_P \bar D)^2 + (G_T \bar D \sigma_r)^2 + G_T^2
\mathrm{Var}\,D`, with :math:`D = ((t+t_0)/t_0)^{-\nu}` the drift factor at the read time and
:math:`\sigma_r` the read noise (both from the drift / read-noise fits, or the base device).
A read at or below the zero band counts as censored (probability
:math:`f_0 + (1 - f_0)\,\Phi`), so the devices clamped at 0 inform the fit too. Targets above
``g_max (1 - 2.5 g_max_spread)`` are left out (the model cuts them at each device's own
``g_max``; while ``g_max_spread`` is not fitted, a spread of at least :data:`UNKNOWN_SPREAD` is assumed), and so are targets below :data:`MIN_TARGET` ``g_max`` or within 2 spreads of 0 µS,
where the clamp at 0 and the clipped read noise make the read far from Gaussian (``c_0`` is then
the intercept of the polynomial fitted above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from analog_snu.errors import DataError
from analog_snu.fitting.identifiability import numeric_hessian
from analog_snu.fitting.measurements import ProgrammingData
from analog_snu.fitting.model import (
    EffectiveModel,
    mean_drift_factor,
    programming_sigma,
    read_noise_sigma,
)

__all__ = ["ProgrammingFit", "fit_programming", "read_spread", "ZERO_BAND", "MIN_STUCK_FOR_GMAX",
           "MIN_DEVICES_PER_BIN", "BINS"]

#: a read at or below this fraction of g_max is "at 0 µS"
ZERO_BAND = 1e-3
#: stuck-at-g_max devices (with low targets) needed to fit g_max and its spread
MIN_STUCK_FOR_GMAX = 8
#: targets below this fraction of g_max are left out of the polynomial fit (the clamp at 0 µS and the
#: clip of the read noise make their reads far from Gaussian); the polynomial's c_0 is then its intercept
MIN_TARGET = 0.04
#: g_max spread assumed when leaving out the targets a device's own g_max may cut, while the spread
#: is not fitted (too few stuck-SET devices): the inherited value may be far too small
UNKNOWN_SPREAD = 0.1
#: conductance bins over [0, g_max] for the bin check and the goodness-of-fit figures
BINS = 8
#: devices a bin needs to count for the polynomial (which needs one bin per coefficient)
MIN_DEVICES_PER_BIN = 10
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


@dataclass(frozen=True)
class ProgrammingFit:
    """Result of :func:`fit_programming`. ``stuck``: per device 0 working, 1 at g_max, 2 at 0 µS."""

    model: EffectiveModel
    fitted: tuple[str, ...]
    """Effective fields estimated from the data."""
    stuck: np.ndarray
    used: np.ndarray
    """Devices in the polynomial fit (bool, (N,))."""
    counts: dict[str, int]
    hessian: np.ndarray | None
    """Of the negative log-likelihood in the coefficients, at the optimum."""


def _read_terms(model: EffectiveModel, g_target: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the read's mean and variance take besides the programming noise: the mean drift factor,
    the variance of (target x drift factor) and the read-noise variance. Shape: each like ``g_target``."""
    drift_mean, drift_var = mean_drift_factor(model, g_target, t)
    mean = g_target * drift_mean
    return drift_mean, mean, (mean * read_noise_sigma(model, g_target, t)) ** 2 + g_target**2 * drift_var


def _spread(sigma_p: np.ndarray, terms: tuple[np.ndarray, ...]) -> np.ndarray:
    drift_mean, _, other = terms
    return np.sqrt(np.maximum((sigma_p * drift_mean) ** 2 + other, 0.0))


def read_spread(model: EffectiveModel, g_target: np.ndarray, t: np.ndarray,
                coeffs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (µS) of the read of a working device programmed to ``g_target``, read at ``t``."""
    terms = _read_terms(model, g_target, t)
    return terms[1], _spread(programming_sigma(model, g_target, coeffs), terms)


def _robust_spread(data: ProgrammingData, model: EffectiveModel, mean: np.ndarray) -> np.ndarray:
    """Per device, the spread of the reads around their mean in its conductance bin, from the
    median absolute deviation (stuck devices are outliers it ignores). Shape: (N,)."""
    edges = np.linspace(0.0, model.g_max, BINS + 1)
    index = np.clip(np.searchsorted(edges, data.g_target, side="right") - 1, 0, BINS - 1)
    residual = data.g_measured - mean
    spread = np.full(data.devices, np.nan)
    for b in range(BINS):
        inside = (index == b) & (data.g_measured > ZERO_BAND * model.g_max)
        if inside.sum() >= 5:
            spread[index == b] = 1.4826 * np.median(np.abs(residual[inside] - np.median(residual[inside])))
    return spread


def _classify(data: ProgrammingData, model: EffectiveModel, coeffs: np.ndarray | None = None):
    mean, spread = read_spread(model, data.g_target, data.t, coeffs)
    if coeffs is None:  # nothing fitted yet: the base device's spread may be far off, the data's own is not
        robust = _robust_spread(data, model, mean)
        spread = np.where(np.isfinite(robust), np.maximum(robust, 0.5 * spread), spread)
    band = ZERO_BAND * model.g_max
    at_zero = data.g_measured <= band
    eligible_zero = mean - 5 * spread > band
    # stuck SET: far above the target and at saturation (a device's own g_max is far above g_max / 2)
    high = (data.g_measured > mean + 6 * np.maximum(spread, 1e-3 * model.g_max)) & (data.g_measured > 0.5 * model.g_max)
    return mean, spread, at_zero, eligible_zero, high


def _stuck_statistics(data: ProgrammingData, model: EffectiveModel, coeffs: np.ndarray | None):
    """(model with fractions and g_max spread, fitted names, stuck flags, counts, spread)."""
    mean, spread, at_zero, eligible_zero, high = _classify(data, model, coeffs)
    fitted: list[str] = []
    # stuck-SET reads are each device's own g_max; targets far below any of them select the devices
    # independently of their g_max (a cut on the read would favour the high ones)
    saturated = data.g_measured[high & (mean + 6 * spread < 0.5 * model.g_max)]
    if saturated.size >= MIN_STUCK_FOR_GMAX:
        model = model.updated(g_max_spread=float(saturated.std(ddof=1) / model.g_max))
        fitted.append("g_max_spread")
    eligible_gmax = mean + 6 * spread < model.g_max * (1 - 4 * model.g_max_spread)
    counts = {"eligible_zero": int(eligible_zero.sum()), "stuck_zero": int((at_zero & eligible_zero).sum()),
              "eligible_gmax": int(eligible_gmax.sum()), "stuck_gmax": int((high & eligible_gmax).sum()),
              "stuck_gmax_for_spread": int(saturated.size)}
    values = {}
    if counts["eligible_zero"]:
        values["fraction_at_zero"] = counts["stuck_zero"] / counts["eligible_zero"]
    if counts["eligible_gmax"]:
        values["fraction_at_gmax"] = counts["stuck_gmax"] / counts["eligible_gmax"]
    model = model.updated(**values)
    fitted += list(values)
    stuck = np.where(high, 1, np.where(at_zero & eligible_zero, 2, 0))
    return model, fitted, stuck, counts, spread


def _negative_log_likelihood(coeffs: np.ndarray, model: EffectiveModel, target: np.ndarray,
                             terms: tuple[np.ndarray, ...], read: np.ndarray, censored: np.ndarray,
                             grid: np.ndarray) -> float:
    on_grid = np.polynomial.polynomial.polyval(grid, coeffs)
    if (on_grid < 0).any() or (on_grid > 3 * model.g_max).any():  # the device's valid range of sigma
        return 1e30
    mean = terms[1]
    spread = np.maximum(_spread(programming_sigma(model, target, coeffs), terms), 1e-6 * model.g_max)
    band = ZERO_BAND * model.g_max
    f0 = model.fraction_at_zero
    z = (read - mean) / spread
    log_density = np.log1p(-f0) - 0.5 * z**2 - np.log(spread) - _LOG_SQRT_2PI
    log_censored = np.log(f0 + (1 - f0) * special.ndtr((band - mean) / spread) + 1e-300)
    return float(-np.where(censored, log_censored, log_density).sum())


def fit_programming(data: ProgrammingData, model: EffectiveModel, start: np.ndarray | None = None, *,
                    passes: int = 2, hessian: bool = True) -> ProgrammingFit:
    """Stuck fractions, ``g_max`` (when enough stuck-SET devices), and the polynomial, by maximum
    likelihood. ``passes``: classify-then-fit rounds; ``hessian``: also the curvature at the optimum."""
    coeffs = np.asarray(model.coeffs if start is None else start, dtype=float)
    grid = np.linspace(0.0, 1.0, 101)
    for round_ in range(passes):  # classify with the data's spread, fit, classify again with the fitted one
        model, fitted, stuck, counts, _ = _stuck_statistics(data, model, None if round_ == 0 and start is None
                                                             else coeffs)
        mean, spread = read_spread(model, data.g_target, data.t, coeffs)
        spread_guard = model.g_max_spread if "g_max_spread" in fitted else max(model.g_max_spread, UNKNOWN_SPREAD)
        ceiling = model.g_max * (1 - 2.5 * spread_guard)  # a device's own g_max cuts 0.6 % of these targets
        used = ((stuck == 0) & (data.g_target < ceiling) & (mean - 2 * spread > 0)
                & (data.g_target >= MIN_TARGET * model.g_max))
        if used.sum() < MIN_DEVICES_PER_BIN * coeffs.size:
            raise DataError(f"{data.source}, column g_measured_uS: only {int(used.sum())} devices read like working "
                            f"devices in the range the programming noise is fitted over; {MIN_DEVICES_PER_BIN * coeffs.size}"
                            " needed (are the reads in µS and against the right g_max?)")
        args = (model, data.g_target[used], _read_terms(model, data.g_target[used], data.t[used]),
                data.g_measured[used], data.g_measured[used] <= ZERO_BAND * model.g_max, grid)
        result = optimize.minimize(_negative_log_likelihood, coeffs, args=args, method="Nelder-Mead",
                                   options={"xatol": 1e-4, "fatol": 1e-2, "maxiter": 4000})
        coeffs = result.x
    model = model.updated(coeffs=tuple(float(c) for c in coeffs))
    model, fitted, stuck, counts, _ = _stuck_statistics(data, model, coeffs)
    curvature = numeric_hessian(lambda c: _negative_log_likelihood(c, *args), coeffs) if hessian else None
    return ProgrammingFit(model, ("coeffs", *fitted), stuck, used, counts, curvature)
