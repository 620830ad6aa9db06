r"""Pure SNU math: one time step, and the fused element-wise recurrence over a sequence.

The Spiking Neural Unit (Woźniak et al., Nat. Mach. Intell. 2020) with zero initial state:

.. math::

    s_t = g\left(W x_t + H y_{t-1} + d \odot s_{t-1} \odot (1 - y_{t-1})\right), \qquad
    y_t = h(s_t - \theta)

==================  ===========================================================================
symbol              meaning (unit)
==================  ===========================================================================
:math:`x_t`         input at step t (spikes, dimensionless)
:math:`s_t`         membrane state (dimensionless, same scale as :math:`W x`)
:math:`y_t`         output: spike in {0, 1} (SNU) or firing probability in (0, 1) (sSNU)
:math:`W, H`        input and (optional) recurrent weights; ``current`` below is
                    :math:`W x_t + H y_{t-1}`
:math:`d`           membrane decay ``decay`` in [0, 1] (``1 - dt / tau``), scalar or per neuron
:math:`1 - y_{t-1}` reset gate: a neuron that fired starts again from zero
:math:`\theta`      firing threshold ``threshold``, per neuron
:math:`g`           ``"relu"``, ``"leaky_relu"`` (slope 0.1) or ``"identity"``
:math:`h`           Heaviside step (SNU, surrogate gradient backward) or sigmoid (sSNU, exact)
==================  ===========================================================================

Shape letters: T time steps, N batch, F neurons (F_out of the layer).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from analog_snu.errors import ConfigError
from analog_snu.functional.surrogates import SURROGATES, check_surrogate, heaviside_spike

__all__ = ["SNUState", "ACTIVATIONS", "check_activation", "snu_step", "snu_sequence"]

LEAKY_RELU_SLOPE = 0.1
ACTIVATIONS = ("relu", "leaky_relu", "identity")


class SNUState(NamedTuple):
    """State carried between steps. Shape: ``s`` and ``y`` are (N, F)."""

    s: Tensor
    y: Tensor


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known ``g``, else raise a ConfigError listing the valid names."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(f"g must be one of {list(ACTIVATIONS)}, got {name!r}")
    return name


def _activation(name: str, a: Tensor) -> Tensor:
    if name == "relu":
        return torch.relu(a)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(a, LEAKY_RELU_SLOPE)
    return a


def _activation_derivative(name: str, s: Tensor) -> Tensor:
    # g'(a) expressed through s = g(a): for (leaky) ReLU, s > 0 exactly when a > 0.
    if name == "relu":
        return (s > 0).to(s.dtype)
    if name == "leaky_relu":
        return torch.where(s > 0, 1.0, LEAKY_RELU_SLOPE).to(s.dtype)
    return torch.ones_like(s)


def snu_step(
    current: Tensor,
    state: SNUState,
    threshold: Tensor,
    decay: Tensor | float,
    g: str = "relu",
    soft: bool = False,
    surrogate: str = "tanh",
) -> tuple[Tensor, SNUState]:
    """One SNU step, differentiable through torch autograd (see the module docstring).

    Args:
        current: :math:`W x_t + H y_{t-1}`, shape (N, F).
        state: previous :class:`SNUState` (zeros at t = 0).
        threshold: shape (F,).
        decay: scalar or shape (F,).

    Returns:
        ``(y_t, SNUState(s_t, y_t))`` with ``y_t`` of shape (N, F).
    """
    s = _activation(g, current + decay * state.s * (1.0 - state.y))
    y = torch.sigmoid(s - threshold) if soft else heaviside_spike(s - threshold, surrogate)
    return y, SNUState(s, y)


class _SNUSequence(torch.autograd.Function):
    """Element-wise SNU recurrence over T steps with a hand-written BPTT backward.

    One autograd node for the whole sequence instead of ~10 per step: this is what
    makes the batched (non-recurrent) layer cheap. Gradients match :func:`snu_step`
    unrolled by autograd (tested), including the path through the reset gate.
    """

    @staticmethod
    def forward(ctx, current, s0, y0, threshold, decay, g, soft, surrogate):  # type: ignore[override]
        steps = current.shape[0]
        s_all = torch.empty_like(current)
        y_all = torch.empty_like(current)
        s, y = s0, y0
        for t in range(steps):
            s = _activation(g, current[t] + decay * s * (1.0 - y))
            pre = s - threshold
            y = torch.sigmoid(pre) if soft else (pre > 0).to(pre.dtype)
            s_all[t] = s
            y_all[t] = y
        ctx.save_for_backward(s_all, y_all, s0, y0, threshold, decay)
        ctx.config = (g, soft, surrogate)
        return y_all, s_all[-1].clone()

    @staticmethod
    def backward(ctx, grad_y_all, grad_s_last):  # type: ignore[override]
        s_all, y_all, s0, y0, threshold, decay = ctx.saved_tensors
        g, soft, surrogate = ctx.config
        steps = s_all.shape[0]
        if grad_y_all is None:
            grad_y_all = torch.zeros_like(y_all)
        grad_current = torch.empty_like(s_all)
        grad_threshold = torch.zeros_like(threshold)
        grad_decay = s_all.new_zeros(s_all.shape[-1])
        grad_a_next = None  # dL/da_{t+1}, a = pre-activation
        for t in range(steps - 1, -1, -1):
            s, y = s_all[t], y_all[t]
            grad_y = grad_y_all[t]
            grad_s = grad_s_last.clone() if (t == steps - 1 and grad_s_last is not None) else None
            if grad_a_next is not None:
                # a_{t+1} = current + decay * s_t * (1 - y_t)
                grad_y = grad_y - grad_a_next * decay * s
                reset_path = grad_a_next * decay * (1.0 - y)
                grad_s = reset_path if grad_s is None else grad_s + reset_path
            spike_slope = y * (1.0 - y) if soft else SURROGATES[surrogate](s - threshold)
            grad_pre = grad_y * spike_slope
            grad_threshold -= grad_pre.sum(0)
            grad_s = grad_pre if grad_s is None else grad_s + grad_pre
            grad_a = grad_s * _activation_derivative(g, s)
            grad_current[t] = grad_a
            s_prev = s_all[t - 1] if t > 0 else s0
            y_prev = y_all[t - 1] if t > 0 else y0
            grad_decay += (grad_a * s_prev * (1.0 - y_prev)).sum(0)
            grad_a_next = grad_a
        grad_s0 = grad_a_next * decay * (1.0 - y0)
        grad_y0 = -grad_a_next * decay * s0
        if decay.dim() == 0:
            grad_decay = grad_decay.sum()
        return (
            grad_current,
            grad_s0 if ctx.needs_input_grad[1] else None,
            grad_y0 if ctx.needs_input_grad[2] else None,
            grad_threshold if ctx.needs_input_grad[3] else None,
            grad_decay if ctx.needs_input_grad[4] else None,
            None,
            None,
            None,
        )


def snu_sequence(
    current: Tensor,
    state: SNUState,
    threshold: Tensor,
    decay: Tensor,
    g: str = "relu",
    soft: bool = False,
    surrogate: str = "tanh",
) -> tuple[Tensor, SNUState]:
    """Run the SNU recurrence over a whole sequence of precomputed input currents.

    Valid when the input current does not depend on the state (no recurrent ``H``):
    ``current[t] = W x_t`` for all t can then come from one matrix product.

    Shape:
        current: (T, N, F); state: two (N, F) tensors; threshold: (F,); decay: () or (F,).
        Returns ``y`` of shape (T, N, F) and the final :class:`SNUState`.
    """
    check_activation(g)
    check_surrogate(surrogate)
    decay = torch.as_tensor(decay, dtype=current.dtype, device=current.device)
    y_all, s_last = _SNUSequence.apply(current, state.s, state.y, threshold, decay, g, soft, surrogate)
    return y_all, SNUState(s_last, y_all[-1])
