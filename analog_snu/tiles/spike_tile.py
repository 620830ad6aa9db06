r"""aihwkit's torch inference tile whose spike-input forward keeps ADC codes, not float outputs, for the backward.

For a (T*N, F_in) block of 0/1 inputs, aihwkit's ``TorchInferenceTile`` runs the analog MVM
(here :class:`~analog_snu.tiles.spike_mvm.SpikeAnalogMVM`: one crossbar product, per-vector bound
management), multiplies by the mapping scale and then by the learned output scales
:math:`\alpha`. Autograd keeps, per tile call, the (T*N, F_out) float product before
:math:`\alpha` (for :math:`\alpha`'s gradient), the MVM's clip mask, and, when the input needs a
gradient, the MVM output too: at T = 80, N = 64 and 256 outputs, 5 + 1.25 (+ 5) MiB per tile.

All of these follow from the ADC codes: the ADC output is a code :math:`c` times the ADC step,
clipped at the output bound, so with the per-row factors (bound-management reduction, input
factor) the MVM output, the clip mask and the product before :math:`\alpha` are recomputed in
the backward, bit for bit, from one int16 tensor (2.5 MiB). :class:`_ScaledSpikeRows` is that
forward and backward as one autograd node; its values and gradients are those of aihwkit's
path (the same operations in the same order, tested bit for bit), and so are its random draws
(the weight noise of hardware-aware training, then the output noise of each round).

On CPU (float32/float64) the spike forward and backward run as compiled loops
(:mod:`analog_snu.tiles.fused_periphery`: the same simulation, output noise and HWA weight noise
drawn by the loops, so equal to aihwkit's in distribution and bit for bit with the noise off),
also without a gradient and in eval mode (drift compensation applied as aihwkit's
``post_forward`` does). With ``ANALOG_SNU_TORCH_PERIPHERY=1``, or on other devices, it runs
:class:`_ScaledSpikeRows` (aihwkit's torch operations and random draws) where a gradient is
taken and, in eval mode, no drift compensation is to be applied.

Non-binary (soft) inputs, e.g. an sSNU layer's, take the compiled general path on CPU
(:func:`~analog_snu.tiles.fused_periphery.fused_general_forward`) where the settings are the
preset's kind (:func:`~analog_snu.tiles.fused_periphery.general_path_applies`), also without a
gradient and in eval mode. Any other input or configuration (stochastic or no DAC/ADC rounding,
input noise, other noise management, output asymmetry, a learned input range), and every non-spike
input with ``ANALOG_SNU_TORCH_PERIPHERY=1``, takes aihwkit's path unchanged (over
:class:`~analog_snu.tiles.spike_mvm.SpikeAnalogMVM`'s per-vector rounds).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from analog_snu.functional.linear import spike_operand
from analog_snu.functional.spike_linear import SpikeRows
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.fused_periphery import (
    fused_general_forward,
    fused_periphery_applies,
    fused_spike_forward,
    general_path_applies,
    noisy_weight,
    spike_input_state,
)
from analog_snu.tiles.spike_mvm import (
    _CLAMP_GRAD_AT_BOUND,
    _NM,
    SpikeAnalogMVM,
    _is_spikes,
    adc_codes_limit,
    adc_step,
    clip_slope,
    crossbar_gradients,
    spike_shortcut_applies,
)

__all__ = ["SpikeTorchInferenceTile"]

_inference_torch = aihwkit_module("simulator.tiles.inference_torch")
_torch_tile = aihwkit_module("simulator.tiles.torch_tile")


class _ScaledSpikeRows(torch.autograd.Function):
    """``((y * scale) * mapping) * alpha`` of the spike MVM, saving ADC codes (module docstring).

    ``y``: clipped ADC outputs of each row's last bound-management round; ``scale`` =
    ``row_scale * out_scale * f`` per row (aihwkit's final rescaling); ``mapping`` the tile's
    mapping scale and ``alpha`` its learned output scales (either may be None). The backward
    is :class:`~analog_snu.tiles.spike_mvm._SpikeRows`'s, after the two column scalings' own
    (``alpha``'s gradient: ``grad * (y * scale * mapping)`` summed to ``alpha``'s shape).
    Shape: x (M, F_in) of 0/1, weight (F_out, F_in), row_scale (M, 1), mapping and alpha (1,) or
    (F_out,) (one per tile or per column); returns (M, F_out).
    """

    @staticmethod
    def forward(ctx, x, weight, row_scale, mapping, alpha, io_pars, fwd_pars, codes_limit):  # type: ignore[override]
        product = x @ weight.T  # (M, F_out), shared by all rounds
        y, _, q, dq, reduction, codes = SpikeAnalogMVM._spike_rounds(product, io_pars, fwd_pars, codes_limit)
        del product
        scale = row_scale * (io_pars.out_scale * reduction)  # (M, 1)
        out = _column_scalings(y.mul_(scale), mapping, alpha)  # in y's memory: y is not kept
        ctx.io_pars = io_pars
        if not ctx.needs_input_grad[2]:  # the row scale's gradient is the only one that needs these
            row_scale = reduction = None
        ctx.save_for_backward(x, weight, q, dq, scale, row_scale, reduction, codes, mapping, alpha)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, weight, q, dq, scale, row_scale, reduction, codes, mapping, alpha = ctx.saved_tensors
        io_pars, needs = ctx.io_pars, ctx.needs_input_grad
        y, slope = _outputs_from_codes(codes, io_pars, grad_out.dtype)
        del codes
        grad_alpha = None
        if alpha is not None:
            if needs[4]:  # as autograd's MulBackward for the broadcast factor alpha.view(1, -1)
                # the product before alpha, in y's memory when y is not needed again (no row-scale gradient)
                before_alpha = y * scale if needs[2] else y.mul_(scale)
                if mapping is not None:
                    before_alpha = before_alpha.mul_(mapping.view(1, -1))
                grad_alpha = (grad_out * before_alpha).sum_to_size(alpha.view(1, -1).shape).view(alpha.shape)
                del before_alpha
            grad_out = grad_out * alpha.view(1, -1)
            if mapping is not None:
                grad_out = grad_out.mul_(mapping.view(1, -1))
        elif mapping is not None:
            grad_out = grad_out * mapping.view(1, -1)
        # from here on _SpikeRows.backward, with y and the clip slope from the codes; the (M, F_out)
        # temporaries are freed as soon as they are used (the layer's backward is the step's peak)
        grad_final = None
        if needs[2]:
            grad_final = (grad_out * y).sum(1, keepdim=True) * (io_pars.out_scale * reduction)
        del y
        grad = (grad_out * scale).mul_(slope)  # (M, F_out): gradient at the crossbar output
        del slope, grad_out
        grad_x, grad_w, grad_scale = crossbar_gradients(grad, x, weight, q, dq, needs, row_scale, reduction, grad_final)
        return grad_x, grad_w, grad_scale, None, grad_alpha, None, None, None


def _column_scalings(out: Tensor, mapping: Tensor | None, alpha: Tensor | None) -> Tensor:
    """aihwkit's post-MVM scalings in its order, in place: the mapping scale (``post_forward``), then ``alpha``."""
    if mapping is not None:
        out = out.mul_(mapping.view(1, -1))
    if alpha is not None:
        out = out.mul_(alpha.view(1, -1))
    return out


def _outputs_from_codes(codes: Tensor, io_pars: Any, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(y, clip slope)`` of the output stage from its ADC codes, bit for bit. Shape: (M, F_out) each."""
    bound = io_pars.out_bound
    values = codes.to(dtype).mul_(adc_step(io_pars))  # the quantised values before the clip
    slope = clip_slope(values, bound, (values <= bound) & (values >= -bound))
    return values.clamp_(min=-bound, max=bound), slope


class _Path(NamedTuple):
    """How a tile call runs when it is not aihwkit's own forward (:meth:`SpikeTorchInferenceTile._choose_path`)."""

    general: bool
    """The compiled general path (soft inputs); else a spike path (compiled, or :class:`_ScaledSpikeRows`)."""
    codes_limit: int
    """The int16 ADC code clamp (:func:`~analog_snu.tiles.spike_mvm.adc_codes_limit`)."""
    scale_grad_at: Tensor | None
    """On the compiled spike path, per input row, where the noise-management scale passes its gradient to
    the input (see :func:`~analog_snu.tiles.fused_periphery.fused_spike_forward`); None where it has none.
    Shape: (M,) int64."""
    rows: Tensor
    """The input as (M, F_in) rows (contiguous on the spike shortcut), what the path's forward reads."""
    spikes: SpikeRows | None
    """On the compiled spike path, the input's index lists where the gather-sums form its crossbar
    product (:func:`~analog_snu.functional.linear.spike_operand`), else None (a GEMM)."""


class SpikeTorchInferenceTile(_inference_torch.TorchInferenceTile):
    """aihwkit's ``TorchInferenceTile`` with the spike forward of :class:`_ScaledSpikeRows` (set as ``rpu_config.tile_class``).

    Needs :class:`~analog_snu.tiles.spike_mvm.SpikeTorchSimulatorTile` as the simulator tile.
    """

    def forward(self, x_input: Tensor, tensor_view: tuple | None = None) -> Tensor:
        self.tile.set_config(self.rpu_config)  # as aihwkit's forward: on-the-fly changes apply
        fused = fused_periphery_applies(x_input)
        path = self._choose_path(x_input, fused)
        if path is None:
            return super().forward(x_input, tensor_view)
        general, codes_limit, scale_grad_at, x, spikes = path
        is_test = not self.training
        x_input = self.pre_forward(x_input, x_input.dim() - 1, is_test)  # aihwkit's (identity here: x holds its rows)
        tile = self.tile
        mapping = self.get_mapping_scales()
        if fused:
            # TorchSimulatorTile.forward's weight noise (hardware-aware training) first, as there
            weight = tile.weight if is_test else noisy_weight(tile.weight, tile._modifier)
            factors = [mapping] if mapping is not None else []
            if is_test and self._drift_compensated():
                factors.append(self.alpha)  # aihwkit's post_forward in eval mode: after the mapping scale
            if general:
                out = fused_general_forward(x, weight, factors, self.out_scaling_alpha, tile._f_io,
                                            tile.out_noise_values, codes_limit)
            else:
                row_scale = self._row_scale(x, scale_grad_at)
                out = fused_spike_forward(x, weight, row_scale, factors, self.out_scaling_alpha, tile._f_io,
                                          tile.out_noise_values, codes_limit, scale_grad_at, spikes)
        else:
            weight = tile.weight if is_test else _torch_tile.TorchSimulatorTile.modify_weight(
                tile.weight, tile._modifier, x_input.shape[0])
            out = _ScaledSpikeRows.apply(x, weight, self._row_scale(x, scale_grad_at), mapping, self.out_scaling_alpha,
                                         tile._f_io, {"out_noise_values": tile.out_noise_values}, codes_limit)
        out = out.reshape(*x_input.shape[:-1], out.shape[-1])
        if self.digital_bias:
            tensor_view = tensor_view if tensor_view is not None else self.get_tensor_view(out.dim())
            return out + self.bias.view(*tensor_view)
        return out

    def _row_scale(self, x: Tensor, scale_grad_at: Tensor | None) -> Tensor:
        """The spike path's noise-management scale (1 in value): ones where the compiled backward gives its
        gradient directly (``scale_grad_at``), else built by autograd. Shape: x (M, F_in) -> (M, 1)."""
        if scale_grad_at is not None:
            return x.new_ones(x.shape[0], 1)
        return SpikeAnalogMVM._spike_row_scale(x, self.tile._f_io)

    def _drift_compensated(self) -> bool:
        return getattr(self.rpu_config, "drift_compensation", None) is not None

    def _choose_path(self, x_input: Tensor, fused: bool) -> _Path | None:
        """The path this call takes, decided once (one pass over the input), and what it needs; None: aihwkit's forward.

        On the compiled loops (``fused``): the spike path for a 0/1 input on the spike shortcut, the
        general path (:func:`~analog_snu.tiles.fused_periphery.fused_general_forward`) for any other
        input where :meth:`_general_path_applies`. An all-zero input stays aihwkit's under abs-max or max
        noise management (its shortcut: zeros, and the weight out of the graph, which aihwkit's gradient
        hooks on the weight rely on). On the spike shortcut the input's pass is the gather-sums' index
        lists (:func:`~analog_snu.functional.linear.spike_operand`) where they serve: made, they show the
        input 0/1 and give each row's first 1 (``scale_grad_at``), and the spike path's product takes
        them. Otherwise the compiled 0/1 check (:func:`~analog_snu.tiles.fused_periphery.spike_input_state`)
        decides; it stops at the first entry that is not 0/1, as the lists' scan does, so a soft input
        costs either little, and on the spike path it finds each row's first 1.
        Without the compiled loops: :meth:`_torch_spike_path`."""
        if not fused:
            return self._torch_spike_path(x_input)
        io_pars = self.tile._f_io
        spike_shortcut = spike_shortcut_applies(io_pars)
        general = self._general_path_applies()
        if not (spike_shortcut or general):
            return None
        limit = self._codes_limit(x_input)
        if limit is None:
            return None
        x = x_input.reshape(-1, x_input.shape[-1])
        row_max_nm = io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX)
        # aihwkit's noise management differentiates through each row's maximum when the input needs a gradient
        want_first_ones = spike_shortcut and row_max_nm and x.requires_grad and torch.is_grad_enabled()
        spikes = None
        if spike_shortcut:
            # the compiled paths read the input row-major: one copy of a column slice (a layer split over
            # tiles) here serves the lists' scan and the path's forward and backward
            x = x.contiguous()
            spikes = spike_operand(x, self.tile.weight)  # the weight noise to come keeps its shape and type
        if spikes is not None:
            is_spikes, any_spike = True, spikes.active > 0
            scale_grad_at = _first_ones(spikes) if want_first_ones else None
        else:
            scale_grad_at = torch.empty(x.shape[0], dtype=torch.int64) if want_first_ones else None
            is_spikes, any_spike = spike_input_state(x, scale_grad_at)
        all_zero = is_spikes and not any_spike
        if is_spikes and spike_shortcut and not (all_zero and row_max_nm):
            if scale_grad_at is not None and not _max_passes_gradient(io_pars):
                scale_grad_at.fill_(-1)  # clamped at nm_thres = 1: no gradient reaches the input
            return _Path(False, limit, scale_grad_at, x, spikes)
        if general and not all_zero:
            return _Path(True, limit, None, x, None)
        return None

    def _torch_spike_path(self, x_input: Tensor) -> _Path | None:
        """Without the compiled loops: :class:`_ScaledSpikeRows` for a 0/1 input on the spike shortcut where a
        gradient is taken and no drift compensation is to be applied, else None (aihwkit's forward)."""
        if not torch.is_grad_enabled() or (not self.training and self._drift_compensated()):
            return None
        io_pars = self.tile._f_io
        limit = self._codes_limit(x_input)
        if limit is None or not spike_shortcut_applies(io_pars):
            return None
        x = x_input.reshape(-1, x_input.shape[-1])
        if not _is_spikes(x):
            return None
        if io_pars.noise_management in (_NM.ABS_MAX, _NM.MAX) and not bool(x.any()):
            return None  # aihwkit's all-zero shortcut (no noise drawn) stays aihwkit's
        return _Path(False, limit, None, x, None)

    def _general_path_applies(self) -> bool:
        """Whether the tile's forward settings allow the compiled general path for soft inputs
        (benchmarks/bench_snu.py switches it off for an ablation)."""
        return general_path_applies(self.tile._f_io)

    def _codes_limit(self, x_input: Tensor) -> int | None:
        """The int16 ADC code clamp where the tile's settings allow a path of this class (the simulator
        tile runs :class:`SpikeAnalogMVM`, a deterministic ADC, no output asymmetry, aihwkit's scalings
        only, a 2-D weight, a non-empty input), else None."""
        io_pars = self.tile._f_io
        mapping = self.get_mapping_scales()
        if not isinstance(self.tile._analog_mvm, type) or not issubclass(self.tile._analog_mvm, SpikeAnalogMVM):
            return None
        if self.input_range is not None or hasattr(self.rpu_config.pre_post, "periph_quant") \
                or (mapping is not None and mapping.requires_grad) or self.tile.weight.dim() != 2:
            return None
        if io_pars.out_asymmetry != 0.0 or x_input.dim() == 0 or x_input.numel() == 0:
            return None
        return adc_codes_limit(io_pars)


def _first_ones(spikes: SpikeRows) -> Tensor:
    """Each row's first 1 from its index lists (-1 for a silent row): where :func:`spike_input_state`
    finds it, the first maximum of the row. Shape: (M,) int64."""
    lists, starts, counts = spikes.lists, spikes.starts, spikes.counts  # row-wise, whatever the layout read
    first = np.full(counts.shape[0], -1, dtype=np.int64)
    active = counts > 0
    first[active] = lists[starts[active]]
    return torch.from_numpy(first)


def _max_passes_gradient(io_pars: Any) -> bool:
    """Whether a 0/1 row's noise-management maximum (1) passes its gradient through aihwkit's
    ``clamp(max, max=nm_thres)`` (no clamp when nm_thres <= 0; nm_thres >= 1 on the spike path)."""
    thres = io_pars.nm_thres
    return thres <= 0.0 or thres > 1.0 or _CLAMP_GRAD_AT_BOUND
