r"""Mixed-precision in-memory update rule (Nandakumar et al., Front. Neurosci. 14:406, 2020) in torch.

The weight updates requested by the optimizer accumulate in a high-precision matrix
:math:`\chi`; whenever :math:`|\chi|` reaches the device granularity :math:`\varepsilon`,
:math:`n = \mathrm{trunc}(\chi / \varepsilon)` SET pulses go to the G+ device (:math:`n > 0`)
or :math:`|n|` to the G- device, and :math:`n \varepsilon` leaves :math:`\chi`:

.. math::

    n = \mathrm{trunc}(\chi / \varepsilon), \qquad \chi \leftarrow \chi - n\,\varepsilon .

This is the transfer rule of aihwkit's ``MixedPrecisionCompound`` (``MixedPrecRPUDevice::
forwardUpdate``: ``dw = truncf(chi / granularity); chi -= dw * granularity``), written again
here because aihwkit's version cannot serve hardware-in-the-loop training:

- it lives inside aihwkit's C++ pulsed tile, whose forward pass cannot run on our per-device
  PCM state (drift since each device's last programming, stuck devices, per-device nu);
- its pulses draw from the C++ simulator's internal RNG, which Python cannot seed or save,
  so a run could not resume bit-identically;
- it exposes no per-device pulse or refresh counters (device wear);
- its :math:`\chi` is fed only by the tile's own ``x d^T`` outer product at the SGD learning
  rate, so Adam or GRAPES-modulated updates could not be transferred.

What stays aihwkit's: the rule above, the granularity default (the device's ``dw_min``,
as ``MixedPrecisionCompound(granularity=0)`` takes it from its device), the SET-pulse
parameters of ``PCMPresetDevice`` (:class:`~analog_snu.pcm.device.PulsedConfig`) and
the refresh criterion of ``OneSidedUnitCell`` (refresh when the larger device is above
``upper`` and the smaller above ``lower``, both relative to the device's ``g_max``).

SET-pulse model (conductances in µS): a pulse on a device at ``G`` adds on average
:math:`s(G) = s_0 e^{-\gamma G / g_\mathrm{max}}` (``s_0`` = granularity in µS, ``gamma`` =
``PulsedConfig.gamma``; the step shrinks as the device fills, as in aihwkit's
``ExpStepDevice``), with cycle-to-cycle spread ``dw_min_std``. ``n`` pulses are applied at once:
the mean follows the continuous limit :math:`G(n) = \frac{g_\mathrm{max}}{\gamma}
\ln(e^{\gamma G_0/g_\mathrm{max}} + \gamma s_0 n / g_\mathrm{max})` (``G_0 + s_0 n`` for
``gamma = 0``), the spread of a sum of ``n`` independent steps is ``dw_min_std / sqrt(n)``
relative, and the result is clipped to ``[G_0, g_max]`` (SET pulses never lower G).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mixed_precision_transfer", "set_pulses", "refresh_mask"]

_F64 = torch.float64


def mixed_precision_transfer(chi: Tensor, granularity: Tensor | float) -> tuple[Tensor, Tensor]:
    """Pulses owed by ``chi`` and what stays in it: ``n = trunc(chi / eps)``, ``chi - n eps``.

    Shape: chi (F_out, F_in) float64; granularity a float or broadcastable tensor, > 0 (the
    caller checks). Returns ``n`` (F_out, F_in) int64 (positive: G+ pulses, negative: G-)
    and the new ``chi``.

    Example:
        >>> n, chi = mixed_precision_transfer(torch.tensor([0.25, -0.25, 0.05], dtype=torch.float64), 0.1)
        >>> n.tolist(), [round(c, 12) for c in chi.tolist()]
        ([2, -2, 0], [0.05, -0.05, 0.05])
    """
    n = torch.trunc(chi / granularity)
    return n.to(torch.int64), chi - n * granularity


def set_pulses(g: Tensor, n: Tensor, g_max_device: Tensor, step: float, gamma: float, std: float,
               draw: Tensor) -> Tensor:
    """Conductances after ``n`` SET pulses (see the module docstring for the model).

    Shape: g, g_max_device, draw (standard normal) (..., ) float64 µS; n (...,) int64 >= 0.
    Returns the new conductances, float64; devices with ``n == 0`` are unchanged.
    """
    count = n.to(_F64)
    g_max = g_max_device
    if gamma > 0:
        mean_after = g_max / gamma * torch.log(torch.exp(gamma * g / g_max) + gamma * step * count / g_max)
    else:
        mean_after = g + step * count
    spread = (1.0 + std * draw / count.clamp(min=1.0).sqrt()).clamp(min=0.0)
    after = torch.minimum(g + (mean_after - g) * spread, g_max)
    return torch.where(n > 0, torch.maximum(after, g), g)


def refresh_mask(g_plus: Tensor, g_minus: Tensor, g_max_plus: Tensor, g_max_minus: Tensor, working: Tensor,
                 upper: float, lower: float) -> Tensor:
    """Pairs to refresh: the larger device (working) above ``upper`` of its ``g_max`` and the
    smaller above ``lower`` of its own (aihwkit ``OneSidedUnitCell``'s criterion).

    Shape: all (..., F_out, F_in); ``working`` bool, True where the larger device is not stuck.
    """
    rel_plus, rel_minus = g_plus / g_max_plus, g_minus / g_max_minus
    larger = torch.maximum(rel_plus, rel_minus)
    smaller = torch.minimum(rel_plus, rel_minus)
    return working & (larger > upper) & (smaller > lower)
