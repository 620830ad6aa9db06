r"""The PCM device config: one plain, serialisable dataclass tree.

A :class:`PCMDevice` describes a phase-change-memory crossbar: the conductance range and
the weight-to-conductance mapping, programming noise, 1/f read noise, conductance drift,
stuck devices, the periphery (DAC/ADC, output noise, drift compensation), hardware-aware
training noise and the pulsed-update device. Every nonideality has its own ``enabled``
switch for ablations. Units: conductances in µS, times in seconds; weights are unitless.

Weight mapping (per tile; ``K = len(significance)`` differential pairs per weight):

.. math::

    W_{ij} = \frac{1}{s} \sum_{k=1}^{K} F_k \, (G^+_{k,ij} - G^-_{k,ij}),
    \qquad s = \frac{g_\mathrm{max} \sum_k F_k}{\max |W|}

Pairs are filled in the listed order: pair 1 holds ``|W| s / F_1`` up to ``g_max``, the
remainder goes to pair 2, and so on; the device of the other sign stays at 0 µS.

Programming noise: :math:`G_P = \max(0, G_T + \sigma(G_T)\,\xi)`,
:math:`\sigma(G) = a \frac{g_\mathrm{max}}{g_\mathrm{ref}} \sum_i c_i (G/g_\mathrm{max})^i`.

Drift: :math:`G(t) = G_P \left(\frac{t + t_0}{t_0}\right)^{-\nu}`, with per device
:math:`\nu = |\mu_\nu(G_T) + \sigma_\nu(G_T)\,\xi|`,
:math:`\mu_\nu = \mathrm{clip}(m_1 \ln(G_T/g_\mathrm{max}) + m_0)`, same form for
:math:`\sigma_\nu`.

Read noise (1/f): :math:`G = G(t) + |G(t)|\, a_r\, Q_s \sqrt{\ln\frac{t + t_0 + t_r}{2 t_r}}\,\xi`,
:math:`Q_s = \min(q_\mathrm{max}, q / \max(10^{-3}, (G_P/g_\mathrm{max})^{e}))`.

These are the equations of aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019;
Joshi et al., Nat. Commun. 2020), with the constants moved into fields.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analog_snu.device_models._checks import (
    check_bool,
    check_choice,
    check_float,
    check_float_tuple,
    check_fraction,
    check_int_range,
)
from analog_snu.device_models._serialize import from_dict, load_file, save_file, to_dict
from analog_snu.errors import ConfigError

__all__ = [
    "ConductanceConfig",
    "DRIFT_COMPENSATIONS",
    "DriftConfig",
    "HWAConfig",
    "MODES",
    "PCMDevice",
    "PeripheryConfig",
    "ProgrammingNoiseConfig",
    "PulsedConfig",
    "ReadNoiseConfig",
    "SIMULATORS",
    "StuckConfig",
]

#: ``PCMDevice.rpu_config(mode)`` modes.
MODES = ("inference", "hwa", "pulsed")
#: drift compensation schemes (aihwkit ``GlobalDriftCompensation`` / ``PerColumnDriftCompensation``).
DRIFT_COMPENSATIONS = ("none", "global", "per_column")
#: simulator of inference/HWA tiles: aihwkit's pure-torch tile or its C++ tile.
SIMULATORS = ("torch", "cpp")


@dataclass(frozen=True)
class ConductanceConfig:
    """Conductance range and weight-to-conductance mapping."""

    g_max: float = 25.0
    """Nominal maximum conductance of a device, µS, > 0; ``max |W|`` of a tile maps to it."""
    g_max_spread: float = 0.0
    """Device-to-device spread of ``g_max``: relative std (0.1 = 10 %), in [0, 1). Each device
    saturates at its own ``g_max (1 + spread xi)``; targets above it are cut."""
    significance: tuple[float, ...] = (1.0,)
    """Significance factor ``F_k`` of each differential pair, > 0; its length is the number of
    pairs per weight (one G+/G- pair = ``(1.0,)``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "g_max", check_float("conductance.g_max", self.g_max, low=0.0, low_open=True, unit="µS"))
        object.__setattr__(self, "g_max_spread", check_float("conductance.g_max_spread", self.g_max_spread, low=0.0, high=0.99))
        object.__setattr__(
            self, "significance", check_float_tuple("conductance.significance", self.significance, low=0.0, low_open=True)
        )

    @property
    def pairs(self) -> int:
        """Differential pairs per weight (2 devices each)."""
        return len(self.significance)


