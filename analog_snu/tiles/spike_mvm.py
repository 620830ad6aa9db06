r"""aihwkit's torch-tile analog MVM with bound management per input vector, and a shortcut for spike inputs.

**Bound management per input vector.** With iterative bound management, an input vector whose
outputs saturate the ADC (some :math:`|y_i|` past ``out_bound`` after output noise and ADC
quantisation) is converted again at half the input scale, and again, until its outputs fit or
the reduction :math:`f` passes its limit (``f > max_bm_factor``, or, with a DAC resolution,
``f > max_bm_res / (inp_res * 2 inp_bound)``); the result is the last conversion, clipped at the
bound, times :math:`f`. aihwkit's torch tile (``analog_mvm.AnalogMVM.matmul``) applies that test
to the whole batch at once: one saturating vector among the :math:`T N` (1280 in the issue-13
benchmark) reruns and rescales all of them, so every vector of that batch gets the ADC
coarseness and the output noise of the largest :math:`f` any vector needed, and the output stage
runs on the whole batch every round. Here each vector :math:`n` has its own rounds, as in
aihwkit's C++ reference (``rpu_forward_backward_pass.cpp``, ``forwardVector``, which handles one
vector at a time) and as on a chip, where every input vector is a separate DAC/crossbar/ADC
conversion and the periphery decides per conversion whether to repeat it:

- round :math:`k = 0, 1, \ldots` uses :math:`f = 2^k`; only the vectors that failed round
  :math:`k - 1` take part, and only they get new output-noise (and ADC stochastic-rounding)
  draws; a vector that passes keeps that round's output;
- the bound test is aihwkit's torch one (both signs; ``bm_test_negative_bound`` is not read);
- when the limit is reached, the vectors still saturating keep that last round's clipped
  output, scaled by its :math:`f`.

This differs from aihwkit's torch tile on any batch that holds a saturating vector: the other
vectors are converted once, at scale 1 (less noise and finer ADC steps relative to their
output), and the random draws are fewer. It is the same as aihwkit's torch tile on a batch of
one vector (same draws in the same order, so the same outputs from the same seed) and on a
batch in which no vector saturates (one round for all). A silent 0/1 vector in a batch with
other vectors still gets output noise, as in aihwkit's torch tile (the C++ ``forwardVector``
skips it); an all-zero batch gives zeros without drawing noise, as both do.

Which inputs take which path (an input of shape (..., F_in) is a batch of vectors, the leading
dimensions flattened):

- 0/1 inputs whose input stage is a scalar (:func:`spike_shortcut_applies`): the spike path
  below, per-vector rounds;
- any other input with ``BoundManagementType.ITERATIVE`` (one-pass MVM, a 2-D weight, forward
  direction): per-vector rounds through aihwkit's own input stage (noise management, DAC
  quantisation, clipping, input noise, asymmetry), the crossbar product and the output stage
  rerun on the failing vectors only, autograd through each vector's last round (on CPU, the tile
  runs the preset's kind of settings as compiled loops instead:
  :func:`~analog_snu.tiles.fused_periphery.fused_general_forward`, the same in distribution);
- everything else (bound management ``NONE``, where per-vector and per-batch are the same;
  ``ITERATIVE_WORST_CASE`` and ``SHIFT``; transposed (backward) products, which aihwkit runs
  without bound management; 3-D weights; perfect or ideal IO) takes aihwkit's path unchanged,
  with its batch-wide behaviour.

**Spike shortcut.** For an SNU layer the input is a (T*N, F_in) block of spikes, and everything
before the crossbar is then a scalar: a 0/1 input is left alone by (abs-)max noise management
(a row's maximum is 1, or 0 for a silent row, which aihwkit sets to 1), and the quantised,
clipped input at scale :math:`1/f` is :math:`q_f x` with one number
:math:`q_f = \mathrm{clip}(Q(1/f))`. So for every round

.. math::

    W\,\mathrm{prep}(x / f) = q_f\,(W x),

and the product :math:`W x` is computed once; each round rescales the failing rows and runs the
output stage on them. Gradients are aihwkit's straight-through ones, per row with that row's
own final :math:`f`: with :math:`g` the gradient at the crossbar output of a row (zero where
its output was clipped, times :math:`1 - a` where output asymmetry :math:`a` scaled it),
:math:`\partial/\partial x = \mathrm{d}q_f/\mathrm{d}x\, W^\top g` and
:math:`\partial/\partial W = \sum_n q_{f_n}\, g_n x_n^\top`, plus aihwkit's gradient through the
noise-management row scale (the output scales with a row's input maximum, and autograd sees
that). Any other input (non-binary values, input noise or asymmetry, stochastic input rounding,
noise management that rescales a 0/1 row) takes the general per-vector path above.
"""

