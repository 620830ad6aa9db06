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

Validation is one declarative schema: every config is a frozen pydantic v2 model in strict
mode (``extra="forbid"``, ``allow_inf_nan=False``) with a physical range on every field.
Pydantic was chosen over hand-written checks, msgspec and cattrs because

- its **strict mode refuses instead of coercing**: ``"16"``, ``16.7`` or ``True`` for an int,
  ``True`` or ``"0.5"`` for a float and ``"false"`` for a bool are errors (an int for a float
  is fine), so a TOML typo cannot silently become another device;
- its **errors are nested with their locations** (``drift.t0``), which
  :func:`~analog_snu.schema.format_validation_error` turns into one line per
  problem, naming the field, the expectation and the value, and listing the valid keys at
  the level of an unknown key;
- **range constraints, field docstrings and defaults give a JSON schema**
  (``PCMDevice.model_json_schema()``), and a :class:`PCMDevice` embeds by value in another
  pydantic model (the run config: ``device: PCMDevice | None``), validating from a dict there.
  msgspec validates fast but reports less context per nested field and has no per-field
  docstrings in its schema; cattrs needs attrs validators written by hand for every range.

Every error raised by constructors, :meth:`PCMDevice.from_dict`, :meth:`~PCMDevice.from_file`
and :meth:`~PCMDevice.updated` is a :class:`~analog_snu.errors.ConfigError`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from analog_snu.errors import ConfigError
from analog_snu.pcm._files import load_file, save_file
from analog_snu.schema import StrictModel, finite_tuple

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

#: tile kinds a device is built into (``analog_snu.tiles.device_rpu.device_rpu_config(device, mode)``).
MODES = ("inference", "hwa", "pulsed")
#: drift compensation schemes (aihwkit ``GlobalDriftCompensation`` / ``PerColumnDriftCompensation``).
DRIFT_COMPENSATIONS = ("none", "global", "per_column")
#: simulator of inference/HWA tiles: aihwkit's pure-torch tile or its C++ tile.
SIMULATORS = ("torch", "cpp")

#: programming noise may reach at most this many g_max_reference over [0, g_max]
SIGMA_MAX_IN_G_MAX = 3.0
_POLY_GRID = 1000  # sigma is checked at G/g_max = 0, 1/1000, ..., 1

if TYPE_CHECKING:  # what the validators below produce
    _Significance = tuple[float, ...]
    _Coefficients = tuple[float, ...]
else:
    _Significance = finite_tuple(gt=0.0, le=1e3)
    _Coefficients = finite_tuple(ge=-1e3, le=1e3)


class ConductanceConfig(StrictModel):
    """Conductance range and weight-to-conductance mapping."""

    g_max: float = Field(25.0, gt=0.0, le=1000.0)
    """Nominal maximum conductance of a device, µS, in (0, 1000]; ``max |W|`` of a tile maps to it."""
    g_max_spread: float = Field(0.0, ge=0.0, le=0.99)
    """Device-to-device spread of ``g_max``: relative std (0.1 = 10 %), in [0, 0.99]. Each device
    saturates at its own ``g_max (1 + spread xi)``; targets above it are cut."""
    significance: _Significance = (1.0,)
    """Significance factor ``F_k`` of each differential pair, in (0, 1000]; its length (1 to 8)
    is the number of pairs per weight (one G+/G- pair = ``(1.0,)``)."""

    @property
    def pairs(self) -> int:
        """Differential pairs per weight (2 devices each)."""
        return len(self.significance)


