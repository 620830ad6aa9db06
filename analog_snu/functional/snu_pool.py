"""The SNU recurrence over a channels-last grid of neurons with max pooling fused in (convolutional layers).

:func:`snu_pool_sequence` is :func:`~analog_snu.functional.snu.snu_sequence` on the neurons of a
convolutional layer followed by ``k x k`` max pooling of the output, as one autograd node. The
dynamics are those of :func:`~analog_snu.functional.snu.snu_step`, with one threshold and one
decay per channel. Neurons are laid out channels-last, (T, N, H, W, C): the layout in which
oneDNN convolves fastest on a CPU (measured, one thread, 1280 28x28 images, 32 5x5 filters:
forward 85 -> 50 ms of CPU), so the convolution's output is read as it comes, without a copy.

On CPU (float32/float64) the loops of :mod:`analog_snu.functional.snu_pool_loops` run: the
spiking forward writes the membrane and the pooled spikes but never the full-size spikes, the
backward routes the pooled gradient and runs the BPTT step in one pass. Tensors of the
membrane's size are the largest of a conv layer (94 MiB at 32 channels, T = 20, N = 64), and a
fresh one costs more to map and first touch than the loops take to fill it, so the membrane can
be written over the currents (``overwrite``) and the backward writes dL/d current over the
saved membrane once the graph is not kept for another backward. Elsewhere (GPU, or
``ANALOG_SNU_TORCH_LOOPS=1``) the same values come from ``snu_sequence`` and ``max_pool2d``.

Shape letters: T time steps, N batch, H x W positions, C channels, k the pooling window.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analog_snu.errors import ConfigError, ShapeError
from analog_snu.functional.activations import LEAKY_RELU_SLOPE, check_activation
from analog_snu.functional.numpy_args import numpy_scalar, numpy_view
from analog_snu.functional.snu import (
    SNUState,
    _compiled_loops_apply,
    _loop_decay,
    _membrane_step,
    _per_neuron,
    snu_sequence,
)
from analog_snu.functional.surrogates import SURROGATES, check_surrogate

__all__ = ["snu_pool_compiled", "snu_pool_sequence"]


def _loops():
    """The compiled loops, imported on first use (numba's import and cache load take seconds)."""
    from analog_snu.functional import snu_loops, snu_pool_loops

    return snu_loops, snu_pool_loops


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph=True``): saved tensors are then needed again.

    torch's private query, which its AOT autograd uses to donate saved tensors; ``True`` (keep them)
    where it is missing.
    """
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if query is None else bool(query())


class _SNUPoolSequence(torch.autograd.Function):
    """SNU recurrence + max pooling over (T, N, H, W, C) currents, compiled CPU loops (module docstring)."""

    @staticmethod
    def forward(ctx, current, base, s0, y0, threshold, decay, pool, g, soft, surrogate):
        snu_loops, pool_loops = _loops()
        ctx.set_materialize_grads(False)
        ctx.config = (pool, g, soft, surrogate)
        steps, batch, height, width, channels = current.shape
        pooled = current.new_empty(steps, batch, height // pool, width // pool, channels)
        # the loops write the membrane over the currents: into ``base``'s memory, of which ``current``
        # is a view (an in-place operation that autograd is told of), or into a copy
        s_all = current if base is not None else current.clone()
        if soft:  # a sigmoid a step: torch's vectorised kernels beat numba's scalar exp (see snu_loops)
            y_all = _soft_forward(s_all, s0, y0, threshold, decay, g)
            pool_loops.max_pool_forward(numpy_view(y_all), pool, numpy_view(pooled))
            y_last = y_all[-1].clone()
        else:
            y_all = None
            y_last = torch.empty_like(s0)
            pool_loops.spike_pool_forward(numpy_view(s0), numpy_view(y0), _per_neuron(threshold, s_all), _per_neuron(decay, s_all),
                                          snu_loops.G_CODES[g], numpy_scalar(LEAKY_RELU_SLOPE, s_all.dtype), pool, numpy_view(s_all),
                                          numpy_view(pooled), numpy_view(y_last))
        membrane = s_all if base is None else base
        if base is not None:
            ctx.mark_dirty(base)
        ctx.membrane_view = (s_all.shape, s_all.stride(), s_all.storage_offset())
        ctx.save_for_backward(membrane, y_all, s0, y0, threshold, decay)
        return pooled, s_all[-1].clone(), y_last, membrane

    @staticmethod
    def backward(ctx, grad_pooled, grad_s_last, grad_y_last, grad_membrane):
        # grad_membrane: the membrane output only carries the in-place operation; snu_pool_sequence does not return it
        snu_loops, pool_loops = _loops()
        membrane, y_all, s0, y0, threshold, decay = ctx.saved_tensors
        s_all = membrane.as_strided(*ctx.membrane_view)  # (T, N, H, W, C)
        pool, g, soft, surrogate = ctx.config
        needs = ctx.needs_input_grad
        steps, batch, height, width, channels = s_all.shape
        if grad_pooled is None:
            grad_pooled = s_all.new_zeros(steps, batch, height // pool, width // pool, channels)
        grad_s_last, grad_y_last = (torch.zeros_like(s0) if grad is None else grad.to(s0.dtype)
                                    for grad in (grad_s_last, grad_y_last))
        # dL/da_t = dL/d current_t. Unless the graph is kept for another backward, it is written over the
        # membrane, step by step as each step's membrane is used up (torch's AOT autograd likewise donates
        # saved tensors used once): no fresh tensor of the membrane's size to allocate and first touch
        donate = not _graph_kept()
        grad_a = s_all if donate else torch.empty_like(s_all)
        grad_threshold = np.zeros((height, width, channels), dtype=np.float64)
        grad_decay = torch.zeros(channels, dtype=torch.float64) if needs[5] else None
        arrays = [numpy_view(v) for v in (grad_pooled, grad_y_last, grad_s_last, s_all, s_all if y_all is None else y_all)]
        threshold_c, decay_c = _per_neuron(threshold, s_all), _per_neuron(decay, s_all)
        slope_t = torch.empty_like(s0)  # one step's h' (or what it is formed from), reused: it stays in cache
        minus_two_threshold = threshold.to(s_all.dtype).mul(-2.0)
        for t in range(steps - 1, -1, -1):
            if grad_decay is not None and t < steps - 1:  # a_{t+1} depends on decay through decay (1 - y_t) s_t
                gate_t = torch.le(s_all[t], threshold).to(s_all.dtype) if y_all is None else torch.sub(1.0, y_all[t])
                grad_decay += (grad_a[t + 1] * s_all[t] * gate_t).sum((0, 1, 2))
            if soft:
                kind = snu_loops.SLOPE_SIGMOID_OUTPUT  # from y in the loop (slope_t unused)
            elif surrogate == "tanh":  # z = sigmoid(2 (s - threshold)) = sigmoid(-2 threshold + 2 s)
                torch.add(minus_two_threshold, s_all[t], alpha=2.0, out=slope_t).sigmoid_()
                kind = snu_loops.SLOPE_TANH
            else:
                torch.sub(s_all[t], threshold, out=slope_t)
                slope_t.copy_(SURROGATES[surrogate](slope_t))
                kind = snu_loops.SLOPE_GIVEN
            pool_loops.pool_recurrence_backward(t, *arrays, not soft, threshold_c, numpy_view(slope_t), kind, decay_c,
                                                snu_loops.G_CODES[g], numpy_scalar(LEAKY_RELU_SLOPE, s_all.dtype), pool,
                                                numpy_view(grad_a), grad_threshold)
        if donate:
            torch.autograd.graph.increment_version(membrane)  # its values are gone: any other saved use fails loudly
        grad_a0 = grad_a[0]
        if grad_decay is not None:  # a_0 depends on decay through the initial state
            grad_decay += (grad_a0 * s0 * (1.0 - y0)).sum((0, 1, 2))
            grad_decay = (grad_decay.sum() if decay.dim() == 0 else grad_decay).to(decay.dtype)
        return (
            grad_a,
            None,
            grad_a0 * decay * (1.0 - y0) if needs[2] else None,
            -grad_a0 * decay * s0 if needs[3] else None,
            torch.from_numpy(grad_threshold.sum((0, 1))).to(threshold.dtype) if needs[4] else None,
            grad_decay,
            None,
            None,
            None,
            None,
        )


def _soft_forward(s_all, s0, y0, threshold, decay, g):
    """The sSNU forward of ``_SNUSequence``'s torch loops on the grid, the membrane written over the currents
    in ``s_all``; returns ``y`` (T, N, H, W, C)."""
    y_all = torch.empty_like(s_all)
    gate = torch.sub(1.0, y0)
    s = s0
    d = _loop_decay(decay)
    for t in range(s_all.shape[0]):
        s = _membrane_step(s_all[t], s, gate, d, g, out=s_all[t])
        torch.sigmoid(torch.sub(s, threshold, out=y_all[t]), out=y_all[t])
        gate = torch.sigmoid(torch.sub(threshold, s, out=gate), out=gate)  # 1 - y_t without the cancellation
    return y_all


def _torch_pool_sequence(current, state, threshold, decay, pool, g, soft, surrogate):
    """The same through ``snu_sequence`` and ``max_pool2d`` (any device)."""
    steps, batch, height, width, channels = current.shape
    per_neuron = lambda v: v.expand(channels).repeat(height * width) if v.dim() else v  # noqa: E731
    flat = lambda v: v.reshape(*v.shape[:-3], -1)  # noqa: E731
    y, final = snu_sequence(flat(current), SNUState(flat(state.s), flat(state.y)), per_neuron(threshold),
                            per_neuron(decay), g, soft, surrogate)
    y = y.reshape(steps * batch, height, width, channels).permute(0, 3, 1, 2)
    pooled = torch.nn.functional.max_pool2d(y, pool) if pool > 1 else y
    pooled = pooled.permute(0, 2, 3, 1).reshape(steps, batch, height // pool, width // pool, channels)
    grid = (batch, height, width, channels)
    return pooled, SNUState(final.s.reshape(grid), final.y.reshape(grid))


def snu_pool_sequence(
    current: Tensor,
    state: SNUState,
    threshold: Tensor,
    decay: Tensor | float,
    pool: int = 1,
    g: str = "relu",
    soft: bool = False,
    surrogate: str = "tanh",
    overwrite: bool = False,
) -> tuple[Tensor, SNUState]:
    """The SNU recurrence of every neuron of a (H, W, C) grid, then ``pool x pool`` max pooling of the output.

    ``pooled[t] = max_pool2d(y_t, pool)`` with ``y`` the outputs of
    :func:`~analog_snu.functional.snu.snu_sequence` (floor mode: positions past the last full
    window are dropped), gradients routed to each window's first maximum as torch's
    ``max_pool2d`` does. Valid when the current does not depend on the state (a feed-forward
    convolution of the layer's input).

    ``overwrite=True`` lets the compiled loops write the membrane potentials over ``current``
    (or the tensor it is a view of, when the view covers all of it): an in-place operation that
    autograd tracks, as ``relu_``, which saves allocating and first touching a tensor of the
    size of ``current`` (a conv layer's largest); after a backward that does not keep the graph
    that memory holds dL/d current. For currents nothing else reads afterwards, such as a
    convolution's output.

    Shape:
        current: (T, N, H, W, C), channels last; state: :class:`SNUState` of two (N, H, W, C)
        tensors; threshold: (C,); decay: () or (C,); pool: k >= 1.
        Returns ``pooled`` (T, N, H // k, W // k, C) and the final :class:`SNUState` (N, H, W, C).
    """
    check_activation(g)
    check_surrogate(surrogate)
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ConfigError(f"pool must be a positive int, got {pool!r}")
    if current.dim() != 5 or current.shape[2] < pool or current.shape[3] < pool:
        raise ShapeError(f"current must have shape (T, N, H, W, C) with H, W >= pool={pool}, got {tuple(current.shape)}")
    decay = torch.as_tensor(decay, dtype=current.dtype, device=current.device)
    if not _compiled_loops_apply(current):
        return _torch_pool_sequence(current, state, threshold, decay, pool, g, soft, surrogate)
    base = _writable_base(current) if overwrite else None
    if base is None:
        current = current.contiguous()
    s0, y0 = (v.to(current.dtype).contiguous() for v in state)
    pooled, s_last, y_last, _ = _SNUPoolSequence.apply(current, base, s0, y0, threshold, decay, pool, g, soft,
                                                       surrogate)
    return pooled, SNUState(s_last, y_last)


def _writable_base(current: Tensor) -> Tensor | None:
    """The tensor whose memory ``current`` may be overwritten in: ``current`` itself or the tensor it views,
    if ``current`` is contiguous and covers all of it; ``None`` if neither (then the loops work on a copy)."""
    base = current if current._base is None else current._base
    if not current.is_contiguous() or base._base is not None or base.numel() != current.numel():
        return None
    if base.is_leaf and base.requires_grad:  # autograd forbids writing into a leaf that requires grad
        return None
    return base


def snu_pool_compiled(like: Tensor) -> bool:
    """Whether :func:`snu_pool_sequence` runs its compiled loops on tensors like ``like`` (CPU float32/float64,
    ``ANALOG_SNU_TORCH_LOOPS`` unset); otherwise it runs ``snu_sequence`` and ``max_pool2d``."""
    return _compiled_loops_apply(like)
