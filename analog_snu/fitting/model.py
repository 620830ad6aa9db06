r"""The PCM model's statistics in numpy, with every ``scale`` folded into the parameters.

A :class:`~analog_snu.pcm.PCMDevice` multiplies programming noise, read noise and the
drift exponent by a ``scale`` each, and writes the programming polynomial at a reference
``g_max``. A fit estimates the *effective* quantities (the scale folded in, the polynomial at the
device's own ``g_max``), so that one device has one parameter vector:

- programming: :math:`\sigma_P(G) = \sum_i c_i (G/g_\mathrm{max})^i` µS
  (``coeffs x scale x g_max / g_max_reference``);
- read noise: :math:`\sigma_r(G_P, t) = \min(q_\mathrm{max}, q / \max(10^{-3}, (G_P/g_\mathrm{max})^e))
  \sqrt{\ln\frac{t + t_0 + t_r}{2 t_r}}` (``q`` and ``q_max`` x scale);
- drift: :math:`\nu = |\mu_\nu + \sigma_\nu \xi|`, both clipped linear in :math:`\ln(G_T/g_\mathrm{max})`
  (slopes, offsets and clips x scale; ``scale > 0`` folds through ``|.|``).

:func:`effective_parameters` reads them off a device, :func:`device_with` writes fitted values
back (scales set to 1). The equations are those of :mod:`analog_snu.pcm.device`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from analog_snu.pcm import PCMDevice

__all__ = ["EffectiveModel", "effective_parameters", "device_with", "programming_sigma", "read_noise_sigma",
           "nu_statistics", "mean_drift_factor"]

_ZERO_CLIP = 1e-7
#: Gauss-Hermite nodes and weights of a standard normal (expectations over nu)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(12)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class EffectiveModel:
    """The device's statistics with scales folded in (conductances µS, times s)."""

    g_max: float
    g_max_spread: float
    fraction_at_zero: float
    fraction_at_gmax: float
    coeffs: tuple[float, ...]
    q: float
    exponent: float
    q_max: float
    t_read: float
    t0: float
    nu_mean_slope: float
    nu_mean_offset: float
    nu_mean_min: float
    nu_mean_max: float
    nu_std_slope: float
    nu_std_offset: float
    nu_std_min: float
    nu_std_max: float

    def updated(self, **values: float) -> EffectiveModel:
        return replace(self, **values)


def effective_parameters(device: PCMDevice) -> EffectiveModel:
    """The :class:`EffectiveModel` of ``device`` (a disabled nonideality has zero effect)."""
    cond, prog, read, drift, stuck = device.conductance, device.programming, device.read_noise, device.drift, device.stuck
    p_scale = prog.scale * cond.g_max / prog.g_max_reference if prog.enabled else 0.0
    r_scale = read.scale if read.enabled else 0.0
    d_scale = drift.scale if drift.enabled else 0.0
    on = 1.0 if stuck.enabled else 0.0
    return EffectiveModel(
        g_max=cond.g_max, g_max_spread=cond.g_max_spread,
        fraction_at_zero=stuck.fraction_at_zero * on, fraction_at_gmax=stuck.fraction_at_gmax * on,
        coeffs=tuple(c * p_scale for c in prog.coeffs),
        q=read.q * r_scale, exponent=read.exponent, q_max=read.q_max * r_scale, t_read=read.t_read, t0=drift.t0,
        **{f"nu_{kind}_{part}": getattr(drift, f"nu_{kind}_{part}") * d_scale
           for kind in ("mean", "std") for part in ("slope", "offset", "min", "max")},
    )


#: effective field -> (device section, field) it is written to
_TARGETS = {
    "g_max": ("conductance", "g_max"), "g_max_spread": ("conductance", "g_max_spread"),
    "fraction_at_zero": ("stuck", "fraction_at_zero"), "fraction_at_gmax": ("stuck", "fraction_at_gmax"),
    "q": ("read_noise", "q"), "exponent": ("read_noise", "exponent"), "q_max": ("read_noise", "q_max"),
    "t_read": ("read_noise", "t_read"), "t0": ("drift", "t0"),
    **{f"nu_{k}_{p}": ("drift", f"nu_{k}_{p}") for k in ("mean", "std") for p in ("slope", "offset", "min", "max")},
}
#: the device section of each effective field group whose scale is folded
_SECTION_OF = {"programming": ("coeffs",), "read_noise": ("q", "exponent", "q_max", "t_read"),
               "drift": tuple(f"nu_{k}_{p}" for k in ("mean", "std") for p in ("slope", "offset", "min", "max"))}