class ProgrammingNoiseConfig(StrictModel):
    """State-dependent programming noise ``sigma(G_T)`` (a polynomial in ``G_T / g_max``)."""

    enabled: bool = True
    """Add programming noise."""
    coeffs: _Coefficients = (0.26348, 1.9650, -1.1731)
    """Polynomial ``c_0, c_1, ...`` (1 to 8 coefficients, each in [-1000, 1000]) of ``sigma`` in µS
    at ``g_max = g_max_reference`` (default: aihwkit PCMLikeNoiseModel, fit of Nandakumar et al.
    2019). Over ``G`` in [0, g_max] sigma must stay in [0, 3 g_max_reference]."""
    g_max_reference: float = Field(25.0, gt=0.0, le=1000.0)
    """``g_max`` (µS, in (0, 1000]) at which ``coeffs`` were fitted; sigma scales with ``g_max / g_max_reference``."""
    scale: float = Field(1.0, ge=0.0, le=100.0)
    """Multiplier of sigma, in [0, 100]."""

    @model_validator(mode="after")
    def _sigma_is_physical(self) -> ProgrammingNoiseConfig:
        bound = SIGMA_MAX_IN_G_MAX * self.g_max_reference
        for step in range(_POLY_GRID + 1):
            x = step / _POLY_GRID
            sigma = math.fsum(c * x**i for i, c in enumerate(self.coeffs))
            if not 0.0 <= sigma <= bound:
                raise ValueError(
                    f"coeffs {list(self.coeffs)} give sigma = {sigma:.4g} µS at G/g_max = {x:g}; the "
                    f"programming-noise std must stay in [0, {bound:g}] µS (3 g_max_reference) over [0, g_max]"
                )
        return self


class ReadNoiseConfig(StrictModel):
    """1/f read noise accumulated since programming (fresh sample at every read-out time)."""

    enabled: bool = True
    """Add read noise when drifting to a time."""
    q: float = Field(0.0088, ge=0.0, le=1.0)
    """Numerator of ``Q_s``, in [0, 1] (aihwkit PCMLikeNoiseModel)."""
    exponent: float = Field(0.65, ge=0.0, le=10.0)
    """Exponent ``e`` of ``G_P / g_max`` in ``Q_s``, in [0, 10]."""
    q_max: float = Field(0.2, ge=0.0, le=10.0)
    """Upper clip of ``Q_s``, in [0, 10]."""
    t_read: float = Field(250e-9, gt=0.0, le=1.0)
    """Read pulse duration ``t_r`` of the 1/f fit, s, in (0, 1]."""
    scale: float = Field(1.0, ge=0.0, le=100.0)
    """Multiplier of the read noise, in [0, 100]."""


class DriftConfig(StrictModel):
    """Conductance drift ``G(t) = G_P ((t + t0) / t0)^-nu`` with a state-dependent nu per device."""

    enabled: bool = True
    """Let conductances drift (``False``: nu = 0 for every device)."""
    t0: float = Field(20.0, gt=0.0, le=1e9)
    """Time of the first read after programming, s, in (0, 1e9]; ``t`` counts from there."""
    nu_mean_slope: float = Field(-0.0155, ge=-1.0, le=1.0)
    """``m_1`` of ``mu_nu = m_1 ln(G_T / g_max) + m_0``, in [-1, 1]."""
    nu_mean_offset: float = Field(0.0244, ge=-1.0, le=1.0)
    """``m_0`` of ``mu_nu``, in [-1, 1]."""
    nu_mean_min: float = Field(0.049, ge=0.0, le=1.0)
    """Lower clip of ``mu_nu``, in [0, 1]."""
    nu_mean_max: float = Field(0.1, ge=0.0, le=1.0)
    """Upper clip of ``mu_nu``, in [``nu_mean_min``, 1]."""
    nu_std_slope: float = Field(-0.0125, ge=-1.0, le=1.0)
    """Slope of ``sigma_nu`` in ``ln(G_T / g_max)``, in [-1, 1]."""
    nu_std_offset: float = Field(-0.0059, ge=-1.0, le=1.0)
    """Offset of ``sigma_nu``, in [-1, 1]."""
    nu_std_min: float = Field(0.008, ge=0.0, le=1.0)
    """Lower clip of ``sigma_nu``, in [0, 1]."""
    nu_std_max: float = Field(0.045, ge=0.0, le=1.0)
    """Upper clip of ``sigma_nu``, in [``nu_std_min``, 1]."""
    scale: float = Field(1.0, ge=0.0, le=10.0)
    """Multiplier of nu, in [0, 10]."""

    @model_validator(mode="after")
    def _clips_are_ordered(self) -> DriftConfig:
        for kind in ("mean", "std"):
            low, high = getattr(self, f"nu_{kind}_min"), getattr(self, f"nu_{kind}_max")
            if high < low:
                raise ValueError(f"nu_{kind}_max must be >= nu_{kind}_min = {low:g}, got {high:g}")
        return self


