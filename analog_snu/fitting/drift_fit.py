r"""Drift data: ``t0`` and the mean and spread of nu as functions of the target, by maximum likelihood.

Per device the model reads :math:`\ln G(t_k) = \ln G_P - \nu L_k + \epsilon_k` with
:math:`L_k = \ln(1 + t_k/t_0)` and :math:`\epsilon_k` the read noise (relative std
:math:`s_k = \sigma_r(G_P, t_k)`, from the read-noise fit or the base device, at the first read
and the starting ``t0``; the log of a read is Gaussian to first order). With the device's own :math:`\ln G_P` integrated out (flat prior)
the reads of a device give its nu estimate :math:`\hat\nu` and variance :math:`v` by weighted
least squares, and the marginal likelihood

.. math::

    \ell = -\tfrac12 \mathrm{RSS}(t_0) + \tfrac12 \ln v - \tfrac12\textstyle\sum_k \ln s_k^2
    - \tfrac12 \ln \textstyle\sum_k s_k^{-2}
    + \ln \int_0^\infty \mathcal N(\nu; \hat\nu, v)\,[\mathcal N(\nu; \mu, \sigma^2)
    + \mathcal N(-\nu; \mu, \sigma^2)]\,d\nu

(nu is :math:`|N(\mu(G_T), \sigma(G_T)^2)|`; the integral is closed form), mixed with
:math:`\mathcal N(0; \hat\nu, v)` at the weight of the stuck-at-``g_max`` fraction (those
devices do not drift, and at high targets they read like working ones). ``t0`` enters through
the curvature of :math:`\ln G` against :math:`\ln t` near :math:`t \approx t_0`: reads only at
:math:`t \gg t_0` do not inform it (then it is inherited), reads in a narrow window trade it off
against the nu offset (reported by :mod:`~analog_snu.fitting.identifiability`).

Devices that do not drift like working ones are left out: any read at 0 µS (stuck at 0 or
clamped), a first read 6 spreads above the target (stuck at ``g_max``), or read noise above
:data:`MAX_RELATIVE_READ_NOISE` (the log-normal step no longer holds). The four clip bounds of mu
and sigma keep the base device's shape, scaled by one fitted factor (a device whose drift is the
base's times a ``drift.scale`` is then fitted exactly; the data rarely reach every bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from analog_snu.fitting.identifiability import numeric_hessian
from analog_snu.fitting.measurements import DriftData
from analog_snu.fitting.model import EffectiveModel, nu_statistics, read_noise_sigma

__all__ = ["DriftFit", "fit_drift", "DRIFT_PARAMETERS", "MAX_RELATIVE_READ_NOISE", "FLAT_LOG_T0"]

DRIFT_PARAMETERS = ("t0", "nu_mean_slope", "nu_mean_offset", "nu_std_slope", "nu_std_offset", "nu_clip_scale")
#: the clip bounds, fitted as the base device's times one common factor (``nu_clip_scale``)
CLIPS = ("nu_mean_min", "nu_mean_max", "nu_std_min", "nu_std_max")
#: devices with a larger relative read noise are left out of the drift fit
MAX_RELATIVE_READ_NOISE = 0.12
#: a std of ln t0 above this (an e-fold and more) means the data do not fix t0: it is inherited
FLAT_LOG_T0 = 1.0
_LOG_T0_BOUNDS = (np.log(1e-6), np.log(1e9))


@dataclass(frozen=True)
class DriftFit:
    """Result of :func:`fit_drift`."""

    model: EffectiveModel
    fitted: tuple[str, ...]
    used: np.ndarray
    """Devices in the fit (bool, (D,))."""
    hessian: np.ndarray
    """Of the negative log-likelihood in ``(ln t0, m1, m0, s1, s0)`` (or without ``ln t0``)."""
    names: tuple[str, ...]
    t0_identified: bool


def _usable(data: DriftData, model: EffectiveModel, spread_of) -> np.ndarray:
    valid = np.isfinite(data.g)
    positive = np.where(valid, data.g > 0, True).all(1)
    first = np.nanmin(np.where(valid, data.t, np.inf), 1)
    first_g = data.g[np.arange(data.devices), np.argmin(np.where(valid, data.t, np.inf), 1)]
    mean, spread = spread_of(data.g_target, first)
    not_high = first_g <= mean + 6 * np.maximum(spread, 1e-3 * model.g_max)
    noise = np.where(valid, read_noise_sigma(model, first_g[:, None], np.where(valid, data.t, 1.0)), 0).max(1)
    return positive & not_high & (noise <= MAX_RELATIVE_READ_NOISE)


class _Likelihood:
    """The marginal log-likelihood of the usable devices (arrays prepared once)."""

    def __init__(self, data: DriftData, model: EffectiveModel, used: np.ndarray) -> None:
        self.model = model
        valid = np.isfinite(data.g[used])
        self.valid = valid
        self.t = np.where(valid, data.t[used], 1.0)
        self.y = np.where(valid, np.log(np.where(valid, data.g[used], 1.0)), 0.0)
        first = np.argmin(np.where(valid, self.t, np.inf), 1)
        self.g_first = data.g[used][np.arange(valid.shape[0]), first]
        self.g_target = data.g_target[used]

        # read-noise weights at the starting t0 (t0 moves them by a few per cent only)
        s = np.maximum(read_noise_sigma(model, self.g_first[:, None], self.t), 1e-9)
        self.w = np.where(valid, 1.0 / s**2, 0.0)
        self.log_det = np.where(valid, np.log(s**2), 0.0).sum(1)

    def per_device(self, log_t0: float, slopes: tuple[float, ...]) -> np.ndarray:
        t0 = float(np.exp(log_t0))
        w = self.w
        u = -np.log1p(self.t / t0)
        sw = w.sum(1)
        u_c = u - (w * u).sum(1, keepdims=True) / sw[:, None]
        y_c = self.y - (w * self.y).sum(1, keepdims=True) / sw[:, None]
        sxx = np.maximum((w * u_c**2).sum(1), 1e-300)
        sxy = (w * u_c * y_c).sum(1)
        rss = (w * y_c**2).sum(1) - sxy**2 / sxx
        nu_hat, v = sxy / sxx, 1.0 / sxx
        mean, std = nu_statistics(self.model, self.g_target, slopes[:4], float(np.exp(slopes[4])))
        std = np.maximum(std, 1e-6)
        total = v + std**2
        w2 = v * std**2 / total
        terms = []
        for mu in (mean, -mean):
            m = (nu_hat * std**2 + mu * v) / total
            terms.append(-0.5 * (nu_hat - mu) ** 2 / total - 0.5 * np.log(2 * np.pi * total)
                         + special.log_ndtr(m / np.sqrt(w2)))
        log_mix = np.logaddexp(*terms)
        stuck = self.model.fraction_at_gmax  # stuck-SET devices do not drift: nu = 0
        if stuck > 0:
            log_zero = -0.5 * nu_hat**2 / v - 0.5 * np.log(2 * np.pi * v)
            log_mix = np.logaddexp(np.log1p(-stuck) + log_mix, np.log(stuck) + log_zero)
        return -0.5 * rss + 0.5 * np.log(v) - 0.5 * self.log_det - 0.5 * np.log(sw) + log_mix

    def negative(self, x: np.ndarray, fixed_log_t0: float | None) -> float:
        log_t0, slopes = (fixed_log_t0, x) if fixed_log_t0 is not None else (x[0], x[1:])
        if not _LOG_T0_BOUNDS[0] <= log_t0 <= _LOG_T0_BOUNDS[1] or np.abs(slopes[:4]).max() > 1.0 \
                or abs(slopes[4]) > 3.0:
            return 1e30
        value = -float(self.per_device(log_t0, tuple(slopes)).sum())
        return value if np.isfinite(value) else 1e30


def fit_drift(data: DriftData, model: EffectiveModel, spread_of, start: EffectiveModel | None = None,
              fix_t0: bool | None = None, hessian: bool = True) -> DriftFit:
    """Maximum-likelihood ``t0`` and nu statistics (``spread_of(g_target, t) -> (mean, std)`` of a
    working device's read, to recognise stuck ones). ``fix_t0``: ``None`` decides from the curvature."""
    used = _usable(data, model, spread_of)
    likelihood = _Likelihood(data, model, used)
    begin = start or model
    clip_scale = begin.nu_mean_max / model.nu_mean_max if model.nu_mean_max > 0 else 1.0
    slopes = np.array([begin.nu_mean_slope, begin.nu_mean_offset, begin.nu_std_slope, begin.nu_std_offset,
                       np.log(max(clip_scale, 1e-3))])
    x0 = np.concatenate([[np.log(begin.t0)], slopes])
    options = {"xatol": 1e-4, "fatol": 1e-2, "maxiter": 6000, "adaptive": True}
    names: tuple[str, ...] = ("ln_t0", *DRIFT_PARAMETERS[1:5], "ln_clip_scale")
    identified, curve = True, None
    if fix_t0 is not True:
        result = optimize.minimize(likelihood.negative, x0, args=(None,), method="Nelder-Mead", options=options)
        x = result.x
        if fix_t0 is None or hessian:
            curve = numeric_hessian(lambda y: likelihood.negative(y, None), x)
            identified = _t0_identified(curve) if fix_t0 is None else True
    if fix_t0 is True or not identified:
        fixed = float(np.log(model.t0))
        result = optimize.minimize(likelihood.negative, slopes, args=(fixed,), method="Nelder-Mead", options=options)
        curve = numeric_hessian(lambda y: likelihood.negative(y, fixed), result.x) if hessian else None
        x = np.concatenate([[fixed], result.x])
        names = (*DRIFT_PARAMETERS[1:5], "ln_clip_scale")
    if curve is None:
        curve = np.full((len(names), len(names)), np.nan)
    k = float(np.exp(x[5]))
    fitted = model.updated(t0=float(np.exp(x[0])), nu_mean_slope=float(x[1]), nu_mean_offset=float(x[2]),
                           nu_std_slope=float(x[3]), nu_std_offset=float(x[4]),
                           **{name: getattr(model, name) * k for name in CLIPS})
    chosen = (*(DRIFT_PARAMETERS[:5] if identified and fix_t0 is not True else DRIFT_PARAMETERS[1:5]), *CLIPS)
    return DriftFit(fitted, chosen, used, curve, names, identified)


def _t0_identified(hessian: np.ndarray) -> bool:
    try:
        var_log_t0 = np.linalg.inv(hessian)[0, 0]
    except np.linalg.LinAlgError:
        return False
    return bool(np.isfinite(var_log_t0) and 0 <= var_log_t0 <= FLAT_LOG_T0**2)
