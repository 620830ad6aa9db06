r"""Variational dropout: one mask per sample, the same units dropped at every time step.

In training, an activation sequence :math:`x_t` (every step t of sample n) becomes

.. math::

    \tilde x_{t,n,i} = \frac{m_{n,i}}{1 - p} \, x_{t,n,i}, \qquad m_{n,i} \sim \mathrm{Bernoulli}(1 - p),

so :math:`\mathbb{E}[\tilde x] = x`; in evaluation it is the identity. Symbols: p the drop
probability in [0, 1) (dimensionless), :math:`m` the keep mask, drawn once per sample n and
unit i and shared by all T steps (Gal & Ghahramani 2016, "variational" dropout for recurrent
nets; a spiking neuron then stays silent for the whole sequence rather than losing random
spikes). For input without a time axis (an MLP's (N, F) activations) the mask is the plain
per-element dropout mask, as the hidden-activation dropout of IBM's GRAPES reference code.

Masks are drawn on the CPU from torch's global generator and then moved to the input's
accelerator, so a run's dropout stream is part of the global RNG state that checkpoints save
(``torch.get_rng_state()``), on CPU and CUDA runs alike: a resumed run draws the same masks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from analog_snu.errors import ConfigError, ShapeError

__all__ = ["check_dropout", "dropout_mask", "variational_dropout"]


def check_dropout(p: object, name: str = "dropout") -> float:
    """``p`` as a float if it is a number in [0, 1) (not a bool, not NaN); else :class:`ConfigError`."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0.0 <= p < 1.0:
        raise ConfigError(f"{name} must be a drop probability in [0, 1) (0 = off), got {p!r}")
    return float(p)


def dropout_mask(shape: tuple[int, ...], p: float, *, dtype: torch.dtype = torch.float32,
                 accelerator: torch.device | str | None = None) -> Tensor:
    """A keep mask scaled by 1/(1-p): entries 0 (probability p) or 1/(1-p).

    Drawn on the CPU from the global torch generator (see the module docstring), then moved to
    ``accelerator`` as ``dtype``.

    Shape:
        returns ``shape``.
    """
    p = check_dropout(p)
    keep = torch.empty(shape, dtype=torch.float32).bernoulli_(1.0 - p)  # CPU, global generator
    return keep.to(device=accelerator, dtype=dtype).mul_(1.0 / (1.0 - p))


def variational_dropout(x: Tensor, p: float, training: bool, *, time_dim: int | None = 0) -> Tensor:
    """Drop units of ``x`` with probability ``p``, the same units at every step of a sample.

    Args:
        x: activations; with a time axis at ``time_dim`` (0: time first) or, for
            ``time_dim=None``, without one.
        p: drop probability in [0, 1); 0 returns ``x`` itself.
        training: ``False`` (evaluation) returns ``x`` itself.
        time_dim: the time axis of ``x`` (the mask is shared along it), or ``None``.

    Shape:
        x: (T, N, *F) for ``time_dim=0`` (one mask (N, *F) for all T steps), or (N, *F)
        for ``time_dim=None``; returns the shape of ``x``. N = batch, F = feature axes
        (e.g. (C, H, W) for a convolution's output).
    """
    p = check_dropout(p)
    if not training or p == 0.0:
        return x
    if time_dim is not None and not -x.dim() <= time_dim < x.dim():
        raise ShapeError(f"time_dim {time_dim} is not an axis of the input of shape {tuple(x.shape)}")
    shape = list(x.shape)
    if time_dim is not None:
        shape[time_dim] = 1
    mask = dropout_mask(tuple(shape), p, dtype=x.dtype, accelerator=x.device)
    return x * mask
