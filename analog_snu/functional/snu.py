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

import functools
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from analog_snu.errors import ConfigError
from analog_snu.functional.activations import LEAKY_RELU_SLOPE, activation, check_activation, spike_output
from analog_snu.functional.linear import is_feature_major
from analog_snu.functional.numpy_args import numpy_scalar, numpy_view
from analog_snu.functional.surrogates import SURROGATES, check_surrogate

__all__ = ["SNUParameters", "SNUState", "snu_feature_major_applies", "snu_step", "snu_sequence", "time_mean"]


@dataclass(frozen=True)
class SNUParameters:
    """The fixed (non-trained) choices of an SNU-family cell; each field is a keyword of :func:`snu_step`.

    The trained per-neuron tensors (``threshold``, ``decay``) belong to the layer and are passed
    to the step explicitly. Validated on construction.
    """

    g: str = "relu"
    """Membrane non-linearity :math:`g`: ``"relu"``, ``"leaky_relu"`` (slope 0.1) or ``"identity"``."""
    soft: bool = False
    """``False``: Heaviside spikes with a surrogate gradient (SNU); ``True``: sigmoid output (sSNU)."""
    surrogate: str = "tanh"
    """Pseudo-derivative of the step used backward (spiking cells only); see :data:`SURROGATES`."""

    def __post_init__(self) -> None:
        check_activation(self.g)
        if not isinstance(self.soft, bool):
            raise ConfigError(f"soft must be a bool, got {self.soft!r} ({type(self.soft).__name__})")
        check_surrogate(self.surrogate)


class SNUState(NamedTuple):
    """State carried between steps: membrane ``s`` and output ``y``, each (N, F); zeros at t = 0."""

    s: Tensor
    y: Tensor


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
    s = activation(g, current + decay * state.s * (1.0 - state.y))
    y = spike_output(s - threshold, soft, surrogate)
    return y, SNUState(s, y)