@dataclass(frozen=True)
class ProgrammingNoiseConfig:
    """State-dependent programming noise ``sigma(G_T)`` (a polynomial in ``G_T / g_max``)."""

    enabled: bool = True
    """Add programming noise."""
    coeffs: tuple[float, ...] = (0.26348, 1.9650, -1.1731)
    """Polynomial ``c_0, c_1, ...`` of ``sigma`` in µS at ``g_max = g_max_reference``
    (default: aihwkit PCMLikeNoiseModel, fit of Nandakumar et al. 2019)."""
    g_max_reference: float = 25.0
    """``g_max`` (µS) at which ``coeffs`` were fitted; sigma scales with ``g_max / g_max_reference``."""
    scale: float = 1.0
    """Multiplier of sigma, >= 0."""

    def __post_init__(self) -> None:
        check_bool("programming.enabled", self.enabled)
        object.__setattr__(self, "coeffs", check_float_tuple("programming.coeffs", self.coeffs))
        object.__setattr__(
            self,
            "g_max_reference",
            check_float("programming.g_max_reference", self.g_max_reference, low=0.0, low_open=True, unit="µS"),
        )
        object.__setattr__(self, "scale", check_float("programming.scale", self.scale, low=0.0))


@dataclass(frozen=True)
class ReadNoiseConfig:
    """1/f read noise accumulated since programming (fresh sample at every read-out time)."""

    enabled: bool = True
    """Add read noise when drifting to a time."""
    q: float = 0.0088
    """Numerator of ``Q_s``, >= 0 (aihwkit PCMLikeNoiseModel)."""
    exponent: float = 0.65
    """Exponent ``e`` of ``G_P / g_max`` in ``Q_s``."""
    q_max: float = 0.2
    """Upper clip of ``Q_s``, >= 0."""
    t_read: float = 250e-9
    """Read pulse duration ``t_r`` of the 1/f fit, s, > 0."""
    scale: float = 1.0
    """Multiplier of the read noise, >= 0."""

    def __post_init__(self) -> None:
        check_bool("read_noise.enabled", self.enabled)
        object.__setattr__(self, "q", check_float("read_noise.q", self.q, low=0.0))
        object.__setattr__(self, "exponent", check_float("read_noise.exponent", self.exponent, low=0.0))
        object.__setattr__(self, "q_max", check_float("read_noise.q_max", self.q_max, low=0.0))
        object.__setattr__(self, "t_read", check_float("read_noise.t_read", self.t_read, low=0.0, low_open=True, unit="s"))
        object.__setattr__(self, "scale", check_float("read_noise.scale", self.scale, low=0.0))


@dataclass(frozen=True)
class DriftConfig:
    """Conductance drift ``G(t) = G_P ((t + t0) / t0)^-nu`` with a state-dependent nu per device."""

    enabled: bool = True
    """Let conductances drift (``False``: nu = 0 for every device)."""
    t0: float = 20.0
    """Time of the first read after programming, s, > 0; ``t`` counts from there."""
    nu_mean_slope: float = -0.0155
    """``m_1`` of ``mu_nu = m_1 ln(G_T / g_max) + m_0``."""
    nu_mean_offset: float = 0.0244
    """``m_0`` of ``mu_nu``."""
    nu_mean_min: float = 0.049
    """Lower clip of ``mu_nu``, >= 0."""
    nu_mean_max: float = 0.1
    """Upper clip of ``mu_nu``, >= ``nu_mean_min``."""
    nu_std_slope: float = -0.0125
    """Slope of ``sigma_nu`` in ``ln(G_T / g_max)``."""
    nu_std_offset: float = -0.0059
    """Offset of ``sigma_nu``."""
    nu_std_min: float = 0.008
    """Lower clip of ``sigma_nu``, >= 0."""
    nu_std_max: float = 0.045
    """Upper clip of ``sigma_nu``, >= ``nu_std_min``."""
    scale: float = 1.0
    """Multiplier of nu, >= 0."""

    def __post_init__(self) -> None:
        check_bool("drift.enabled", self.enabled)
        object.__setattr__(self, "t0", check_float("drift.t0", self.t0, low=0.0, low_open=True, unit="s"))
        for name in ("nu_mean_slope", "nu_mean_offset", "nu_std_slope", "nu_std_offset"):
            object.__setattr__(self, name, check_float(f"drift.{name}", getattr(self, name)))
        for name in ("nu_mean_min", "nu_std_min", "scale"):
            object.__setattr__(self, name, check_float(f"drift.{name}", getattr(self, name), low=0.0))
        object.__setattr__(self, "nu_mean_max", check_float("drift.nu_mean_max", self.nu_mean_max, low=self.nu_mean_min))
        object.__setattr__(self, "nu_std_max", check_float("drift.nu_std_max", self.nu_std_max, low=self.nu_std_min))