from __future__ import annotations

import math
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from analog_snu.functional.linear import linear
from analog_snu.tiles.backend import aihwkit_module

__all__ = ["SpikeAnalogMVM", "SpikeTorchSimulatorTile", "adc_codes_limit", "adc_step", "clip_slope", "crossbar_gradients",
           "per_vector_bound_management_applies", "spike_shortcut_applies"]

_mvm = aihwkit_module("simulator.tiles.analog_mvm")
_enums = aihwkit_module("simulator.parameters.enums")
_torch_tile = aihwkit_module("simulator.tiles.torch_tile")
_quantize = aihwkit_module("simulator.tiles.utils").UniformQuantize

_NM, _BM = _enums.NoiseManagementType, _enums.BoundManagementType
_ROW_NM = (_NM.NONE, _NM.ABS_MAX, _NM.MAX, _NM.CONSTANT)  # noise managements aihwkit's torch tile computes per row


def _clamp_passes_gradient_at_bound() -> bool:
    """Whether ``torch.clamp`` passes the gradient of a value exactly at its bound (torch-version dependent)."""
    probe = torch.ones(1, requires_grad=True)
    (grad,) = torch.autograd.grad(probe.clamp(-1.0, 1.0).sum(), probe)
    return bool(grad.item() != 0.0)


_CLAMP_GRAD_AT_BOUND = _clamp_passes_gradient_at_bound()


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


def per_vector_bound_management_applies(io_pars: Any) -> bool:
    """True when any (non-spike) input takes the per-vector iterative bound management of this module."""
    return (not io_pars.is_perfect and io_pars.mv_type == _enums.AnalogMVType.ONE_PASS
            and io_pars.bound_management == _BM.ITERATIVE and io_pars.noise_management in _ROW_NM)


def _is_spikes(x: Tensor) -> bool:
    """Every entry is exactly 0 or 1 (``x (x - 1) == 0``; one temporary, no autograd graph). Shape: x (M, F_in)."""
    with torch.no_grad():
        return not torch.count_nonzero((x - 1).mul_(x)).item()


def clip_slope(values: Tensor, bound: float, inside: Tensor) -> Tensor:
    """``torch.clamp(values, -bound, bound)``'s derivative as a mask, given ``inside`` = ``|values| <= bound``
    (at the bound itself as this torch version has it)."""
    return inside if _CLAMP_GRAD_AT_BOUND else (values < bound) & (values > -bound)


def adc_step(io_pars: Any) -> float:
    """The ADC's step in output units, as aihwkit's ``UniformQuantize`` computes it (``out_res`` > 0)."""
    res = 1 / io_pars.out_res if io_pars.out_res > 1.0 else io_pars.out_res
    return res * (2 * io_pars.out_bound)  # the order of UniformQuantize.forward: same float


def adc_codes_limit(io_pars: Any) -> int | None:
    """Clamp for int16 ADC codes (:meth:`SpikeAnalogMVM._output_stage`): the least L with ``L * step``
    past the bound, plus one; None when the ADC is not deterministic or L does not fit in int16."""
    if io_pars.out_res <= 0 or io_pars.out_sto_round or io_pars.out_bound <= 0:
        return None
    limit = math.ceil(io_pars.out_bound / adc_step(io_pars)) + 1
    return limit if limit <= torch.iinfo(torch.int16).max else None


def _exact_power_of_two(value: float) -> bool:
    """``value`` is 2^k with k >= 0, so multiplying a float by it and dividing back is exact (barring overflow)."""
    return value >= 1.0 and math.frexp(value)[0] == 0.5