class _SNUSequence(torch.autograd.Function):
    """Element-wise SNU recurrence over T steps with a hand-written BPTT backward.

    One autograd node for the whole sequence instead of ~10 per step, and few kernels per
    step on (N, F) slices that stay in cache (whole-(T, N, F) temporaries cost more in
    fresh memory than they save in kernel launches). Forward, three kernels per step:
    ``a_t = current_t + decay (1 - y_{t-1}) s_{t-1}`` (one ``addcmul``), ``s_t = g(a_t)`` (in
    place) and the reset gate ``1 - y_t`` (a comparison written straight into a float buffer:
    torch's compare-to-bool and bool-to-float kernels are 5-10x slower on CPU; sigmoid for the
    sSNU). The gates of all steps are kept for the backward, so nothing is recomputed there.
    Backward, per step, from ``dL/da_{t+1}``:

        dL/dy_t = (dL/dy_t from outside) - decay s_t dL/da_{t+1}      (reset-gate path)
        dL/ds_t = h'_t dL/dy_t + decay (1 - y_t) dL/da_{t+1},   dL/da_t = g'_t dL/ds_t

    Gradients match :func:`snu_step` unrolled by autograd (tested).

    On CPU (float32/float64) the same loops run compiled (:mod:`analog_snu.functional.snu_loops`):
    a whole step in one pass over memory, the spiking forward keeping the outputs ``y`` instead of
    the gates; the torch loops below serve every other device and dtype.

    Layouts: a feature-major ``current`` (:func:`~analog_snu.functional.linear.is_feature_major`,
    (F, T, N) memory, as the SNU layer's digital map makes it) is read without a copy by the
    compiled spiking loops, and ``y``, ``s`` and the current's gradient come feature-major too;
    ``dL/dy`` may come in any layout. Every other case (sSNU, torch loops, other devices) runs
    time-major on a contiguous copy of the current.
    """

    @staticmethod
    def forward(ctx, current, s0, y0, threshold, decay, g, soft, surrogate):
        ctx.config = (g, soft, surrogate)
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not a tensor of zeros
        ctx.compiled = _compiled_loops_apply(current)  # the backward follows the forward's choice
        ctx.feature_major = ctx.compiled and not soft and is_feature_major(current)
        if ctx.compiled:  # the per-neuron decay as the loops read it, made once for forward and backward
            ctx.decay_np = _per_neuron(decay, current)
        if ctx.feature_major:
            s_all, y_all = _feature_major_forward(current, s0, y0, threshold, ctx.decay_np, g)
            ctx.save_for_backward(s_all, y_all, s0, y0, threshold, decay)
            return y_all, s_all[-1].contiguous()
        current = current.contiguous()  # the loops below index time-major (T, N, F)
        s_all = torch.empty_like(current)
        if not soft and ctx.compiled:
            snu_loops = _snu_loops()
            y_all = torch.empty_like(current)
            snu_loops.spike_forward(numpy_view(current), numpy_view(s0), numpy_view(y0), numpy_view(threshold), ctx.decay_np,
                                    snu_loops.G_CODES[g], numpy_scalar(LEAKY_RELU_SLOPE, current.dtype), s_all.numpy(),
                                    y_all.numpy())
            ctx.save_for_backward(s_all, y_all, s0, y0, threshold, decay)  # y in place of the gates
            return y_all, s_all[-1].clone()
        gate_all = torch.empty_like(current)  # 1 - y_t
        d = _loop_decay(decay)
        gate = 1.0 - y0
        s = s0
        for t in range(current.shape[0]):
            s = _membrane_step(current[t], s, gate, d, g, out=s_all[t])
            if soft:  # 1 - sigmoid(s - threshold) = sigmoid(threshold - s)
                gate = torch.sigmoid(torch.sub(threshold, s, out=gate_all[t]), out=gate_all[t])
            else:  # 1 - H(s - threshold)
                gate = torch.le(s, threshold, out=gate_all[t])
        ctx.save_for_backward(s_all, gate_all, s0, y0, threshold, decay)
        # y = 1 - gate exactly for spikes; the sSNU's y straight from the sigmoid (no cancellation)
        y_all = torch.sigmoid(s_all - threshold) if soft else torch.sub(1.0, gate_all)
        return y_all, s_all[-1].clone()

    @staticmethod
    def backward(ctx, grad_y_all, grad_s_last):
        s_all, reset, s0, y0, threshold, decay = ctx.saved_tensors
        g, soft, surrogate = ctx.config
        needs = ctx.needs_input_grad
        scalar = decay.dim() == 0
        reset_is_output = ctx.compiled and not soft  # the compiled spiking forward saved y, not 1 - y
        # dL/da_t = dL/d current_t, in the layout of the current
        grad_a = _feature_major_empty(s_all) if ctx.feature_major else torch.empty_like(s_all)
        if ctx.feature_major:
            grad_threshold = _feature_major_backward(s_all, reset, threshold, ctx.decay_np, grad_y_all, grad_s_last, g,
                                                     surrogate, grad_a)
        elif ctx.compiled:
            grad_threshold = _compiled_backward(s_all, reset, reset_is_output, threshold, ctx.decay_np, grad_y_all,
                                                grad_s_last, g, soft, surrogate, grad_a)
        else:
            grad_threshold = _torch_backward(s_all, reset, threshold, decay, grad_y_all, grad_s_last, g, soft,
                                             surrogate, grad_a)
        grad_decay = None
        if needs[4]:  # a_t depends on decay through decay (1 - y_{t-1}) s_{t-1}
            gate_all = torch.sub(1.0, reset) if reset_is_output else reset
            grad_decay = (grad_a[1:] * s_all[:-1] * gate_all[:-1]).sum((0, 1)) + (grad_a[0] * s0 * (1.0 - y0)).sum(0)
            grad_decay = (grad_decay.sum() if scalar else grad_decay).to(decay.dtype)
        return (
            grad_a,
            grad_a[0] * decay * (1.0 - y0) if needs[1] else None,
            -grad_a[0] * decay * s0 if needs[2] else None,
            grad_threshold.to(threshold.dtype) if needs[3] else None,
            grad_decay,
            None,
            None,
            None,
        )


def _loop_decay(decay: Tensor) -> Tensor | float:
    """The decay as :func:`_membrane_step` takes it: a float for a scalar (it rides on addcmul's value), else (F,)."""
    return float(decay) if decay.dim() == 0 else decay


