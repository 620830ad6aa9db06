r"""PCM physics of one tile in pure torch: weight-to-conductance mapping, programming noise, drift,
1/f read noise, stuck devices and the drift-compensation estimate of a chip, with the state of every device.

The statistics (equations in :mod:`analog_snu.pcm.device`) are those of aihwkit's
``PCMLikeNoiseModel``, for ``K`` differential pairs with significance factors, device-to-device
``g_max`` spread and stuck devices. :class:`PCMPhysics` computes them for a
:class:`~analog_snu.pcm.device.PCMDevice`; :class:`PCMTileState` holds the result of programming
one tile: target, programmed and current (drifted, read-noisy) conductances of every device, each
device's drift exponent and its stuck flag. The aihwkit noise model that drives aihwkit tiles with
them is :class:`analog_snu.tiles.pcm_noise.PCMNoiseModel`; the simulated chip of hardware-in-the-loop
training is :class:`analog_snu.pcm.chip.SimulatedChip`.

Shape letters: K pairs, 2 = (G+, G-), F_out x F_in the tile's weight matrix.

Random draws use ``generator`` (a ``torch.Generator``; ``None`` = torch's global RNG). Every
stream is always drawn, in a fixed order, whether its nonideality is enabled or not: switching
one nonideality off for an ablation leaves the realisation of the others unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from analog_snu.errors import ConfigError
from analog_snu.pcm.device import PCMDevice

__all__ = ["PCMPhysics", "PCMTileState", "STUCK_NONE", "STUCK_AT_GMAX", "STUCK_AT_ZERO"]

#: stuck flags of a device
STUCK_NONE, STUCK_AT_GMAX, STUCK_AT_ZERO = 0, 1, 2
_ZERO_CLIP = 1e-7
_F64 = torch.float64


@dataclass
class PCMTileState:
    """Every device of one tile after programming (conductances in µS, float64, CPU).

    Shape:
        weights_*: (F_out, F_in) float32, tile units (what the crossbar's weights are set to);
        g_*, nu, stuck: (K, 2, F_out, F_in), index 0 of dim 1 = G+, 1 = G-.
    """

    weights_target: Tensor
    """Weights the tile was programmed to (its reference weights)."""
    scale_ratio: float
    """µS per weight unit: ``g_max sum(F) / max|W_target|``."""
    g_max_device: Tensor
    """Each device's own saturation conductance (d2d spread of ``g_max``)."""
    g_target: Tensor
    """Target conductances (mapped weights, cut at the device's ``g_max``)."""
    g_programmed: Tensor
    """Conductances right after programming (noise, stuck devices)."""
    nu: Tensor
    """Drift exponent of every device (0 for stuck devices or drift off)."""
    stuck: Tensor
    """int8 flags: 0 working, 1 stuck at g_max, 2 stuck at 0 µS."""
    g_now: Tensor
    """Conductances at ``t_now`` (drift and a fresh read-noise sample)."""
    weights_programmed: Tensor
    """Weights of ``g_programmed``."""
    weights_now: Tensor
    """Weights of ``g_now``."""
    t_now: float = 0.0
    """Seconds since programming of ``g_now`` (0 right after programming, before any read)."""
    program_seed: int | None = None
    """Seed given to :func:`analog_snu.hardware.program` (``None``: torch's global RNG)."""
    drift_seed: int | None = None
    """Seed of the last drift's read-noise draw."""
    output_scales: Tensor | None = None
    """Pulsed tiles: the digital output scales before drift compensation. Shape: (1,) or (F_out,)."""
    compensation_reference: Tensor | None = None
    """Pulsed tiles: the identity read-out right after programming (drift compensation baseline)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(F_out, F_in)."""
        return tuple(self.weights_target.shape)  # type: ignore[return-value]


class PCMPhysics:
    """The PCM statistics of a :class:`PCMDevice`: mapping, programming, drift and read noise of a tile.

    Example:
        >>> from analog_snu.pcm import preset
        >>> physics = PCMPhysics(preset("pcm_joshi2020"))
        >>> g, scale = physics.conductance_targets(torch.tensor([[0.5, -1.0]]))
        >>> g[0, :, 0].tolist(), scale   # G+ and G- of each weight; max |W| maps to g_max = 25 µS
        ([[12.5, 0.0], [0.0, 25.0]], 25.0)
    """

    def __init__(self, device: PCMDevice) -> None:
        if not isinstance(device, PCMDevice):
            raise ConfigError(f"device must be a PCMDevice, got {type(device).__name__}")
        self.device = device
        self.g_max = device.conductance.g_max

    # -- mapping ----------------------------------------------------------------------------------
    def conductance_targets(self, weights: Tensor, scale: float | None = None) -> tuple[Tensor, float]:
        """Map weights to target conductances of K pairs.

        ``scale`` (µS per weight unit) fixes the mapping (a chip whose periphery keeps one scale
        while its weights change); ``None`` maps ``max |W|`` to full range.

        Shape: weights (F_out, F_in) -> g_target (K, 2, F_out, F_in) float64 µS, and the scale (µS per unit).
        """
        cond = self.device.conductance
        w = weights.detach().to("cpu", _F64)
        if scale is None:
            w_max = max(float(w.abs().max()) if w.numel() else 0.0, _ZERO_CLIP)
            scale = cond.g_max * sum(cond.significance) / w_max
        w_us = w * scale
        pairs = []
        for sign_w in (w_us.clamp(min=0.0), (-w_us).clamp(min=0.0)):
            lower, per_pair = 0.0, []
            for factor in cond.significance:
                per_pair.append(((sign_w - lower) / factor).clamp(min=0.0, max=cond.g_max))
                lower += factor * cond.g_max
            pairs.append(torch.stack(per_pair))  # (K, F_out, F_in)
        return torch.stack(pairs, dim=1), scale

    def weights_from_conductances(self, g: Tensor, scale: float) -> Tensor:
        """Inverse map. Shape: g (K, 2, F_out, F_in) µS -> (F_out, F_in) float32."""
        factors = torch.tensor(self.device.conductance.significance, dtype=_F64).view(-1, 1, 1)
        return ((factors * (g[:, 0] - g[:, 1])).sum(0) / scale).to(torch.float32)

    # -- statistics -------------------------------------------------------------------------------
    def programming_sigma(self, g_target: Tensor) -> Tensor:
        """Programming-noise std (µS) at ``g_target`` (µS); zeros when programming noise is off."""
        cfg, g_max = self.device.programming, self.device.conductance.g_max
        x = g_target / g_max
        sigma = torch.zeros_like(g_target) + cfg.coeffs[0]
        power = torch.ones_like(g_target)
        for coeff in cfg.coeffs[1:]:
            power = power * x
            sigma = sigma + coeff * power
        scale = cfg.scale * g_max / cfg.g_max_reference if cfg.enabled else 0.0
        return sigma * scale

    def nu_statistics(self, g_target: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the Gaussian nu is drawn from, per device (before ``|.|`` and scale)."""
        cfg = self.device.drift
        log_g = torch.log((g_target.abs() / self.device.conductance.g_max).clamp(min=_ZERO_CLIP))
        mean = (cfg.nu_mean_slope * log_g + cfg.nu_mean_offset).clamp(cfg.nu_mean_min, cfg.nu_mean_max)
        std = (cfg.nu_std_slope * log_g + cfg.nu_std_offset).clamp(cfg.nu_std_min, cfg.nu_std_max)
        return mean, std

    def read_noise_sigma(self, g_programmed: Tensor, t_seconds: float | Tensor) -> Tensor:
        """Relative 1/f read-noise std at ``t_seconds`` after programming (zeros when off)."""
        cfg, t0 = self.device.read_noise, self.device.drift.t0
        if not cfg.enabled:
            return torch.zeros_like(g_programmed)
        ratio = (g_programmed.abs() / self.device.conductance.g_max) ** cfg.exponent
        q_s = (cfg.q / ratio.clamp(min=1e-3)).clamp(max=cfg.q_max)
        t = t_seconds + t0
        if isinstance(t, Tensor):  # per-device times since programming (a chip's devices differ)
            return cfg.scale * q_s * torch.sqrt(torch.log((t + cfg.t_read) / (2 * cfg.t_read)))
        return cfg.scale * q_s * math.sqrt(math.log((t + cfg.t_read) / (2 * cfg.t_read)))

    def working_compensation(self, g_reference: Tensor, g_now: Tensor, stuck: Tensor, scheme: str) -> Tensor:
        r"""Drift-compensation factor estimated from the weights whose devices all work.

        A chip knows its stuck devices (they fail program-and-verify). Like aihwkit's identity
        read-out it compares :math:`|W|` right after programming with :math:`|W|` now, but only
        over the weights none of whose devices is stuck:
        :math:`\alpha = \sum_{ok} |W_\mathrm{ref}| / \sum_{ok} |W_\mathrm{now}|`, with
        :math:`W = \sum_k F_k (G^+_k - G^-_k)`, over the whole tile (``"global"``, shape (1,))
        or per output row (``"per_column"``, shape (F_out,)); ``"none"`` gives ones(1).
        Stuck-at-``g_max`` devices do not drift; a read-out that includes them underestimates
        the drift and under-compensates (``pcm_aged_lowyield``: 0.86-0.93 of the weight scale
        after a year instead of about 1).

        Shape: g_reference, g_now, stuck (K, 2, F_out, F_in) -> (1,) or (F_out,) float32.
        """
        if scheme == "none":
            return torch.ones(1)
        factors = torch.tensor(self.device.conductance.significance, dtype=_F64).view(-1, 1, 1)
        ok = (stuck == STUCK_NONE).all(0).all(0).to(_F64)  # (F_out, F_in)
        w_ref = ((g_reference[:, 0] - g_reference[:, 1]).to(_F64) * factors).sum(0).abs() * ok
        w_now = ((g_now[:, 0] - g_now[:, 1]).to(_F64) * factors).sum(0).abs() * ok
        dims = (1,) if scheme == "per_column" else (0, 1)
        reference, now = w_ref.sum(dims), w_now.sum(dims)
        alpha = torch.where(now > 0, reference / now.clamp(min=_ZERO_CLIP), torch.ones_like(now))
        return alpha.reshape(-1).to(torch.float32)

    @staticmethod
    def drift_factor(nu: Tensor, t_seconds: float | Tensor, t0: float) -> Tensor:
        """``((t + t0) / t0) ** -nu``."""
        return ((t_seconds + t0) / t0) ** (-nu)

    # -- programming and drift --------------------------------------------------------------------
    def program_state(self, weights: Tensor, generator: torch.Generator | None = None) -> PCMTileState:
        """Program ``weights`` (F_out, F_in): sample every device; returns the new state."""
        dev = self.device
        g_target, scale = self.conductance_targets(weights)
        shape = g_target.shape

        def normal() -> Tensor:
            return torch.randn(shape, generator=generator, dtype=_F64)

        spread_draw, prog_draw, nu_draw = normal(), normal(), normal()
        stuck_draw = torch.rand(shape, generator=generator, dtype=_F64)

        g_max = dev.conductance.g_max
        g_max_device = (g_max * (1.0 + dev.conductance.g_max_spread * spread_draw)).clamp(min=1e-3 * g_max)
        g_target = torch.minimum(g_target, g_max_device)
        g_prog = (g_target + self.programming_sigma(g_target) * prog_draw).clamp(min=0.0)
        if dev.drift.enabled:
            mean, std = self.nu_statistics(g_target)
            nu = (mean + std * nu_draw).abs() * dev.drift.scale
        else:
            nu = torch.zeros(shape, dtype=_F64)
        stuck = torch.zeros(shape, dtype=torch.int8)
        if dev.stuck.enabled:
            at_gmax = stuck_draw < dev.stuck.fraction_at_gmax
            at_zero = ~at_gmax & (stuck_draw < dev.stuck.fraction_at_gmax + dev.stuck.fraction_at_zero)
            stuck[at_gmax], stuck[at_zero] = STUCK_AT_GMAX, STUCK_AT_ZERO
            g_prog = torch.where(at_gmax, g_max_device, torch.where(at_zero, torch.zeros_like(g_prog), g_prog))
            nu = torch.where(at_gmax | at_zero, torch.zeros_like(nu), nu)
        weights_prog = self.weights_from_conductances(g_prog, scale)
        return PCMTileState(
            weights_target=weights.detach().to("cpu", torch.float32).clone(),
            scale_ratio=scale,
            g_max_device=g_max_device,
            g_target=g_target,
            g_programmed=g_prog,
            nu=nu,
            stuck=stuck,
            g_now=g_prog.clone(),
            weights_programmed=weights_prog,
            weights_now=weights_prog.clone(),
            t_now=0.0,
        )

    def drift_state(self, state: PCMTileState, t_seconds: float, generator: torch.Generator | None = None) -> None:
        """Move ``state`` to ``t_seconds`` after programming: drift plus a fresh read-noise sample."""
        if isinstance(t_seconds, bool) or not isinstance(t_seconds, (int, float)) or not math.isfinite(t_seconds) or t_seconds < 0:
            raise ConfigError(f"t_seconds must be a finite number >= 0 (seconds after programming), got {t_seconds!r}")
        t_seconds = float(t_seconds)
        read_draw = torch.randn(state.g_programmed.shape, generator=generator, dtype=_F64)
        g = state.g_programmed
        if t_seconds > 0:
            g = g * self.drift_factor(state.nu, t_seconds, self.device.drift.t0)
        g = (g + g.abs() * self.read_noise_sigma(state.g_programmed, t_seconds) * read_draw).clamp(min=0.0)
        state.g_now = g
        state.weights_now = self.weights_from_conductances(g, state.scale_ratio)
        state.t_now = t_seconds
