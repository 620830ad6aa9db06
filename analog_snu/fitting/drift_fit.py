r"""Drift data: ``t0`` and the mean and spread of nu as functions of the target, by maximum likelihood.

Each read is the model's own: :math:`g_k = G_P f_k (1 + s_k z_k)` with
:math:`f_k = ((t_k + t_0)/t_0)^{-\nu}`, :math:`z_k` standard normal and :math:`s_k = \sigma_r(G_P, t_k)`
the 1/f read noise (from the read-noise fit or the base device; a plug-in per device at the mean of
its reads undrifted, and the starting ``t0``). A read at 0 µS is censored: with :math:`s_k` known
its probability :math:`\Phi(-1/s_k)` does not depend on the fitted parameters, so it drops out.
Per device, the likelihood of its reads given nu is computed on a grid of nu (around its
least-squares nu, or over [0, 0.5] where the reads say little), with its own :math:`G_P`
integrated out (flat prior on :math:`\ln G_P`, Laplace's method). The marginal likelihood of the
device is then

.. math::

    \ell = \ln \int_0^\infty p(g \mid \nu)\,[\mathcal N(\nu; \mu, \sigma^2) + \mathcal N(-\nu; \mu, \sigma^2)]\,d\nu

(nu is :math:`|N(\mu(G_T), \sigma(G_T)^2)|`; the read likelihood constant over each grid cell, the
prior's mass per cell exact, so a prior narrower than a cell is not missed), mixed with
:math:`p(g \mid 0)` at the weight of the stuck-at-``g_max`` fraction (those devices do not drift,
and at high targets they read like working ones). No device is left out for being noisy: its
broad likelihood weighs little. ``t0`` enters through the curvature of :math:`\ln G` against
:math:`\ln t` near :math:`t \approx t_0`: reads only at :math:`t \gg t_0` do not inform it (then it
is inherited), reads in a narrow window trade it off against the nu statistics (reported by
:mod:`~analog_snu.fitting.identifiability`).

Devices that do not drift like working ones are left out: fewer than two reads above 0 µS (stuck
at 0), or a first read 6 spreads above the target (stuck at ``g_max``). The four clip bounds of mu
and sigma keep the base device's shape, scaled by one fitted factor (a device whose drift is the
base's times a ``drift.scale`` is then fitted exactly). The clipped lines make the likelihood
multimodal (a flat line above its clip against a steeper one cut by it): the fit starts from the
given values and from the base's nu model scaled to the data's median nu, and keeps the better.
A line that few devices see unclipped (fewer than :data:`MIN_LINE_DEVICES` over an e-fold of
conductance) is not fixed by the data and is reported as not identified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from analog_snu.fitting.identifiability import numeric_hessian
from analog_snu.fitting.measurements import DriftData
from analog_snu.fitting.model import EffectiveModel, nu_statistics, read_noise_sigma

__all__ = ["DriftFit", "fit_drift", "DRIFT_PARAMETERS", "FLAT_LOG_T0", "MIN_LINE_DEVICES", "MIN_LINE_SPAN"]

DRIFT_PARAMETERS = ("t0", "nu_mean_slope", "nu_mean_offset", "nu_std_slope", "nu_std_offset", "nu_clip_scale")
#: the clip bounds, fitted as the base device's times one common factor (``nu_clip_scale``)
CLIPS = ("nu_mean_min", "nu_mean_max", "nu_std_min", "nu_std_max")
#: nodes of each device's nu grid (the read likelihood constant over each node's cell, the prior's
#: mass per cell exact)
_UNIT = np.linspace(0.0, 1.0, 33)
#: the grid spans the device's least-squares nu +- this many of its standard errors (nu >= 0), at
#: least _GRID_MIN and at most _GRID_SPAN wide
_GRID_WIDTH, _GRID_MIN, _GRID_SPAN = 8.0, 0.01, 0.5
#: alternations of the slope and t0 maxima
_ALTERNATIONS = 6
#: a line of nu's mean or spread needs this many devices where it is not clipped, spanning
#: MIN_LINE_SPAN in ln(G_T) (an e-fold of conductance), else its slope and offset are not identified
MIN_LINE_DEVICES = 10
MIN_LINE_SPAN = 1.0
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
    earliest: float
    """The earliest read of a usable device (s after programming)."""
    unclipped: dict[str, int]
    """Per line (``"mean"``, ``"std"``): usable devices whose target lies where the fitted line is
    not clipped and which span at least :data:`MIN_LINE_SPAN` in ln(G_T) (0 when they do not)."""


def _usable(data: DriftData, model: EffectiveModel, spread_of) -> np.ndarray:
    """Devices that drift like working ones: two or more reads above 0 µS at different times (a
    device stuck at 0 reads 0 throughout) and a first read below 6 spreads above the target
    (stuck at ``g_max``)."""
    valid = np.isfinite(data.g)
    positive = valid & (data.g > 0)
    times = np.where(positive, data.t, np.nan)
    two_times = np.nanmax(np.where(positive, times, -np.inf), 1) > np.nanmin(np.where(positive, times, np.inf), 1)
    first = np.nanmin(np.where(valid, data.t, np.inf), 1)
    first_g = data.g[np.arange(data.devices), np.argmin(np.where(valid, data.t, np.inf), 1)]
    mean, spread = spread_of(data.g_target, first)
    not_high = first_g <= mean + 6 * np.maximum(spread, 1e-3 * model.g_max)
    return two_times & not_high


class _Likelihood:
    """The marginal log-likelihood of the usable devices (arrays prepared once)."""

    def __init__(self, data: DriftData, model: EffectiveModel, used: np.ndarray) -> None:
        self.model = model
        g, t = data.g[used], data.t[used]
        # reads at 0 µS are censored; with the read noise known their probability does not depend
        # on the fitted parameters, so they drop out of the likelihood
        valid = np.isfinite(g) & (g > 0)
        self.t = np.where(valid, t, 1.0)
        self.g = np.where(valid, g, 1.0)
        self.n = valid.sum(1)
        self.g_target = data.g_target[used]
        self.log_g = np.log(np.maximum(self.g_target / model.g_max, 1e-7))
        self.clips = np.array([getattr(model, name) for name in CLIPS])
        # the read noise of each device at its G_P: the mean of its reads undrifted at the model's
        # mean nu (a plug-in; sigma_r depends on G_P weakly) and the starting t0
        mean, _ = nu_statistics(model, self.g_target)
        undrifted = self.g * (1.0 + self.t / model.t0) ** np.abs(mean)[:, None]
        g_p = np.where(valid, undrifted, 0.0).sum(1) / self.n
        s = np.maximum(read_noise_sigma(model, g_p[:, None], self.t), 1e-9)
        self.w = np.where(valid, 1.0 / s**2, 0.0)
        self.y = np.log(self.g)
        self._grid_key: float | None = None
        self._grid: tuple[np.ndarray, ...] | None = None

    def grid(self, log_t0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per device: nu nodes (D, J); the likelihood of its reads at each node (its G_P integrated
        out) times the trapezoid weights, over its peak (D, J); the log of that peak (D,); the
        log-likelihood at nu = 0 (D,). Cached for one ``t0``."""
        if self._grid_key == log_t0 and self._grid is not None:
            return self._grid
        t0, w = float(np.exp(log_t0)), self.w
        big_l = np.log1p(self.t / t0)  # (D, T)
        # where the device's likelihood lies: the weighted least-squares slope of its log-reads
        sw = w.sum(1)
        l_c = big_l - (w * big_l).sum(1, keepdims=True) / sw[:, None]
        y_c = self.y - (w * self.y).sum(1, keepdims=True) / sw[:, None]
        sxx = np.maximum((w * l_c**2).sum(1), 1e-300)
        nu_hat = -(w * l_c * y_c).sum(1) / sxx
        half = _GRID_WIDTH * np.sqrt(1.0 / sxx)
        low = np.maximum(nu_hat - half, 0.0)
        # a broad likelihood (noisy reads, a short window of times): the prior shapes the integrand,
        # over at most _GRID_SPAN from the lowest nu the device allows
        high = np.minimum(np.maximum(nu_hat + half, low + _GRID_MIN), low + _GRID_SPAN)
        nodes = low[:, None] + (high - low)[:, None] * _UNIT  # (D, J)
        # each node stands for the cell between its neighbours' midpoints: the prior's mass in a cell is
        # exact whatever its width (a prior narrower than the cells is not missed between nodes)
        edges = np.concatenate([nodes[:, :1], 0.5 * (nodes[:, 1:] + nodes[:, :-1]), nodes[:, -1:]], 1)  # (D, J + 1)
        log_reads = self._read_log_likelihood(np.concatenate([nodes, np.zeros_like(low)[:, None]], 1), big_l)
        peak = log_reads[:, :-1].max(1)
        scaled = np.exp(log_reads[:, :-1] - peak[:, None])
        self.nu_hat = nu_hat
        self._grid = edges, scaled, peak, log_reads[:, -1]
        self._grid_key = log_t0
        return self._grid

    def _read_log_likelihood(self, nu: np.ndarray, big_l: np.ndarray) -> np.ndarray:
        r"""ln p(reads | nu) up to terms without nu: each read :math:`g_k = G_P f_k (1 + s_k z_k)`,
        :math:`f_k = e^{-\nu L_k}`, with a flat prior on :math:`\ln G_P` integrated out by Laplace's
        method in :math:`\ln(1/G_P)`. Shape: nu (D, J) -> (D, J)."""
        lam = nu[:, :, None] * big_l[:, None, :]  # (D, J, T)
        r = self.g[:, None, :] * np.exp(lam)  # the reads undrifted
        w = self.w[:, None, :]
        a2 = (w * r * r).sum(-1)
        b = (w * r).sum(-1)
        n = self.n[:, None].astype(float)
        a = (b + np.sqrt(b * b + 4.0 * a2 * n)) / (2.0 * a2)  # 1/G_P at the maximum
        curvature = 2.0 * a2 * a * a - b * a
        jacobian = (np.where(w > 0, lam, 0.0)).sum(-1)  # d g / d r of the reads
        return jacobian + n * np.log(a) - 0.5 * a2 * a * a + b * a - 0.5 * np.log(curvature)

    def per_device(self, log_t0: float, slopes: tuple[float, ...]) -> np.ndarray:
        edges, scaled, peak, log_at_zero = self.grid(log_t0)
        low_m, high_m, low_s, high_s = self.clips * np.exp(slopes[4])  # nu_statistics, inlined (hot loop)
        mean = np.clip(slopes[0] * self.log_g + slopes[1], low_m, high_m)[:, None]
        inv = 1.0 / np.maximum(np.clip(slopes[2] * self.log_g + slopes[3], low_s, high_s), 1e-6)[:, None]
        # nu = |N(mean, std^2)|: its distribution function on nu >= 0, and each cell's mass
        cdf = special.ndtr((edges - mean) * inv) + special.ndtr((edges + mean) * inv)
        with np.errstate(divide="ignore"):
            log_mix = np.log((scaled * np.diff(cdf, axis=1)).sum(1)) + peak
        stuck = self.model.fraction_at_gmax  # stuck-SET devices do not drift: nu = 0
        if stuck > 0:
            log_mix = np.logaddexp(np.log1p(-stuck) + log_mix, np.log(stuck) + log_at_zero)
        return log_mix

    def negative(self, x: np.ndarray, fixed_log_t0: float | None) -> float:
        log_t0, slopes = (fixed_log_t0, x) if fixed_log_t0 is not None else (x[0], x[1:])
        if not _LOG_T0_BOUNDS[0] <= log_t0 <= _LOG_T0_BOUNDS[1] or np.abs(slopes[:4]).max() > 1.0 \
                or abs(slopes[4]) > 3.0:
            return 1e30
        value = -float(self.per_device(log_t0, tuple(slopes)).sum())
        return value if np.isfinite(value) else 1e30

    def data_scale(self, log_t0: float) -> float:
        """The devices' median least-squares nu over the model's median nu mean: a start for the
        scale of the whole nu model (a device drifting like the base's times a factor)."""
        self.grid(log_t0)
        mean, _ = nu_statistics(self.model, self.g_target)
        model_nu = float(np.median(np.abs(mean)))
        return float(np.median(self.nu_hat)) / model_nu if model_nu > 0 else 1.0

    def maximise(self, starts: list[np.ndarray], fixed_log_t0: float | None, options: dict) -> np.ndarray:
        """The best of the maxima from each start (the clipped lines make the likelihood multimodal)."""
        found = [self._maximise(x0, fixed_log_t0, options) for x0 in starts]
        values = [self.negative(x, fixed_log_t0) for x in found]
        return found[int(np.argmin(values))]

    def _maximise(self, x0: np.ndarray, fixed_log_t0: float | None, options: dict) -> np.ndarray:
        """The maximum over the slopes (Nelder-Mead, t0 held) alternated with one over ln t0
        (bounded Brent, the slopes held): each read-likelihood grid then serves many evaluations."""
        if fixed_log_t0 is not None:
            return optimize.minimize(self.negative, x0, args=(fixed_log_t0,), method="Nelder-Mead", options=options).x
        x, best = np.array(x0, dtype=float), np.inf
        for _ in range(_ALTERNATIONS):
            x[1:] = optimize.minimize(self.negative, x[1:], args=(x[0],), method="Nelder-Mead", options=options).x
            bounds = (max(_LOG_T0_BOUNDS[0], x[0] - 3.0), min(_LOG_T0_BOUNDS[1], x[0] + 3.0))
            step = optimize.minimize_scalar(lambda v: self.negative(np.concatenate([[v], x[1:]]), None), bounds=bounds,
                                            method="bounded", options={"xatol": 1e-3})
            x[0] = step.x
            if best - step.fun < 1e-2:
                break
            best = step.fun
        return x


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
    starts = [slopes]
    if start is None:  # also from the base's nu model scaled to the data's typical nu
        k = min(max(likelihood.data_scale(float(np.log(model.t0))), 0.1), 10.0)
        starts.append(np.array([model.nu_mean_slope * k, model.nu_mean_offset * k, model.nu_std_slope * k,
                                model.nu_std_offset * k, np.log(k)]))
    options = {"xatol": 1e-4, "fatol": 1e-2, "maxiter": 6000, "adaptive": True}
    names: tuple[str, ...] = ("ln_t0", *DRIFT_PARAMETERS[1:5], "ln_clip_scale")
    identified, curve = True, None
    if fix_t0 is not True:
        x = likelihood.maximise([np.concatenate([x0[:1], s]) for s in starts], None, options)
        if fix_t0 is None or hessian:
            curve = numeric_hessian(lambda y: likelihood.negative(y, None), x)
            identified = _t0_identified(curve) if fix_t0 is None else True
    if fix_t0 is True or not identified:
        fixed = float(np.log(model.t0))
        best = likelihood.maximise(starts, fixed, options)
        curve = numeric_hessian(lambda y: likelihood.negative(y, fixed), best) if hessian else None
        x = np.concatenate([[fixed], best])
        names = (*DRIFT_PARAMETERS[1:5], "ln_clip_scale")
    if curve is None:
        curve = np.full((len(names), len(names)), np.nan)
    k = float(np.exp(x[5]))
    fitted = model.updated(t0=float(np.exp(x[0])), nu_mean_slope=float(x[1]), nu_mean_offset=float(x[2]),
                           nu_std_slope=float(x[3]), nu_std_offset=float(x[4]),
                           **{name: getattr(model, name) * k for name in CLIPS})
    chosen = (*(DRIFT_PARAMETERS[:5] if identified and fix_t0 is not True else DRIFT_PARAMETERS[1:5]), *CLIPS)
    earliest = float(np.nanmin(data.t[used])) if used.any() else float("nan")
    return DriftFit(fitted, chosen, used, curve, names, identified, earliest, _unclipped(fitted, data.g_target[used]))


def _unclipped(model: EffectiveModel, g_target: np.ndarray) -> dict[str, int]:
    """How many targets see each of nu's lines unclipped (a line seen by few devices, or over a
    narrow range, is not fixed by them: its slope and offset trade off along a ridge)."""
    log_g = np.log(np.maximum(g_target / model.g_max, 1e-7))
    out = {}
    for kind in ("mean", "std"):
        line = getattr(model, f"nu_{kind}_slope") * log_g + getattr(model, f"nu_{kind}_offset")
        inside = (line > getattr(model, f"nu_{kind}_min")) & (line < getattr(model, f"nu_{kind}_max"))
        span = float(np.ptp(log_g[inside])) if inside.any() else 0.0
        out[kind] = int(inside.sum()) if span >= MIN_LINE_SPAN else 0
    return out


def _t0_identified(hessian: np.ndarray) -> bool:
    try:
        var_log_t0 = np.linalg.inv(hessian)[0, 0]
    except np.linalg.LinAlgError:
        return False
    return bool(np.isfinite(var_log_t0) and 0 <= var_log_t0 <= FLAT_LOG_T0**2)