def _membrane_step(current: Tensor, s: Tensor, gate: Tensor, decay: Tensor | float, g: str, out: Tensor) -> Tensor:
    """One step of the torch loops' membrane, ``s_t = g(current_t + decay (1 - y_{t-1}) s_{t-1})``, written into
    ``out`` (which may be ``current`` itself) and returned: one ``addcmul``, then ``g`` in place.

    ``s``: s_{t-1}; ``gate``: 1 - y_{t-1}; ``decay`` from :func:`_loop_decay`. Shape: all (N, ..., F).
    """
    if isinstance(decay, float):
        s = torch.addcmul(current, gate, s, value=decay, out=out)
    else:
        s = torch.addcmul(current, decay * gate, s, value=1.0, out=out)
    if g == "relu":
        s.relu_()
    elif g == "leaky_relu":
        torch.nn.functional.leaky_relu_(s, LEAKY_RELU_SLOPE)
    return s


def _torch_backward(s_all, gate_all, threshold, decay, grad_y_all, grad_s_last, g, soft, surrogate, grad_a):
    """The BPTT loop of :class:`_SNUSequence` in torch kernels (any device); fills ``grad_a``, returns dL/d threshold."""
    scalar = decay.dim() == 0
    d = float(decay) if scalar else 1.0
    grad_pre = torch.empty_like(s_all)  # dL/d(s_t - threshold), reduced once at the end
    grad_a_next = None
    for t in range(s_all.shape[0] - 1, -1, -1):
        s, gate = s_all[t], gate_all[t]
        # h'(s_t - threshold): exact sigmoid derivative y (1 - y) (sSNU) or the surrogate (SNU)
        slope = gate * (1.0 - gate) if soft else SURROGATES[surrogate](s - threshold)
        grad_y = grad_y_all[t] if grad_y_all is not None else torch.zeros_like(s)
        if grad_a_next is None:
            torch.mul(grad_y, slope, out=grad_pre[t])
            grad_s = grad_pre[t] if grad_s_last is None else grad_pre[t] + grad_s_last
        else:
            torch.mul(torch.addcmul(grad_y, grad_a_next, s if scalar else decay * s, value=-d), slope,
                      out=grad_pre[t])
            grad_s = torch.addcmul(grad_pre[t], grad_a_next, gate if scalar else decay * gate, value=d)
        grad_a_next = grad_a[t]
        if g == "relu":  # g' = 1[s > 0], written into the output buffer first
            torch.mul(grad_s, torch.gt(s, 0.0, out=grad_a_next), out=grad_a_next)
        elif g == "leaky_relu":
            slope_g = torch.gt(s, 0.0, out=grad_a_next).mul_(1.0 - LEAKY_RELU_SLOPE).add_(LEAKY_RELU_SLOPE)
            torch.mul(grad_s, slope_g, out=grad_a_next)
        else:
            grad_a_next.copy_(grad_s)
    return -grad_pre.sum((0, 1))


TORCH_LOOPS_ENV = "ANALOG_SNU_TORCH_LOOPS"
"""Set this environment variable to ``1`` to run the recurrence in torch kernels on CPU too
(to compare, or to debug without numba's compiled loops)."""


def _compiled_loops_apply(tensor: Tensor) -> bool:
    """The numba loops serve CPU float32/float64 tensors; anything else (CUDA, half) takes the torch loops."""
    if os.environ.get(TORCH_LOOPS_ENV) == "1":
        return False
    return tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)


@functools.cache
def _snu_loops():
    """The compiled loops, imported on first use (numba's import and cache load take seconds)."""
    from analog_snu.functional import snu_loops

    return snu_loops


def _per_neuron(vector: Tensor, like: Tensor):
    """A per-neuron (per-channel) or scalar vector as the (F,) array the loops read, in ``like``'s dtype (..., F)."""
    if vector.dim() == 0:  # a scalar (the usual fixed decay): filled by numpy, no torch kernels
        return np.full(like.shape[-1], numpy_scalar(vector.item(), like.dtype))
    return numpy_view(vector.to(like.dtype).expand(like.shape[-1]))