def _limit_reached(reduction: float, io_pars: Any) -> bool:
    """aihwkit's stop rule of iterative bound management for the round run at ``reduction``."""
    inp_res = io_pars.inp_res
    if inp_res > 0:  # the DAC step, as aihwkit computes it for this test
        inp_res = (1 / inp_res if inp_res > 1.0 else inp_res) * 2.0 * io_pars.inp_bound
    return reduction > io_pars.max_bm_factor or (inp_res > 0.0 and reduction > io_pars.max_bm_res / inp_res)


class _SpikeRows(torch.autograd.Function):
    """Per-vector bound management of a 0/1 input: one product ``x W^T``, output stage per round on failing rows.

    Returns ``out = y * row_scale * out_scale * f``: the clipped ADC outputs ``y`` of each row's
    last round, rescaled by that round's reduction ``f`` (aihwkit's final rescaling, per row).
    Gradients are aihwkit's straight-through ones for ``y = out(W prep(x s))`` with
    ``prep(x s) = q_f x`` and ``s = 1 / (row_scale * f)`` (``row_scale`` = 1 in value): with
    ``G = grad_out * row_scale * out_scale * f * slope`` (clip mask times output asymmetry),
    ``dq_f * G W`` for ``x``, ``(q_f G)^T x`` for ``W``, and for the row scale
    ``-sum_j G_j (x W^T)_j / (row_scale^2 f)`` plus ``out_scale f sum_j grad_out_j y_j`` (the
    final rescaling), each computed with the operations autograd uses for the unfused
    expression, so the values are the same bit for bit.

    Memory: besides ``x`` and ``weight`` (both kept by the caller anyway), only the bool clip
    mask and (M, 1) factors are saved. When the row scale needs a gradient (``x`` requires one),
    also the output, from which ``y = out / (out_scale f)`` is recovered exactly when
    ``out_scale`` is a power of two >= 1 (else ``y`` itself is saved), and the product
    ``x W^T`` is computed again in the backward (the same operands and operation, so the same
    values) instead of being kept from the forward: (M, F_out) floats saved per call are one,
    or none when ``x`` needs no gradient (aihwkit's batch-wide path keeps three to five).
    Shape: x (M, F_in), weight (F_out, F_in), row_scale (M, 1); returns (M, F_out).
    """

    @staticmethod
    def forward(ctx, x, weight, row_scale, mvm, io_pars, fwd_pars):  # type: ignore[override]
        product = x @ weight.T  # (M, F_out), shared by all rounds
        y, slope, q, dq, reduction, _ = mvm._spike_rounds(product, io_pars, fwd_pars)
        out_factor = io_pars.out_scale * reduction  # (M, 1)
        scale = row_scale * out_factor  # (M, 1): aihwkit's out_scale / input scale; row_scale is 1 in value
        ctx.io_pars = io_pars
        ctx.y_from_out = _exact_power_of_two(io_pars.out_scale)
        if not ctx.needs_input_grad[2]:
            ctx.save_for_backward(x, weight, slope, q, dq, scale)
            return y.mul_(scale)  # (M, F_out): y is not needed for the gradient
        if ctx.y_from_out:  # y = out / scale exactly (scale = 2^k, k >= 0)
            out = y.mul_(scale)
            ctx.save_for_backward(x, weight, slope, q, dq, scale, row_scale, reduction, out)
        else:
            out = y * scale
            ctx.save_for_backward(x, weight, slope, q, dq, scale, row_scale, reduction, y)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, weight, slope, q, dq, scale, *rest = ctx.saved_tensors
        row_scale = reduction = grad_final = None
        if ctx.needs_input_grad[2]:
            row_scale, reduction, y = rest
            # the final rescaling y * (row_scale * out_factor), as autograd's two MulBackward nodes
            weighted = y.div(scale).mul_(grad_out) if ctx.y_from_out else grad_out * y  # (M, F_out)
            grad_final = weighted.sum(1, keepdim=True) * (ctx.io_pars.out_scale * reduction)
            del weighted, y
        grad = (grad_out * scale).mul_(slope)  # (M, F_out): gradient at the crossbar output
        del slope
        grads = crossbar_gradients(grad, x, weight, q, dq, ctx.needs_input_grad, row_scale, reduction, grad_final)
        return *grads, None, None, None


