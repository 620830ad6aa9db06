r"""Our aihwkit noise model: the PCM physics of :mod:`analog_snu.pcm.physics` behind aihwkit's
noise-model interface, keeping the state of every device.

aihwkit's ``PCMLikeNoiseModel`` keeps only weights: the programmed G+ and G- are folded into
their difference and the drift exponents into an anonymous list. :class:`PCMNoiseModel`
computes the same statistics with :class:`~analog_snu.pcm.physics.PCMPhysics` (``K``
differential pairs with significance factors, device-to-device ``g_max`` spread, stuck devices)
and keeps a :class:`~analog_snu.pcm.physics.PCMTileState` per tile. aihwkit deep-copies the RPU
config into every tile, so each tile owns one model.

Shape letters: K pairs, 2 = (G+, G-), F_out x F_in the tile's weight matrix.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import Tensor

from analog_snu.pcm.device import PCMDevice
from analog_snu.pcm.physics import PCMPhysics, PCMTileState
from analog_snu.tiles.backend import aihwkit_module

__all__ = ["PCMNoiseModel"]

_BaseNoiseModel = aihwkit_module("inference.noise.base").BaseNoiseModel
_F64 = torch.float64


class PCMNoiseModel(PCMPhysics, _BaseNoiseModel):
    """aihwkit noise model built from a :class:`PCMDevice` that keeps its tile's device states.

    ``rpu_config.noise_model = PCMNoiseModel(device)``; aihwkit's ``program_weights()`` /
    ``drift_weights(t)`` then call :meth:`apply_programming_noise` / :meth:`apply_drift_noise`,
    which fill :attr:`state`. :func:`analog_snu.hardware.program` and ``drift`` add seeds.
    """

    def __init__(self, device: PCMDevice) -> None:
        PCMPhysics.__init__(self, device)
        _BaseNoiseModel.__init__(self)
        self.state: PCMTileState | None = None
        self._generator: torch.Generator | None = None

    # -- identity ---------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.device == self.device  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:  # type: ignore[override]
        return f"PCMNoiseModel(device={self.device.name!r}, pairs={self.device.conductance.pairs})"

    __repr__ = __str__

    @contextmanager
    def seeded(self, generator: torch.Generator | None) -> Iterator[PCMNoiseModel]:
        """Use ``generator`` for the draws made inside the ``with`` block (aihwkit's calls included)."""
        previous, self._generator = self._generator, generator
        try:
            yield self
        finally:
            self._generator = previous

    # -- aihwkit's interface ----------------------------------------------------------------------
    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> tuple[Tensor, list[Tensor]]:
        """aihwkit hook: program ``weights`` into :attr:`state`; returns the programmed weights
        and the drift exponents of every conductance slice (2K tensors (F_out, F_in))."""
        self.state = self.program_state(weights, self._generator)
        programmed = self.state.weights_programmed.to(weights.device, weights.dtype)
        return programmed, list(self.state.nu.flatten(0, 1).to(torch.float32).unbind(0))

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: Any, t_inference: float) -> Tensor:
        """aihwkit hook: drift :attr:`state` to ``t_inference`` (programming ``weights`` first if unprogrammed)."""
        if self.state is None or self.state.shape != tuple(weights.shape):
            self.state = self.program_state(weights, self._generator)
        self.drift_state(self.state, t_inference, self._generator)
        return self.state.weights_now.to(weights.device, weights.dtype)

    @torch.no_grad()
    def apply_noise(self, weights: Tensor, t_inference: float) -> Tensor:
        """aihwkit hook: a fresh programming + drift sample, without touching :attr:`state`."""
        state = self.program_state(weights, self._generator)
        self.drift_state(state, t_inference, self._generator)
        return state.weights_now.to(weights.device, weights.dtype)

    @torch.no_grad()
    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        """aihwkit hook: programming noise on conductances (µS) alone (no stuck devices, no spread)."""
        g = g_target.to(_F64)
        draw = torch.randn(g.shape, generator=self._generator, dtype=_F64).to(g.device)
        return (g + self.programming_sigma(g) * draw).clamp(min=0.0).to(g_target.dtype)

    @torch.no_grad()
    def generate_drift_coefficients(self, g_target: Tensor) -> Tensor:
        """aihwkit hook: drift exponents for conductances ``g_target`` (µS)."""
        if not self.device.drift.enabled:
            return torch.zeros_like(g_target)
        mean, std = self.nu_statistics(g_target.to(_F64))
        draw = torch.randn(g_target.shape, generator=self._generator, dtype=_F64).to(g_target.device)
        return ((mean + std * draw).abs() * self.device.drift.scale).to(g_target.dtype)

    @torch.no_grad()
    def apply_drift_noise_to_conductance(self, g_prog: Tensor, drift_noise_param: Tensor, t_inference: float) -> Tensor:
        """aihwkit hook: drift and read noise on conductances (µS)."""
        g = g_prog.to(_F64)
        drifted = g * self.drift_factor(drift_noise_param.to(_F64), t_inference, self.device.drift.t0) if t_inference > 0 else g
        draw = torch.randn(g.shape, generator=self._generator, dtype=_F64).to(g.device)
        return (drifted + drifted.abs() * self.read_noise_sigma(g, t_inference) * draw).clamp(min=0.0).to(g_prog.dtype)