def device_with(base: PCMDevice, model: EffectiveModel, sections: set[str], name: str) -> PCMDevice:
    """``base`` with the effective values of ``sections`` (``"conductance"``, ``"stuck"``,
    ``"programming"``, ``"read_noise"``, ``"drift"``) written in: those sections enabled, their
    scales 1, the programming polynomial at ``g_max_reference = g_max``. Other sections stay as in
    ``base``. Raises :class:`~analog_snu.errors.ConfigError` when a value leaves a field's range."""
    changes: dict[str, dict] = {}
    for item in fields(model):
        section, key = _TARGETS.get(item.name, ("programming", "coeffs"))
        if section in sections:
            changes.setdefault(section, {})[key] = getattr(model, item.name)
    if "programming" in sections:
        changes["programming"].update(enabled=True, scale=1.0, coeffs=list(model.coeffs), g_max_reference=model.g_max)
    for section in ("read_noise", "drift"):
        if section in sections:
            changes[section].update(enabled=True, scale=1.0)
    if "stuck" in sections:
        changes["stuck"]["enabled"] = True
    if "drift" in sections:
        changes["drift"]["t0"] = model.t0
    return base.updated({**changes, "name": name})


def programming_sigma(model: EffectiveModel, g_target: np.ndarray, coeffs: np.ndarray | None = None) -> np.ndarray:
    """:math:`\\sigma_P(G_T)` in µS. Shape: like ``g_target``."""
    coeffs = np.asarray(model.coeffs if coeffs is None else coeffs, dtype=float)
    return np.polynomial.polynomial.polyval(np.asarray(g_target) / model.g_max, coeffs)


def read_noise_sigma(model: EffectiveModel, g_programmed: np.ndarray, t: np.ndarray | float,
                     q: float | None = None, exponent: float | None = None, t0: float | None = None) -> np.ndarray:
    """Relative read-noise std at ``t`` seconds after programming (the model's 1/f form)."""
    q = model.q if q is None else q
    exponent = model.exponent if exponent is None else exponent
    t0 = model.t0 if t0 is None else t0
    ratio = np.maximum((np.abs(g_programmed) / model.g_max) ** exponent, 1e-3)
    q_s = np.minimum(q / ratio, model.q_max)
    return q_s * np.sqrt(np.log((np.asarray(t) + t0 + model.t_read) / (2 * model.t_read)))


def nu_statistics(model: EffectiveModel, g_target: np.ndarray, slopes: tuple[float, ...] | None = None,
                  clip_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the Gaussian nu is drawn from at ``g_target`` (before ``|.|``).

    ``slopes`` = (mean slope, mean offset, std slope, std offset) overrides the model's; the clip
    bounds are the model's times ``clip_scale``."""
    m1, m0, s1, s0 = slopes or (model.nu_mean_slope, model.nu_mean_offset, model.nu_std_slope, model.nu_std_offset)
    log_g = np.log(np.maximum(np.abs(g_target) / model.g_max, _ZERO_CLIP))
    k = clip_scale
    mean = np.clip(m1 * log_g + m0, model.nu_mean_min * k, model.nu_mean_max * k)
    std = np.clip(s1 * log_g + s0, model.nu_std_min * k, model.nu_std_max * k)
    return mean, std


def mean_drift_factor(model: EffectiveModel, g_target: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over nu of ``((t + t0)/t0)^-nu`` (nu ~ |N(mu, sigma^2)|, sampled on a fixed grid)."""
    mean, std = nu_statistics(model, g_target)
    nodes, weights = _NODES, _WEIGHTS
    nu = np.abs(mean[..., None] + std[..., None] * nodes)
    factor = ((np.asarray(t)[..., None] + model.t0) / model.t0) ** (-nu)
    first = (factor * weights).sum(-1)
    return first, np.maximum((factor**2 * weights).sum(-1) - first**2, 0.0)
