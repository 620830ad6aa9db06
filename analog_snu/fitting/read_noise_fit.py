r"""Read-noise data: the 1/f amplitude ``q`` and its conductance exponent ``e``, by maximum likelihood.

The model reads a device at time :math:`t` as :math:`G(t)(1 + \sigma_r(G_P, t)\,\xi)` with a
fresh :math:`\xi` per read. Repeated reads at close times of one device are its drifting
conductance (a straight line over the short window, fitted per device) plus independent
Gaussian noise of std :math:`\bar G \sigma_r(G_P, \bar t)`, so the residual sum of squares
:math:`S` of a device with :math:`n` reads follows :math:`\sigma^2\chi^2_{n-2}`:

.. math::

    \ell(q, e) = \sum_d -(n_d - 2)\ln\sigma_d - \frac{S_d}{2\sigma_d^2}, \qquad
    \sigma_d = \bar G_d\,\min\bigl(q_\mathrm{max}, q/\max(10^{-3}, (G_{P,d}/g_\mathrm{max})^e)\bigr)
    \sqrt{\ln\tfrac{\bar t_d + t_0 + t_r}{2 t_r}}

with :math:`G_P` the mean read undone by the model's mean drift. ``q_max`` and ``t_read`` are
not fitted (``t_read`` only scales ``q``, and ``q_max`` binds below ~1 % of ``g_max``). Devices
reading 0 µS or exactly constant (stuck) are left out. Reads spanning a narrow range of
conductance fix ``q`` at that conductance but not ``e``: the two then trade off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from analog_snu.fitting.identifiability import numeric_hessian
from analog_snu.fitting.measurements import ReadNoiseData
from analog_snu.fitting.model import EffectiveModel, nu_statistics, read_noise_sigma

__all__ = ["ReadNoiseFit", "fit_read_noise", "device_read_statistics"]


@dataclass(frozen=True)
class ReadNoiseFit:
    """Result of :func:`fit_read_noise`."""

    model: EffectiveModel
    fitted: tuple[str, ...]
    used: np.ndarray
    hessian: np.ndarray
    names: tuple[str, ...]


def device_read_statistics(data: ReadNoiseData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per device: mean read, mean time, residual sum of squares about a straight line in t, and
    the number of reads. Shape: each (D,)."""
    valid = np.isfinite(data.g)
    n = valid.sum(1)
    g = np.where(valid, data.g, 0.0)
    t = np.where(valid, data.t, 0.0)
    g_mean, t_mean = g.sum(1) / n, t.sum(1) / n
    t_c = np.where(valid, t - t_mean[:, None], 0.0)
    g_c = np.where(valid, g - g_mean[:, None], 0.0)
    stt = (t_c**2).sum(1)
    slope = np.where(stt > 0, (t_c * g_c).sum(1) / np.where(stt > 0, stt, 1.0), 0.0)
    rss = ((g_c - slope[:, None] * t_c) ** 2 * valid).sum(1)
    return g_mean, t_mean, rss, n


def _programmed(model: EffectiveModel, g_mean: np.ndarray, t_mean: np.ndarray) -> np.ndarray:
    mean, _ = nu_statistics(model, g_mean)
    return g_mean * ((t_mean + model.t0) / model.t0) ** mean


def fit_read_noise(data: ReadNoiseData, model: EffectiveModel, start: EffectiveModel | None = None,
                   hessian: bool = True) -> ReadNoiseFit:
    """Maximum-likelihood ``q`` and ``exponent`` of the effective read noise."""
    g_mean, t_mean, rss, n = device_read_statistics(data)
    positive = np.where(np.isfinite(data.g), data.g > 0, True).all(1)
    used = positive & (rss > 0) & (n >= 3)
    g_mean, t_mean, rss, n = g_mean[used], t_mean[used], rss[used], n[used]
    g_prog = _programmed(model, g_mean, t_mean)

    def negative(x: np.ndarray) -> float:
        q, exponent = float(np.exp(x[0])), float(x[1])
        if not 0.0 <= exponent <= 10.0:
            return 1e30
        sigma = g_mean * read_noise_sigma(model, g_prog, t_mean, q=q, exponent=exponent)
        sigma = np.maximum(sigma, 1e-12)
        return float(((n - 2) * np.log(sigma) + rss / (2 * sigma**2)).sum())

    begin = start or model
    x0 = np.array([np.log(max(begin.q, 1e-6)), begin.exponent])
    result = optimize.minimize(negative, x0, method="Nelder-Mead",
                               options={"xatol": 1e-5, "fatol": 1e-2, "maxiter": 2000})
    curvature = numeric_hessian(negative, result.x) if hessian else np.full((2, 2), np.nan)
    fitted = model.updated(q=float(np.exp(result.x[0])), exponent=float(result.x[1]))
    return ReadNoiseFit(fitted, ("q", "exponent"), used, curvature, ("ln_q", "exponent"))