def crossbar_gradients(grad: Tensor, x: Tensor, weight: Tensor, q: Tensor, dq: Tensor, needs: tuple[bool, ...],
                       row_scale: Tensor | None = None, reduction: Tensor | None = None,
                       grad_final: Tensor | None = None) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients of the spike path's ``x``, ``weight`` and row scale (where ``needs`` them, in that order).

    ``grad``: the gradient at the crossbar output (M, F_out), consumed (scaled in place);
    ``grad_final``: the row scale's gradient through the final rescaling (M, 1), added to the one
    through the input factor (see :class:`_SpikeRows`)."""
    grad_x = (grad @ weight).mul_(dq) if needs[0] else None
    grad_scale = None
    if needs[2]:
        product = (x @ weight.T).mul_(grad)  # the forward's product again, bit for bit, times grad
        grad_scale = product.sum(1, keepdim=True).div_(row_scale.square() * -reduction) + grad_final
        del product
    grad_w = grad.mul_(q).T @ x if needs[1] else None
    return grad_x, grad_w, grad_scale


class SpikeAnalogMVM(_mvm.AnalogMVM):
    """aihwkit's ``AnalogMVM`` with per-vector bound management and the spike-input shortcut (module docstring)."""

    @classmethod
    def _matmul(cls, weight: Tensor, input_: Tensor, trans: bool = False) -> Tensor:
        """The crossbar product of every path that is not the fused one, on oneDNN where that applies.

        aihwkit's ``input_ @ weight.T`` takes torch's MKL product, whose generic code path on AMD CPUs
        runs ~2.3x slower than oneDNN (:mod:`analog_snu.functional.linear`); an sSNU layer's soft
        outputs take this path (measured: the 256-input product of an sSNU HWA step, 1.1 ms a call on
        MKL). Differentiable; the two backends sum in different orders (float32 rounding).
        """
        if weight.dim() != 2:
            return super()._matmul(weight, input_, trans)
        return linear(input_, weight.T if trans else weight)

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
    def _output_stage(cls, out_values: Tensor, io_pars: Any, with_slope: bool = False,
                      out_noise_values: Tensor | None = None, in_place: bool = False,
                      codes_limit: int | None = None, **_: Any) -> tuple[Tensor, ...]:
        """aihwkit's output stage with a bound test per row: ``(clipped outputs, row passed, clip slope)``.

        Output asymmetry, output noise (``out_noise``, or ``out_noise_values`` per output),
        ADC quantisation, then the test (every output of the row within +-``out_bound``) and
        the clip, in aihwkit's order and with its random draws; differentiable as aihwkit's.
        With ``with_slope``, also the clip's derivative as ``torch.clamp`` gives it (1 inside the
        bound, 0 outside; at the bound as this torch version does), else None. With ``in_place``
        (no autograd; ``out_values`` is the caller's scratch tensor), the same operations run in
        place: the same values, without a fresh (M, F_out) tensor per operation.
        With ``codes_limit`` L (in place, deterministic ADC only), also the ADC codes: the quantised
        values in units of the ADC step before the clip, clamped at +-L, as int16. Choose L with
        ``L * step > out_bound``: then ``codes * step``, clipped, is the output bit for bit, and
        the bound test on it gives the same slope (:func:`adc_codes_limit`).
        Shape: out_values (M, F_out); returns (M, F_out), (M,) bool and (M, F_out) bool
        [, (M, F_out) int16].
        """
        bound = io_pars.out_bound if io_pars.out_bound > 0 else float("inf")
        in_place = in_place and not (torch.is_grad_enabled() and out_values.requires_grad)
        if io_pars.out_asymmetry != 0.0:
            out_values = torch.where(out_values < 0, out_values * (1.0 - io_pars.out_asymmetry), out_values)
        if out_noise_values is not None:
            noise = torch.randn_like(out_values).mul_(out_noise_values.view(1, -1))
            out_values = out_values.add_(noise) if in_place else out_values + noise
        elif io_pars.out_noise > 0.0:
            noise = torch.randn_like(out_values).mul_(io_pars.out_noise)
            out_values = out_values.add_(noise) if in_place else out_values + noise
        noise = codes = None
        if io_pars.out_res > 0:
            if in_place and not io_pars.out_sto_round:  # UniformQuantize.forward's operations, in place
                res = adc_step(io_pars)
                out_values = out_values.div_(res).round_()
                if codes_limit is not None:  # clamping at +-L changes no output or slope: L * res is past the bound
                    codes = out_values.clamp_(-codes_limit, codes_limit).to(torch.int16)
                out_values = out_values.mul_(res)
            else:
                out_values = _quantize.apply(out_values, io_pars.out_res, io_pars.out_bound, io_pars.out_sto_round)
        inside = (out_values <= bound) & (out_values >= -bound)
        slope = clip_slope(out_values, bound, inside) if with_slope else None
        clipped = out_values.clamp_(min=-bound, max=bound) if in_place else torch.clamp(out_values, min=-bound, max=bound)
        if codes_limit is None:
            return clipped, inside.all(1), slope
        if codes is None:
            raise ValueError("ADC codes need the in-place output stage and a deterministic ADC (out_res > 0)")
        return clipped, inside.all(1), slope, codes

    @classmethod
    def _spike_rounds(cls, product: Tensor, io_pars: Any, fwd_pars: dict[str, Any],
                      codes_limit: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """Per-row rounds on ``q_f * product``: ``(y, slope, q, dq, f, codes)`` of each row's last round.

        ``slope`` is the output stage's straight-through derivative (0 where clipped, ``1 - a``
        where output asymmetry ``a`` scaled a negative output); ``codes`` the ADC codes of
        :meth:`_output_stage` with ``codes_limit`` (None without). Shape: product (M, F_out);
        returns (M, F_out), (M, F_out), (M, 1), (M, 1), (M, 1), (M, F_out) int16 or None.
        """
        asymmetry = io_pars.out_asymmetry
        iterative = io_pars.bound_management == _BM.ITERATIVE
        rows = product.shape[0]
        q_rows, dq_rows, reduction_rows = (product.new_empty(rows, 1) for _ in range(3))
        y = slope = codes = None
        active: Tensor | None = None  # rows still converting (None: all of them)
        reduction = 1.0
        while True:
            q, dq = cls._input_factor(1.0 / reduction, io_pars, product)
            values = (product if active is None else product[active]) * q  # scratch, overwritten in place
            asymmetry_slope = None
            if asymmetry != 0.0:
                asymmetry_slope = torch.full_like(values, 1.0 - asymmetry).masked_fill_(values >= 0, 1.0)
            out, passed, out_slope, *round_codes = cls._output_stage(
                values, io_pars, with_slope=True, in_place=True, codes_limit=codes_limit, **fwd_pars)
            if asymmetry_slope is not None:
                out_slope = out_slope * asymmetry_slope
            if active is None:
                y, slope = out, out_slope
                codes = round_codes[0] if round_codes else None
                q_rows.fill_(q)
                dq_rows.fill_(dq)
                reduction_rows.fill_(reduction)
            else:
                y[active], slope[active] = out, out_slope
                if codes is not None:
                    codes[active] = round_codes[0]
                q_rows[active], dq_rows[active], reduction_rows[active] = q, dq, reduction
            if not iterative or _limit_reached(reduction, io_pars) or bool(passed.all()):
                return y, slope, q_rows, dq_rows, reduction_rows, codes
            failing = (~passed).nonzero().squeeze(1)
            active = failing if active is None else active[failing]
            reduction *= 2.0

    @classmethod
    def _per_vector_rounds(cls, weight: Tensor, input_: Tensor, io_pars: Any, **fwd_pars: Any) -> Tensor:
        """Per-vector iterative bound management through aihwkit's input stage. Shape: input_ (M, F_in) -> (M, F_out)."""
        nm_scale = cls._compute_noise_management(input_=input_, nm_type=io_pars.noise_management, io_pars=io_pars)
        rows = input_.shape[0]
        if io_pars.inp_noise <= 0.0 and isinstance(nm_scale, Tensor) and (nm_scale == 0.0).all():
            return torch.zeros(rows, weight.shape[0], dtype=input_.dtype, device=input_.device)
        if isinstance(nm_scale, Tensor):
            nm_scale[nm_scale <= 0.0] = 1.0  # as aihwkit: a silent row keeps scale 1
        n_management = io_pars.noise_management != _NM.NONE
        outputs: list[Tensor] = []
        out_rows: list[Tensor] = []
        active: Tensor | None = None
        reduction = 1.0
        while True:
            sub = input_ if active is None else input_[active]
            scale: Any = 1.0
            if n_management:
                row_nm = nm_scale[active] if isinstance(nm_scale, Tensor) and active is not None else nm_scale
                scale = scale / row_nm
            scale = scale / reduction
            scaling = not (isinstance(scale, Number) and scale == 1.0)
            prepared = cls._prepare_input(input_=sub, scale=scale, scaling=scaling,
                                          with_asymmetry=io_pars.inp_asymmetry != 0.0, io_pars=io_pars)
            out, passed, _ = cls._output_stage(cls._matmul(weight, prepared), io_pars, **fwd_pars)
            if scaling or io_pars.out_scale != 1.0:
                out = out * (io_pars.out_scale / scale)
            last = _limit_reached(reduction, io_pars) or bool(passed.all())
            if last and active is None:
                return out  # every row done in the first round: no reassembly
            indices = torch.arange(rows, device=input_.device) if active is None else active
            if last:
                outputs.append(out)
                out_rows.append(indices)
                break
            outputs.append(out[passed])
            out_rows.append(indices[passed])
            active = indices[~passed]
            reduction *= 2.0
        order = torch.empty(rows, dtype=torch.long, device=input_.device)
        order[torch.cat(out_rows)] = torch.arange(rows, device=input_.device)
        return torch.cat(outputs)[order]

    @classmethod
    def matmul(cls, weight: Tensor, input_: Tensor, io_pars: Any, trans: bool = False, is_test: bool = False,
               **fwd_pars: Any) -> Tensor:
        if trans or weight.dim() != 2 or input_.dim() == 0 or input_.numel() == 0:
            return super().matmul(weight, input_, io_pars, trans=trans, is_test=is_test, **fwd_pars)
        x = input_.reshape(-1, input_.shape[-1])  # (M, F_in): one row per input vector
        if spike_shortcut_applies(io_pars) and _is_spikes(x):
            out = cls._spike_matmul(weight, x, io_pars, **fwd_pars)
        elif per_vector_bound_management_applies(io_pars):
            out = cls._per_vector_rounds(weight, x, io_pars, **fwd_pars)
        else:
            return super().matmul(weight, input_, io_pars, trans=trans, is_test=is_test, **fwd_pars)
        return out.reshape(*input_.shape[:-1], weight.shape[0])

    @classmethod
    def _spike_matmul(cls, weight: Tensor, x: Tensor, io_pars: Any, **fwd_pars: Any) -> Tensor:
        """The spike path (module docstring). Shape: x (M, F_in) of 0/1 -> (M, F_out)."""
        if io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX) and not x.any():
            # aihwkit's own shortcut (every row's noise-management scale is 0): no output, no noise drawn
            return torch.zeros(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
        # includes aihwkit's final rescaling by out_scale / input scale, per row (row_scale is 1 in value,
        # not in gradient)
        return _SpikeRows.apply(x, weight, cls._spike_row_scale(x, io_pars), cls, io_pars, fwd_pars)

    @classmethod
    def _spike_row_scale(cls, x: Tensor, io_pars: Any) -> Tensor:
        """The noise-management scale of each 0/1 row: 1 in value, aihwkit's in gradient. Shape: (M, F_in) -> (M, 1)."""
        # Noise management: 1 for every 0/1 row (a silent row's 0 is set to 1, as aihwkit does), but
        # aihwkit differentiates through it (the output noise scales with the row's input range), so
        # the same tensor is built here and enters the graph exactly where it does there. For x >= 0
        # abs-max is max (|x| = x; the same maxima at the same indices, and |x|'s derivative is 1
        # there), so aihwkit's MAX rule gives the same values and gradients without an |x| copy.
        if io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX) and x.requires_grad:
            row_scale = cls._compute_noise_management(input_=x, nm_type=_NM.MAX, io_pars=io_pars)
            row_scale[row_scale <= 0.0] = 1.0
            return row_scale
        return x.new_ones(x.shape[0], 1)


class SpikeTorchSimulatorTile(_torch_tile.TorchSimulatorTile):
    """aihwkit's torch simulator tile running :class:`SpikeAnalogMVM` (set as ``rpu_config.simulator_tile_class``)."""

    def __init__(self, x_size: int, d_size: int, rpu_config: Any, bias: bool = False) -> None:
        super().__init__(x_size, d_size, rpu_config, bias=bias, analog_mvm=SpikeAnalogMVM)