def _spike_slope(s: Tensor, threshold: Tensor, surrogate: str, out: Tensor) -> tuple[Tensor, int]:
    """The spiking cell's h'(s_t - threshold) for all steps at once, in torch (vectorised sigmoid), as the
    compiled backward loops read it: ``(slope, kind)``, kind one of ``snu_loops.SLOPE_*``.

    ``threshold`` broadcasts against ``s`` (per neuron, in ``s``'s memory order); ``out`` (like ``s``)
    is the gradient's memory, which the loops read before writing the gradient there: the
    ``"tanh"`` surrogate's z = sigmoid(2 (s - threshold)) goes there (h' = 4 z (1 - z), formed in
    the loop; no fresh (T, N, F) tensor).
    """
    snu_loops = _snu_loops()
    if surrogate == "tanh" and threshold.dtype == s.dtype:
        # 2x as 2 s - 2 threshold in one pass: doubling is exact, so these are the bits of
        # (s - threshold) * 2 (unless |threshold| is past half the float range, where 2 threshold is inf)
        return torch.add(threshold * -2.0, s, alpha=2.0, out=out).sigmoid_(), snu_loops.SLOPE_TANH
    if surrogate == "tanh":
        return torch.sub(s, threshold).mul_(2.0).sigmoid_(), snu_loops.SLOPE_TANH
    return SURROGATES[surrogate](s - threshold), snu_loops.SLOPE_GIVEN


def _compiled_backward(s_all, reset, reset_is_output, threshold, decay_np, grad_y_all, grad_s_last, g, soft, surrogate,
                       grad_a):
    """The BPTT loop in one compiled pass a step (:mod:`snu_loops`); fills ``grad_a``, returns dL/d threshold.

    ``decay_np``: the per-neuron decay (F,) as a numpy array in ``s_all``'s dtype (made by the forward)."""
    snu_loops = _snu_loops()
    if soft:
        slope, kind = s_all, snu_loops.SLOPE_SIGMOID_OUTPUT  # (slope unused)
    else:
        slope, kind = _spike_slope(s_all, threshold, surrogate, grad_a)
    if grad_y_all is None:
        grad_y = s_all.new_zeros(1, *s_all.shape[1:])
    elif grad_y_all.shape[0] > 1 and grad_y_all.stride(0) == 0:
        grad_y = grad_y_all[:1]  # the same gradient at every step (autograd's expand of a time mean or sum)
    else:
        grad_y = grad_y_all
    carry = torch.zeros_like(s_all[0]) if grad_s_last is None else grad_s_last.to(s_all.dtype)
    grad_threshold = np.zeros(s_all.shape[-1], dtype=np.float64)
    snu_loops.recurrence_backward(numpy_view(grad_y), numpy_view(slope), kind, numpy_view(s_all), numpy_view(reset), reset_is_output,
                                  decay_np, numpy_view(carry), snu_loops.G_CODES[g], numpy_scalar(LEAKY_RELU_SLOPE, s_all.dtype),
                                  grad_a.numpy(), grad_threshold)
    return torch.from_numpy(grad_threshold)


def _feature_major_empty(like: Tensor) -> Tensor:
    """An empty (T, N, F) tensor like ``like``, stored feature-major ((F, T, N) memory; not a view, so
    it may be changed in place like any output)."""
    steps, batch, width = like.shape
    return torch.empty_strided(like.shape, (batch, 1, steps * batch), dtype=like.dtype, device=like.device)


def _feature_major_forward(current, s0, y0, threshold, decay_np, g):
    """The compiled spiking forward on feature-major currents; returns ``s`` and ``y``, both feature-major (T, N, F)."""
    snu_loops = _snu_loops()
    s_all, y_all = _feature_major_empty(current), _feature_major_empty(current)
    s0_np = numpy_view(s0.t())  # (F, N) copies; one for both where the state is one tensor twice (zeros)
    y0_np = s0_np if y0 is s0 else numpy_view(y0.t())
    snu_loops.spike_forward_fm(numpy_view(current.movedim(-1, 0)), s0_np, y0_np,
                               numpy_view(threshold), decay_np, snu_loops.G_CODES[g],
                               numpy_scalar(LEAKY_RELU_SLOPE, current.dtype), s_all.movedim(-1, 0).numpy(),
                               y_all.movedim(-1, 0).numpy())
    return s_all, y_all


def _feature_major_backward(s_all, y_all, threshold, decay_np, grad_y_all, grad_s_last, g, surrogate, grad_a):
    """The compiled spiking backward on feature-major ``s_all``, ``y_all`` and ``grad_a`` (filled); returns
    dL/d threshold. ``grad_y_all`` may come in any layout: a time-constant one (stride 0 over the
    steps) is read as one (F, N) block, a feature-major one as it is, any other is copied."""
    snu_loops = _snu_loops()
    steps, batch, width = s_all.shape
    # on the (F, T, N) memory, the threshold a column (torch's loop over the (T, N, F) views, the
    # threshold broadcast along the strided axis, runs 3-4x slower: measured)
    s_mem = s_all.movedim(-1, 0)
    slope, kind = _spike_slope(s_mem, threshold[:, None, None], surrogate, grad_a.movedim(-1, 0))
    if grad_y_all is None:
        grad_y = s_all.new_zeros(width, 1, batch)
    elif steps > 1 and grad_y_all.stride(0) == 0:  # the same gradient at every step (a time mean's)
        grad_y = grad_y_all[0].t().unsqueeze(1)  # (F, 1, N), copied below (small)
    else:
        grad_y = grad_y_all.movedim(-1, 0)  # (F, T, N), copied below unless feature-major
    carry = s_all.new_zeros(width, batch) if grad_s_last is None else grad_s_last.t().to(s_all.dtype)  # (F, N)
    grad_threshold = np.zeros(width, dtype=np.float64)
    snu_loops.spike_backward_fm(numpy_view(grad_y.to(s_all.dtype)), numpy_view(slope), kind, numpy_view(s_mem),
                                numpy_view(y_all.movedim(-1, 0)), decay_np, numpy_view(carry), snu_loops.G_CODES[g],
                                numpy_scalar(LEAKY_RELU_SLOPE, s_all.dtype), grad_a.movedim(-1, 0).numpy(),
                                grad_threshold)
    return torch.from_numpy(grad_threshold)


def snu_feature_major_applies(like: Tensor, soft: bool) -> bool:
    """Whether :func:`snu_sequence` reads feature-major currents like ``like`` without a copy (the
    spiking cell, ``soft=False``, on the compiled CPU loops); it then returns ``y`` feature-major too."""
    return not soft and _compiled_loops_apply(like)


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
    if not (isinstance(decay, Tensor) and decay.dtype == current.dtype and decay.device == current.device):
        decay = torch.as_tensor(decay, dtype=current.dtype, device=current.device)
    y_all, s_last = _SNUSequence.apply(current, state.s, state.y, threshold, decay, g, soft, surrogate)
    return y_all, SNUState(s_last, y_all[-1])


def time_mean(x: Tensor) -> Tensor:
    """``x.mean(0)``, the same values and gradient, with a backward that writes no (T, N, F) tensor.

    Torch's CPU mean is a sum then a division by T (so this is the same float operations), but its
    backward writes the gradient out for every step; here the backward divides the (N, F)
    gradient once and hands it on as a broadcast view over the steps, which the compiled SNU
    backward (:func:`snu_sequence`) reads as it is. The readout of a network that classifies
    from the time-averaged spikes uses it.

    A feature-major ``x`` (:func:`~analog_snu.functional.linear.is_feature_major`, the spiking
    layer's output) is summed over its (F, T, N) memory, where the steps of a neuron lie together
    (torch's ``sum(0)`` of that layout writes a row-major result and runs ~10x slower); the
    result is then the (N, F) transposed view of an (F, N) sum, the same values.

    Shape: x (T, ...); returns (...).
    """
    if x.dim() == 3 and is_feature_major(x):
        return x.movedim(-1, 0).sum(1).div_(x.shape[0]).t()
    return x.sum(0).div_(x.shape[0])