class StuckConfig(StrictModel):
    """Stuck devices, drawn independently per device at programming time."""

    enabled: bool = True
    """Apply the stuck fractions."""
    fraction_at_gmax: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of devices stuck at their ``g_max`` (stuck SET), in [0, 1]; they do not drift."""
    fraction_at_zero: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of devices stuck at 0 µS (stuck RESET / open), in [0, 1]."""

    @model_validator(mode="after")
    def _fractions_sum_to_at_most_one(self) -> StuckConfig:
        total = self.fraction_at_gmax + self.fraction_at_zero
        if total > 1.0:
            raise ValueError(f"fraction_at_gmax + fraction_at_zero must be in [0, 1], got {total:g}")
        return self


class PeripheryConfig(StrictModel):
    """Digital-analog periphery of a tile and drift compensation."""

    enabled: bool = True
    """``False``: ideal periphery (aihwkit ``is_perfect``: no DAC/ADC, no output noise, no bounds)."""
    dac_bits: int = Field(7, ge=0, le=24)
    """Input DAC resolution in bits (sign included), 0 = unquantised, else in [2, 24]."""
    adc_bits: int = Field(9, ge=0, le=24)
    """Output ADC resolution in bits (sign included), 0 = unquantised, else in [2, 24]."""
    out_noise: float = Field(0.02, ge=0.0, le=10.0)
    """Additive Gaussian output noise, std relative to the output bound's unit, in [0, 10]."""
    out_bound: float = Field(12.0, gt=0.0, le=1e6)
    """Output saturation in units of a fully-on input times max weight, in (0, 1e6] (aihwkit default 12)."""
    weight_scaling_omega: float = Field(1.0, ge=0.0, le=1e3)
    """Weights are scaled in digital so that ``max |W|`` of a tile is this value, in [0, 1000] (0: no scaling)."""
    drift_compensation: Literal["none", "global", "per_column"] = "global"
    """``"none"``, ``"global"`` (one factor per tile) or ``"per_column"`` (one per output)."""

    @model_validator(mode="after")
    def _bits_are_zero_or_two_up(self) -> PeripheryConfig:
        for name in ("dac_bits", "adc_bits"):
            if getattr(self, name) == 1:
                raise ValueError(f"{name} must be 0 (unquantised) or an int in [2, 24], got 1")
        return self


class HWAConfig(StrictModel):
    """Nonidealities injected during hardware-aware training (mode ``"hwa"``)."""

    enabled: bool = True
    """Inject weight noise and clip weights during training."""
    weight_noise: float = Field(0.038, ge=0.0, le=10.0)
    """Additive Gaussian weight noise per forward, std relative to ``max |W|`` of the tile, in [0, 10]
    (3.8 %: Joshi et al. 2020)."""
    clip: float = Field(1.0, ge=0.0, le=1e3)
    """Clip weights to ``[-clip, clip]`` (tile units, after omega scaling) after each step, in [0, 1000]; 0 = off."""