@dataclass(frozen=True)
class StuckConfig:
    """Stuck devices, drawn independently per device at programming time."""

    enabled: bool = True
    """Apply the stuck fractions."""
    fraction_at_gmax: float = 0.0
    """Fraction of devices stuck at their ``g_max`` (stuck SET), in [0, 1]; they do not drift."""
    fraction_at_zero: float = 0.0
    """Fraction of devices stuck at 0 µS (stuck RESET / open), in [0, 1]."""

    def __post_init__(self) -> None:
        check_bool("stuck.enabled", self.enabled)
        object.__setattr__(self, "fraction_at_gmax", check_fraction("stuck.fraction_at_gmax", self.fraction_at_gmax))
        object.__setattr__(self, "fraction_at_zero", check_fraction("stuck.fraction_at_zero", self.fraction_at_zero))
        total = self.fraction_at_gmax + self.fraction_at_zero
        if total > 1.0:
            raise ConfigError(
                f"stuck.fraction_at_gmax + stuck.fraction_at_zero must be in [0, 1], got {total:g}"
            )


@dataclass(frozen=True)
class PeripheryConfig:
    """Digital-analog periphery of a tile and drift compensation."""

    enabled: bool = True
    """``False``: ideal periphery (aihwkit ``is_perfect``: no DAC/ADC, no output noise, no bounds)."""
    dac_bits: int = 7
    """Input DAC resolution in bits (sign included), 0 = unquantised, else in [2, 24]."""
    adc_bits: int = 9
    """Output ADC resolution in bits (sign included), 0 = unquantised, else in [2, 24]."""
    out_noise: float = 0.02
    """Additive Gaussian output noise, std relative to the output bound's unit, >= 0."""
    out_bound: float = 12.0
    """Output saturation in units of a fully-on input times max weight, > 0 (aihwkit default)."""
    weight_scaling_omega: float = 1.0
    """Weights are scaled in digital so that ``max |W|`` of a tile is this value (0: no scaling)."""
    drift_compensation: str = "global"
    """``"none"``, ``"global"`` (one factor per tile) or ``"per_column"`` (one per output)."""

    def __post_init__(self) -> None:
        check_bool("periphery.enabled", self.enabled)
        for name in ("dac_bits", "adc_bits"):
            bits = check_int_range(f"periphery.{name}", getattr(self, name), 0, 24)
            if bits == 1:
                raise ConfigError(f"periphery.{name} must be 0 (unquantised) or an int in [2, 24], got 1")
        object.__setattr__(self, "out_noise", check_float("periphery.out_noise", self.out_noise, low=0.0))
        object.__setattr__(self, "out_bound", check_float("periphery.out_bound", self.out_bound, low=0.0, low_open=True))
        object.__setattr__(
            self, "weight_scaling_omega", check_float("periphery.weight_scaling_omega", self.weight_scaling_omega, low=0.0)
        )
        check_choice("periphery.drift_compensation", self.drift_compensation, DRIFT_COMPENSATIONS)


