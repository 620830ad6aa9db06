r"""aihwkit's torch-tile analog MVM, with a shortcut for spike (0/1) inputs that simulates the same thing.

aihwkit's :class:`~aihwkit.simulator.tiles.analog_mvm.AnalogMVM` prepares the input of every
analog product (noise management, DAC quantisation, input clipping) and, with iterative bound
management, repeats the whole product at half the input scale for as long as any output
saturates the ADC. For an SNU layer the input is a (T*N, F_in) block of spikes, and
everything before the crossbar is then a scalar: a 0/1 input is left alone by (abs-)max noise
management (a row's maximum is 1, or 0 for a silent row, which aihwkit sets to 1), and the
quantised, clipped input at scale :math:`1/f` is :math:`q_f x` with one number
:math:`q_f = \mathrm{clip}(Q(1/f))`. So for every bound-management round

.. math::

    W\,\mathrm{prep}(x / f) = q_f\,(W x),

and :class:`SpikeAnalogMVM` computes the product :math:`W x` once and each round only
rescales it and runs aihwkit's own output stage (output noise, ADC quantisation, saturation
and bound test) on it. Same rounds, same random draws in the same order, same outputs (up to
float rounding of the scalar factor), and the same gradients as aihwkit's straight-through
estimators give: :math:`\partial/\partial x = \mathrm{d}q_f/\mathrm{d}x\, W^\top g` and
:math:`\partial/\partial W = q_f\, g^\top x`, with :math:`g` the gradient at the crossbar
output, plus aihwkit's gradient through the noise-management row scale (the output noise
scales with a row's input maximum, and autograd sees that). Any other input (non-binary values, input noise or asymmetry, stochastic input
rounding, noise management that rescales a 0/1 row) takes aihwkit's path unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from analog_snu.tiles.backend import aihwkit_module

__all__ = ["SpikeAnalogMVM", "SpikeTorchSimulatorTile", "spike_shortcut_applies"]

_mvm = aihwkit_module("simulator.tiles.analog_mvm")
_enums = aihwkit_module("simulator.parameters.enums")
_torch_tile = aihwkit_module("simulator.tiles.torch_tile")

_NM, _BM = _enums.NoiseManagementType, _enums.BoundManagementType


def spike_shortcut_applies(io_pars: Any) -> bool:
    """True when the forward IO settings keep a 0/1 input row a multiple of itself, deterministically."""
    if io_pars.is_perfect or io_pars.mv_type != _enums.AnalogMVType.ONE_PASS:
        return False
    if io_pars.inp_noise > 0 or io_pars.inp_asymmetry != 0 or io_pars.inp_sto_round:
        return False
    if io_pars.bound_management not in (_BM.NONE, _BM.ITERATIVE):
        return False
    nm, thres = io_pars.noise_management, io_pars.nm_thres
    if nm == _NM.NONE:
        return True
    if nm in (_NM.ABS_MAX, _NM.MAX):  # scale = max of a row (1, or 0 -> 1), clamped at nm_thres if set
        return thres <= 0 or thres >= 1
    if nm == _NM.CONSTANT:
        return thres in (0, 1)
    return False


def _is_spikes(x: Tensor) -> bool:
    """Every entry is exactly 0 or 1. Shape: any."""
    return x.dim() == 2 and not torch.count_nonzero(x * (x - 1)).item()


class _ScaledProduct(torch.autograd.Function):
    """``q * product`` where ``product = x W^T`` was computed once (without autograd) for all rounds.

    Gradients are aihwkit's straight-through ones for ``W prep(x s) / s`` with ``prep(x s) = q x``
    (``s = 1 / (row_scale * reduction)``, ``row_scale`` = 1 in value): ``dq * g W`` for ``x``,
    ``q * g^T x`` for ``W`` and, through the noise-management row scale,
    ``-sum_j g_j product_j / (row_scale^2 reduction)``. Shape: x (M, F_in), weight (F_out, F_in),
    product (M, F_out), row_scale (M, 1).
    """

    @staticmethod
    def forward(ctx, x, weight, row_scale, product, q, dq, reduction):  # type: ignore[override]
        ctx.save_for_backward(x, weight, row_scale, product)
        ctx.factors = (q, dq, reduction)
        return product * q

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, weight, row_scale, product = ctx.saved_tensors
        q, dq, reduction = ctx.factors
        needs = ctx.needs_input_grad
        grad_x = (grad @ weight).mul_(dq) if needs[0] else None
        grad_w = (grad.T @ x).mul_(q) if needs[1] else None
        grad_scale = None
        if needs[2]:
            grad_scale = (grad * product).sum(1, keepdim=True).div_(row_scale.square() * -reduction)
        return grad_x, grad_w, grad_scale, None, None, None, None


class SpikeAnalogMVM(_mvm.AnalogMVM):
    """aihwkit's ``AnalogMVM`` with the spike-input shortcut (module docstring); same results."""

    @classmethod
    def _input_factor(cls, scale: float, io_pars: Any, like: Tensor) -> tuple[float, float]:
        """``(q, dq/dx)`` of aihwkit's own input stage applied to a single 1 at input scale ``scale``."""
        one = torch.ones(1, 1, dtype=like.dtype, device=like.device, requires_grad=True)
        with torch.enable_grad():
            prepared = cls._prepare_input(input_=one, scale=scale, scaling=scale != 1.0, with_asymmetry=False,
                                          io_pars=io_pars)
            (slope,) = torch.autograd.grad(prepared.sum(), one, allow_unused=True)
        return float(prepared.detach()), float(slope) if slope is not None else 0.0

    @classmethod
    def matmul(cls, weight: Tensor, input_: Tensor, io_pars: Any, trans: bool = False, is_test: bool = False,
               **fwd_pars: Any) -> Tensor:
        if trans or weight.dim() != 2 or not spike_shortcut_applies(io_pars) or not _is_spikes(input_):
            return super().matmul(weight, input_, io_pars, trans=trans, is_test=is_test, **fwd_pars)
        if io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX) and not input_.any():
            # aihwkit's own shortcut (every row's noise-management scale is 0): no output, no noise drawn
            return torch.zeros(input_.shape[0], weight.shape[0], dtype=input_.dtype, device=input_.device)

        # Noise management: 1 for every 0/1 row (a silent row's 0 is set to 1, as aihwkit does), but
        # aihwkit differentiates through it (the output noise scales with the row's input range), so
        # the same tensor is built here and enters the graph exactly where it does there.
        if io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX) and input_.requires_grad:
            row_scale = cls._compute_noise_management(input_=input_, nm_type=io_pars.noise_management,
                                                      io_pars=io_pars)
            row_scale[row_scale <= 0.0] = 1.0
        else:
            row_scale = input_.new_ones(input_.shape[0], 1)
        iterative = io_pars.bound_management == _BM.ITERATIVE
        inp_res = io_pars.inp_res
        if inp_res > 0:
            inp_res = (1 / inp_res if inp_res > 1.0 else inp_res) * 2.0 * io_pars.inp_bound
        with torch.no_grad():
            product = input_ @ weight.T  # (M, F_out), shared by all rounds
        reduction = 1.0
        while True:  # aihwkit's bound-management loop (analog_mvm.AnalogMVM.matmul), one product for all rounds
            q, dq = cls._input_factor(1.0 / reduction, io_pars, input_)
            out_values = _ScaledProduct.apply(input_, weight, row_scale, product, q, dq, reduction)
            passed, output = cls._finalize_output(out_values=out_values, io_pars=io_pars, **fwd_pars)
            if not iterative:
                break
            passed = bool(passed) or reduction > io_pars.max_bm_factor
            passed = passed or (inp_res > 0.0 and reduction > io_pars.max_bm_res / inp_res)
            if passed:
                break
            reduction *= 2.0
        # aihwkit's final rescaling by out_scale / input scale (row_scale is 1 in value, not in gradient)
        return output * (row_scale * (io_pars.out_scale * reduction))


class SpikeTorchSimulatorTile(_torch_tile.TorchSimulatorTile):
    """aihwkit's torch simulator tile running :class:`SpikeAnalogMVM` (set as ``rpu_config.simulator_tile_class``)."""

    def __init__(self, x_size: int, d_size: int, rpu_config: Any, bias: bool = False) -> None:
        super().__init__(x_size, d_size, rpu_config, bias=bias, analog_mvm=SpikeAnalogMVM)
