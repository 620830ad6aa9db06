r"""``fit_device``: a :class:`~analog_snu.pcm.PCMDevice` fitted to measurements, with
bootstrap intervals, identifiability warnings and the list of what was inherited.

Parameters the measurements inform are estimated by maximum likelihood
(:mod:`~analog_snu.fitting.estimate`); every other field comes from the ``base`` device. Each
fitted parameter gets a bootstrap interval: the whole estimator is repeated on ``bootstrap``
resamples of the devices (each file resampled on its own) and the interval is the estimate
:math:`\pm z_{(1+c)/2}` times the bootstrap standard deviation (a normal interval: it needs far
fewer resamples than the percentile interval for a 99 % level), widened to the asymptotic
(inverse observed information) interval where that is wider: with few resamples the bootstrap
standard deviation is itself uncertain, and the clipped drift statistics are not regular. For the stuck fractions the
interval is widened to at least the exact binomial (Clopper-Pearson) interval of the count, so
that zero stuck devices does not give a zero-width interval. Parameters that trade off
(:mod:`~analog_snu.fitting.identifiability`) get no interval and a warning instead.

The fitted device has ``scale = 1`` in every fitted section (the scale is folded into the
parameters, see :mod:`~analog_snu.fitting.model`), the programming polynomial written at
``g_max_reference = g_max``, and the base's values for everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from analog_snu.errors import ConfigError, DataError
from analog_snu.fitting.drift_fit import CLIPS, MIN_LINE_DEVICES
from analog_snu.fitting.estimate import Estimate, estimate, parameter_values, resample
from analog_snu.fitting.identifiability import trade_offs
from analog_snu.fitting.measurements import Measurements, read_measurements
from analog_snu.fitting.model import EffectiveModel, device_with, effective_parameters
from analog_snu.fitting.programming_fit import BINS, MIN_DEVICES_PER_BIN, MIN_STUCK_FOR_GMAX
from analog_snu.pcm import PCMDevice, resolve_device

__all__ = ["FittedParameter", "DeviceFit", "fit_device", "DEFAULT_BASE", "DEFAULT_BOOTSTRAP", "check_bins",
           "conductance_bins", "bin_index"]

DEFAULT_BASE = "pcm_joshi2020"
DEFAULT_BOOTSTRAP = 200
#: sections a kind of data writes into the device
_SECTIONS = {"programming": {"conductance", "stuck", "programming"}, "read_noise": {"read_noise"},
             "drift": {"drift"}}
#: stage parameter names (as in the Hessians) -> dotted device field
_CLIP_NAME = "drift.nu_*_min/max (one common factor)"
#: reads all later than this many t0 inform t/t0 only
_LATE_READS = 10.0
_CLIP_FIELDS = {f"drift.nu_{k}_{b}" for k in ("mean", "std") for b in ("min", "max")}
_STAGE_NAMES = {"ln_clip_scale": _CLIP_NAME, "ln_t0": "drift.t0", "ln_q": "read_noise.q", "exponent": "read_noise.exponent",
                **{f"nu_{k}_{p}": f"drift.nu_{k}_{p}" for k in ("mean", "std") for p in ("slope", "offset")}}


@dataclass(frozen=True)
class FittedParameter:
    """One fitted parameter (effective value: scales folded in)."""

    name: str
    """Dotted device field, e.g. ``drift.t0`` or ``programming.coeffs[1]``."""
    value: float
    low: float | None
    """Lower end of the confidence interval (``None``: not identified alone)."""
    high: float | None
    identified: bool = True
    note: str = ""

    def covers(self, value: float) -> bool:
        """``value`` lies in the interval (False when there is none)."""
        return self.low is not None and self.high is not None and self.low <= value <= self.high


@dataclass(frozen=True)
class DeviceFit:
    """What :func:`fit_device` found."""

    device: PCMDevice
    """The fitted device (loads with ``PCMDevice.from_file`` once saved; ``--device FILE``)."""
    base: str
    parameters: tuple[FittedParameter, ...]
    inherited: tuple[str, ...]
    """Device fields taken from the base device unchanged (scales folded where the section was fitted)."""
    warnings: tuple[str, ...]
    confidence: float
    bootstrap: int
    measurements: Measurements = field(repr=False)
    estimate: Estimate = field(repr=False)

    @property
    def model(self) -> EffectiveModel:
        return self.estimate.model

    def parameter(self, name: str) -> FittedParameter:
        for item in self.parameters:
            if item.name == name:
                return item
        raise ConfigError(f"{name!r} was not fitted; fitted: {[p.name for p in self.parameters]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: fitted parameters with intervals, inherited fields, warnings, sources."""
        return {
            "format": "analog_snu.device_fit", "version": 1, "base": self.base, "confidence": self.confidence,
            "bootstrap": self.bootstrap, "sources": list(self.measurements.sources),
            "fitted": [{"name": p.name, "value": p.value, "low": p.low, "high": p.high, "identified": p.identified,
                        "note": p.note} for p in self.parameters],
            "inherited": list(self.inherited), "warnings": list(self.warnings), "device": self.device.to_dict(),
        }

    def toml_header(self) -> str:
        """``#`` comment lines for the top of the device TOML: what was fitted (with intervals) and inherited."""
        level = f"{100 * self.confidence:g} %"
        lines = [f"# PCM device fitted by analog-snu fit-device from {', '.join(self.measurements.sources)}",
                 f"# base device: {self.base}; intervals: {level} bootstrap ({self.bootstrap} resamples)",
                 "# fitted (effective values, scales folded in):"]
        for p in self.parameters:
            span = f"[{p.low:.6g}, {p.high:.6g}]" if p.low is not None else "(not identified alone)"
            lines.append(f"#   {p.name} = {p.value:.6g} {span}")
        lines.append(f"# inherited from {self.base}: {', '.join(self.inherited)}")
        lines += [f"# warning: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def conductance_bins(kind: str, g_max: float) -> np.ndarray:
    """Bin edges (µS) of a kind of data: :data:`BINS` equal bins over [0, g_max] for programming,
    logarithmic ones over [1e-3 g_max, g_max] for drift and read noise (their statistics change
    with ln G). Values beyond the ends fall into the end bins."""
    if kind == "programming":
        return np.linspace(0.0, g_max, BINS + 1)
    return g_max * np.logspace(-3, 0, BINS + 1)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def check_bins(measurements: Measurements, g_max: float, coefficients: int) -> None:
    """Refuse data too thin to fit: the programming polynomial needs ``coefficients`` conductance
    bins of :data:`MIN_DEVICES_PER_BIN` devices, drift and read noise two bins of half as many (a slope
    in conductance)."""
    needs = {"programming": coefficients, "drift": 2, "read_noise": 2}
    least = {"programming": MIN_DEVICES_PER_BIN, "drift": MIN_DEVICES_PER_BIN // 2,
             "read_noise": MIN_DEVICES_PER_BIN // 2}
    for kind in measurements.kinds():
        data = getattr(measurements, kind)
        if kind == "read_noise":
            values, column = np.nanmean(data.g, 1), "g_uS"
        else:
            values, column = data.g_target, "g_target_uS"
        edges = conductance_bins(kind, g_max)
        counts = np.bincount(bin_index(values, edges), minlength=BINS)
        full = int((counts >= least[kind]).sum())
        if full < needs[kind]:
            what = f"{coefficients} programming-noise coefficients" if kind == "programming" else f"the {kind} slopes"
            shape = f"{g_max / BINS:g} µS wide" if kind == "programming" else "logarithmic, 1e-3 g_max to g_max"
            raise DataError(
                f"{data.source}, column {column}: too few devices per conductance bin: {full} of the {BINS} bins "
                f"({shape}) hold {least[kind]} or more devices (counts {counts.tolist()}); fitting {what} needs "
                f"{needs[kind]} such bins, i.e. at least {needs[kind] * least[kind]} devices spread over that many bins")


def _interval(values: np.ndarray, center: float, z: float) -> tuple[float, float]:
    """``center +- z sd`` of the bootstrap values, resamples 5 MADs from their median left out (a
    resample on which an optimiser wandered off would otherwise set the width alone)."""
    finite = values[np.isfinite(values)]
    median = np.median(finite) if finite.size else 0.0
    mad = 1.4826 * np.median(np.abs(finite - median)) if finite.size else 0.0
    if mad > 0:
        finite = finite[np.abs(finite - median) <= 5 * mad]
    spread = float(finite.std(ddof=1)) if finite.size > 1 else math.inf
    return center - z * spread, center + z * spread


def _binomial(k: int, n: int, confidence: float) -> tuple[float, float]:
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def _stage_warnings(result: Estimate) -> tuple[list[str], set[str]]:
    warnings: list[str] = []
    unidentified: set[str] = set()
    stages = []
    if result.programming is not None and result.programming.hessian is not None:
        names = [f"programming.coeffs[{i}]" for i in range(len(result.model.coeffs))]
        stages.append((result.programming.hessian, names))
    if result.read_noise is not None:
        stages.append((result.read_noise.hessian, [_STAGE_NAMES[n] for n in result.read_noise.names]))
    if result.drift is not None:
        stages.append((result.drift.hessian, [_STAGE_NAMES[n] for n in result.drift.names]))
    for hessian, names in stages:
        for name, partners, correlation in trade_offs(hessian, names):
            unidentified.update(_CLIP_FIELDS if name == _CLIP_NAME else {name})
            if not partners:
                warnings.append(f"{name} is not identified: the likelihood is flat in it (no data inform it); no "
                                "interval is given")
            else:
                warnings.append(f"{name} trades off against {', '.join(partners)} (multiple correlation "
                                f"{correlation:.4f}): the data fix a combination of them, not {name} alone; no interval "
                                "is given for it (measure over a wider range of times or conductances)")
    if result.drift is not None:
        for kind, devices in result.drift.unclipped.items():
            if devices < MIN_LINE_DEVICES:
                line = {f"drift.nu_{kind}_slope", f"drift.nu_{kind}_offset"}
                unidentified.update(line)
                warnings.append(f"drift.nu_{kind}_slope and drift.nu_{kind}_offset are not identified: the fitted line of "
                                f"nu's {kind} is unclipped at {devices or 'too narrow a range of'} device targets "
                                f"({MIN_LINE_DEVICES} over an e-fold of conductance needed), so the data fix the clip "
                                "level there, not the line; no interval is given (measure more devices at the targets "
                                "where nu changes)")
    if result.drift is not None and not result.drift.t0_identified:
        if result.drift.earliest > _LATE_READS * result.model.t0:
            warnings.append("drift.t0 is not identified by the drift data (every read is far later than t0, where only "
                            "t/t0 scales the drift); inherited from the base device. Read some devices within ~t0 of "
                            "programming to fit it")
        else:
            warnings.append("drift.t0 is not identified by the drift data: it trades off against the nu statistics (the "
                            "reads cover too narrow a window of times); inherited from the base device, no interval is "
                            "given. Read over several decades of time to fit it")
    programming = result.programming
    if programming is not None and "g_max_spread" not in programming.fitted:
        warnings.append(f"conductance.g_max_spread is inherited: {programming.counts['stuck_gmax_for_spread']} "
                        f"stuck-at-g_max devices with targets below g_max/2, {MIN_STUCK_FOR_GMAX} needed to fit it")
    return warnings, unidentified


def _curvature_sd(result: Estimate) -> dict[str, float]:
    """Asymptotic std of each fitted parameter from the inverse observed information of its stage
    (log-parameters mapped back by the delta method)."""
    out: dict[str, float] = {}
    model = result.model
    stages = []
    if result.programming is not None and result.programming.hessian is not None:
        stages.append((result.programming.hessian, [f"programming.coeffs[{i}]" for i in range(len(model.coeffs))]))
    for stage in (result.read_noise, result.drift):
        if stage is not None:
            stages.append((stage.hessian, list(stage.names)))
    for hessian, names in stages:
        if not np.isfinite(hessian).all():
            continue
        try:
            variance = np.diag(np.linalg.pinv(hessian, hermitian=True))
        except np.linalg.LinAlgError:
            continue
        for name, var in zip(names, variance):
            sd = float(np.sqrt(var)) if var > 0 else math.inf
            if name == "ln_t0":
                out["drift.t0"] = model.t0 * sd
            elif name == "ln_q":
                out["read_noise.q"] = model.q * sd
            elif name == "ln_clip_scale":
                out.update({f"drift.{c}": getattr(model, c) * sd for c in CLIPS})
            else:
                out[_STAGE_NAMES.get(name, name)] = sd
    return out


def fit_device(measurements: Measurements | list | tuple | str, base: str | PCMDevice = DEFAULT_BASE, *,
               bootstrap: int = DEFAULT_BOOTSTRAP, confidence: float = 0.99, seed: int = 0,
               g_max: float | None = None, name: str | None = None) -> DeviceFit:
    """Fit the PCM device model to ``measurements`` (a :class:`Measurements` or CSV paths).

    Args:
        base: preset name, device file or :class:`PCMDevice` giving every parameter without data.
        g_max: the devices' nominal full-scale conductance (µS) the targets were set against; the
            other fitted quantities are relative to it (default: the base device's).
        bootstrap: resamples for the intervals (>= 2; 200 by default, 20-50 give usable normal intervals).
        confidence: level of the intervals, in (0, 1).
        seed: seed of the resampling.
        name: the fitted device's ``name`` (default ``fit_<base>``).

    Raises:
        DataError: a measurement file is malformed or too thin (named, with line and column).
        ConfigError: bad arguments, or a fitted value outside a device field's range.
    """
    if not isinstance(measurements, Measurements):
        measurements = read_measurements(measurements)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 2:
        raise ConfigError(f"bootstrap must be an int >= 2 (resamples for the intervals), got {bootstrap!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not measurements.kinds():
        raise DataError("no measurements to fit; give a programming, drift or read-noise file")
    base_device = resolve_device(base)
    base_name = base if isinstance(base, str) else base_device.name
    if g_max is not None:
        if isinstance(g_max, bool) or not isinstance(g_max, (int, float)) or not 0 < g_max <= 1000:
            raise ConfigError(f"g_max must be a conductance in (0, 1000] µS, got {g_max!r}")
        base_device = base_device.updated({"conductance": {"g_max": float(g_max)}})
    base_model = effective_parameters(base_device)
    check_bins(measurements, base_model.g_max, len(base_model.coeffs))

    result = estimate(measurements, base_model)
    values = parameter_values(result.model, result.fitted)
    rng = np.random.default_rng(seed)
    draws = {key: [] for key in values}
    for _ in range(bootstrap):
        again = estimate(resample(measurements, rng), base_model, start=result)
        for key, value in parameter_values(again.model, again.fitted + result.fitted).items():
            if key in draws:
                draws[key].append(value)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    warnings, unidentified = _stage_warnings(result)
    counts = result.programming.counts if result.programming is not None else {}
    parameters = []
    curvature = _curvature_sd(result)
    for key, value in values.items():
        low, high = _interval(np.asarray(draws[key]), value, z)
        if key in curvature:  # the wider of the bootstrap's and the curvature's (few resamples estimate sd roughly)
            low, high = min(low, value - z * curvature[key]), max(high, value + z * curvature[key])
        if key.startswith("stuck."):
            kind = "zero" if key.endswith("zero") else "gmax"
            exact = _binomial(counts[f"stuck_{kind}"], counts[f"eligible_{kind}"], confidence)
            low, high = min(low, exact[0]), max(high, exact[1])
        if key.startswith("stuck.") or key == "conductance.g_max_spread":
            low = max(low, 0.0)
        if key == "drift.t0":
            low = max(low, 0.0)
        if key in unidentified:
            parameters.append(FittedParameter(key, value, None, None, False, "trades off; see warnings"))
        else:
            parameters.append(FittedParameter(key, value, low, high))
    t0 = next((p for p in parameters if p.name == "drift.t0" and p.low is not None), None)
    if t0 is not None and t0.high - t0.low > 2 * t0.value:
        warnings.append(f"drift.t0 is weakly identified: its interval [{t0.low:.3g}, {t0.high:.3g}] s spans more than twice the "
                        f"value {t0.value:.3g} s itself; t0 trades off against the nu statistics (the reads cover too "
                        "narrow a window of times around t0). Read over several decades of time to fix it")
    sections = set().union(*(_SECTIONS[kind] for kind in measurements.kinds()))
    if result.programming is None or "g_max_spread" not in result.programming.fitted:
        sections.discard("conductance")
    if g_max is not None:
        sections.add("conductance")
    device = device_with(base_device, result.model, sections, name or f"fit_{base_name}")
    fitted_fields = {key.split("[")[0] for key in values}
    inherited = tuple(f for f in _leaves(device.to_dict()) if f not in fitted_fields and f != "name"
                      and not f.endswith((".scale", ".enabled", ".g_max_reference")))
    return DeviceFit(device, base_name, tuple(parameters), inherited, tuple(warnings), float(confidence), bootstrap,
                     measurements, result)