@dataclass(frozen=True)
class HWAConfig:
    """Nonidealities injected during hardware-aware training (mode ``"hwa"``)."""

    enabled: bool = True
    """Inject weight noise and clip weights during training."""
    weight_noise: float = 0.038
    """Additive Gaussian weight noise per forward, std relative to ``max |W|`` of the tile, >= 0
    (3.8 %: Joshi et al. 2020)."""
    clip: float = 1.0
    """Clip weights to ``[-clip, clip]`` (tile units, after omega scaling) after each step; 0 = off."""

    def __post_init__(self) -> None:
        check_bool("hwa.enabled", self.enabled)
        object.__setattr__(self, "weight_noise", check_float("hwa.weight_noise", self.weight_noise, low=0.0))
        object.__setattr__(self, "clip", check_float("hwa.clip", self.clip, low=0.0))


@dataclass(frozen=True)
class PulsedConfig:
    """One PCM device of a pulsed G+/G- unit cell with refresh (aihwkit ``PCMPresetDevice``).

    Weights of pulsed tiles are in device units: ``w_max`` corresponds to ``g_max``.
    """

    dw_min: float = 0.01
    """Mean weight change of one SET pulse at ``w = 0``, device units, > 0."""
    dw_min_dtod: float = 0.2
    """Device-to-device spread of ``dw_min`` (relative), >= 0."""
    dw_min_std: float = 0.6
    """Cycle-to-cycle spread of a pulse's step (relative), >= 0."""
    w_max: float = 2.0
    """Saturation weight of one device (= ``g_max``), device units, > 0."""
    gamma: float = 2.5
    """Exponential step nonlinearity (aihwkit ``gamma_up`` = ``gamma_down``), >= 0."""
    reset: float = 0.01
    """Weight right after a RESET (relative to ``w_max``), in [0, 1]."""
    reset_dtod: float = 0.02
    """Device-to-device spread of the RESET value, >= 0."""
    refresh_every: int = 1
    """Check for a refresh (RESET both, reprogram the difference) every this many mini-batches, >= 0."""

    def __post_init__(self) -> None:
        for name in ("dw_min", "w_max"):
            object.__setattr__(self, name, check_float(f"pulsed.{name}", getattr(self, name), low=0.0, low_open=True))
        for name in ("dw_min_dtod", "dw_min_std", "gamma", "reset_dtod"):
            object.__setattr__(self, name, check_float(f"pulsed.{name}", getattr(self, name), low=0.0))
        object.__setattr__(self, "reset", check_fraction("pulsed.reset", self.reset))
        check_int_range("pulsed.refresh_every", self.refresh_every, 0, 1_000_000)


@dataclass(frozen=True)
class PCMDevice:
    """A PCM crossbar device: everything needed to build aihwkit configs and program tiles.

    Load and save with :meth:`from_file` / :meth:`save` (``.toml`` or ``.json``), or
    :meth:`from_dict` / :meth:`to_dict`. Build an aihwkit RPU config with
    :meth:`rpu_config`. Instances are frozen; use :meth:`updated` for variants.

    Example:
        >>> from analog_snu.device_models import preset
        >>> dev = preset("pcm_joshi2020").updated({"drift": {"enabled": False}})
        >>> dev.drift.enabled, dev.conductance.g_max
        (False, 25.0)
    """

    name: str = "custom"
    """Free-text label (the preset name for presets)."""
    simulator: str = "torch"
    """Tile simulator for ``"inference"``/``"hwa"``: ``"torch"`` (aihwkit TorchInferenceRPUConfig,
    batched, seeded by torch's RNG) or ``"cpp"`` (InferenceRPUConfig, aihwkit's C++ tile)."""
    conductance: ConductanceConfig = field(default_factory=ConductanceConfig)
    programming: ProgrammingNoiseConfig = field(default_factory=ProgrammingNoiseConfig)
    read_noise: ReadNoiseConfig = field(default_factory=ReadNoiseConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    stuck: StuckConfig = field(default_factory=StuckConfig)
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    hwa: HWAConfig = field(default_factory=HWAConfig)
    pulsed: PulsedConfig = field(default_factory=PulsedConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be a string, got {self.name!r}")
        check_choice("simulator", self.simulator, SIMULATORS)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in ("name", "simulator") and not isinstance(value, _NESTED[f.name]):
                raise ConfigError(
                    f"{f.name} must be a {_NESTED[f.name].__name__} (or a dict of its fields), got {type(value).__name__}"
                )

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (lists for tuples); ``PCMDevice.from_dict(d.to_dict()) == d``."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PCMDevice:
        """Build from a (possibly partial) nested dict; unknown keys raise ConfigError."""
        return from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> PCMDevice:
        """Load from a ``.toml`` or ``.json`` file."""
        return cls.from_dict(load_file(path))

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.toml`` or ``.json``, chosen by suffix); returns the path."""
        return save_file(self.to_dict(), path)

    def updated(self, changes: dict[str, Any]) -> PCMDevice:
        """A copy with nested ``changes`` merged in, e.g. ``{"stuck": {"fraction_at_zero": 0.01}}``."""
        return self.from_dict(_merge(self.to_dict(), changes, ""))

    # -- derived quantities ----------------------------------------------------------------------
    @property
    def devices_per_weight(self) -> int:
        """PCM devices per weight: 2 per differential pair."""
        return 2 * self.conductance.pairs

    def programming_sigma(self, g_target: float) -> float:
        """Programming-noise std (µS) at target conductance ``g_target`` (µS), noise scale included."""
        cfg, g_max = self.programming, self.conductance.g_max
        if not cfg.enabled:
            return 0.0
        poly = sum(c * (g_target / g_max) ** i for i, c in enumerate(cfg.coeffs))
        return cfg.scale * poly * g_max / cfg.g_max_reference

    def nu_statistics(self, g_target: float) -> tuple[float, float]:
        """Mean and std of the Gaussian that nu is drawn from (before ``|.|`` and ``scale``)."""
        cfg = self.drift
        log_g = math.log(max(abs(g_target) / self.conductance.g_max, 1e-7))
        mean = min(max(cfg.nu_mean_slope * log_g + cfg.nu_mean_offset, cfg.nu_mean_min), cfg.nu_mean_max)
        std = min(max(cfg.nu_std_slope * log_g + cfg.nu_std_offset, cfg.nu_std_min), cfg.nu_std_max)
        return mean, std

    @property
    def is_ideal(self) -> bool:
        """True when every nonideality is off (tiles then compute exactly like ``nn.Linear``)."""
        return (
            not self.programming.enabled
            and not self.read_noise.enabled
            and not self.drift.enabled
            and (not self.stuck.enabled or self.stuck.fraction_at_gmax + self.stuck.fraction_at_zero == 0.0)
            and self.conductance.g_max_spread == 0.0
            and not self.periphery.enabled
            and not self.hwa.enabled
        )

    # -- aihwkit ---------------------------------------------------------------------------------
    def rpu_config(self, mode: str = "inference"):
        """An aihwkit RPU config for ``mode``: ``"inference"``, ``"hwa"`` or ``"pulsed"``.

        See :func:`analog_snu.tiles.device_rpu.device_rpu_config`. Needs aihwkit; imported
        here (the one sanctioned upward call) so that this module imports without it.
        """
        check_choice("mode", mode, MODES)
        from analog_snu.tiles.device_rpu import device_rpu_config  # noqa: PLC0415 - sanctioned upward call

        return device_rpu_config(self, mode)


_NESTED = {
    "conductance": ConductanceConfig,
    "programming": ProgrammingNoiseConfig,
    "read_noise": ReadNoiseConfig,
    "drift": DriftConfig,
    "stuck": StuckConfig,
    "periphery": PeripheryConfig,
    "hwa": HWAConfig,
    "pulsed": PulsedConfig,
}


def _merge(base: dict[str, Any], changes: dict[str, Any], prefix: str) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise ConfigError(f"changes{(' for ' + prefix) if prefix else ''} must be a dict, got {type(changes).__name__}")
    merged = dict(base)
    for key, value in changes.items():
        if key not in base:
            where = f"{prefix}." if prefix else ""
            raise ConfigError(f"unknown field {where}{key!r}; valid fields: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            merged[key] = _merge(base[key], value, f"{prefix}.{key}" if prefix else key)
        else:
            merged[key] = value
    return merged
