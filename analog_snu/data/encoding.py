"""Spike encodings of static inputs."""

from __future__ import annotations

import torch
from torch import Tensor

from analog_snu.errors import ConfigError, InputValueError

__all__ = ["rate_encode"]


def rate_encode(
    intensities: Tensor, steps: int = 20, rate: float = 6.0, generator: torch.Generator | None = None
) -> Tensor:
    """Bernoulli rate coding: each step a pixel of intensity p spikes with probability p * rate / steps.

    ``rate`` is the expected number of spikes over the ``steps`` at full intensity (IBM's
    SNU demo: 20 steps, 6 spikes).

    Shape: intensities (N, F) in [0, 1] -> spikes (T=steps, N, F) of 0./1. (float32).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"steps must be a positive int, got {steps!r}")
    if not 0.0 < rate <= steps:
        raise ConfigError(f"rate must be in (0, steps={steps}], got {rate}")
    intensities = torch.as_tensor(intensities, dtype=torch.float32)
    if not torch.isfinite(intensities).all() or intensities.min() < 0 or intensities.max() > 1:
        raise InputValueError("intensities must be finite and lie in [0, 1]")
    probability = (intensities * (rate / steps)).expand(steps, *intensities.shape)
    return torch.bernoulli(probability, generator=generator)