class PulsedConfig(StrictModel):
    """One PCM device of a pulsed G+/G- unit cell with refresh (aihwkit ``PCMPresetDevice``).

    Weights of pulsed tiles are in device units: ``w_max`` corresponds to ``g_max``.
    """

    dw_min: float = Field(0.01, gt=0.0, le=1.0)
    """Mean weight change of one SET pulse at ``w = 0``, device units, in (0, 1]."""
    dw_min_dtod: float = Field(0.2, ge=0.0, le=10.0)
    """Device-to-device spread of ``dw_min`` (relative), in [0, 10]."""
    dw_min_std: float = Field(0.6, ge=0.0, le=10.0)
    """Cycle-to-cycle spread of a pulse's step (relative), in [0, 10]."""
    w_max: float = Field(2.0, gt=0.0, le=1e3)
    """Saturation weight of one device (= ``g_max``), device units, in (0, 1000]."""
    gamma: float = Field(2.5, ge=0.0, le=100.0)
    """Exponential step nonlinearity (aihwkit ``gamma_up`` = ``gamma_down``), in [0, 100]."""
    reset: float = Field(0.01, ge=0.0, le=1.0)
    """Weight right after a RESET (relative to ``w_max``), in [0, 1]."""
    reset_dtod: float = Field(0.02, ge=0.0, le=10.0)
    """Device-to-device spread of the RESET value, in [0, 10]."""
    refresh_every: int = Field(1, ge=0, le=1_000_000)
    """Check for a refresh (RESET both, reprogram the difference) every this many mini-batches, in [0, 1e6]."""


class PCMDevice(StrictModel):
    """A PCM crossbar device: everything needed to build aihwkit configs and program tiles.

    Load and save with :meth:`from_file` / :meth:`save` (``.toml`` or ``.json``), or
    :meth:`from_dict` / :meth:`to_dict`. An aihwkit RPU config is built from it by
    :func:`analog_snu.tiles.device_rpu.device_rpu_config`. Instances are frozen; use :meth:`updated` for variants.

    Example:
        >>> from analog_snu.pcm import preset
        >>> dev = preset("pcm_joshi2020").updated({"drift": {"enabled": False}})
        >>> dev.drift.enabled, dev.conductance.g_max
        (False, 25.0)
    """

    name: str = Field("custom", min_length=1, max_length=200)
    """Free-text label (the preset name for presets), 1 to 200 characters."""
    simulator: Literal["torch", "cpp"] = "torch"
    """Tile simulator for ``"inference"``/``"hwa"``: ``"torch"`` (aihwkit TorchInferenceRPUConfig,
    batched, seeded by torch's RNG) or ``"cpp"`` (InferenceRPUConfig, aihwkit's C++ tile)."""
    conductance: ConductanceConfig = ConductanceConfig()
    """Conductance range and weight mapping."""
    programming: ProgrammingNoiseConfig = ProgrammingNoiseConfig()
    """Programming noise."""
    read_noise: ReadNoiseConfig = ReadNoiseConfig()
    """1/f read noise."""
    drift: DriftConfig = DriftConfig()
    """Conductance drift."""
    stuck: StuckConfig = StuckConfig()
    """Stuck devices."""
    periphery: PeripheryConfig = PeripheryConfig()
    """DAC/ADC, output noise and bound, weight scaling, drift compensation."""
    hwa: HWAConfig = HWAConfig()
    """Hardware-aware training noise."""
    pulsed: PulsedConfig = PulsedConfig()
    """Pulsed-update device."""

    # -- serialisation ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> PCMDevice:
        """Load from a ``.toml`` or ``.json`` file (ConfigError naming the file otherwise)."""
        data = load_file(path)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"device config file {str(path)!r}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (``.toml`` or ``.json``, chosen by suffix), atomically; returns the path."""
        return save_file(self.to_dict(), path)

    def updated(self, changes: dict[str, Any]) -> PCMDevice:
        """A copy with nested ``changes`` merged in, e.g. ``{"stuck": {"fraction_at_zero": 0.01}}``.

        Unknown keys and wrong types raise :class:`ConfigError` like :meth:`from_dict`.
        """
        if not isinstance(changes, dict):
            raise ConfigError(f"changes must be a dict of fields, got {type(changes).__name__}")
        return self.from_dict(_merge(self.to_dict(), changes))

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


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, table by table (unknown keys are left for the schema to name)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged
