r"""The spike tile's periphery in one compiled pass per call: DAC, output noise, ADC, bound management, scalings.

:class:`~analog_snu.tiles.spike_tile.SpikeTorchInferenceTile` simulates, for a block of 0/1
input vectors, what aihwkit's torch tile simulates (see :mod:`analog_snu.tiles.spike_mvm` for the
per-vector bound management and the spike shortcut). Done as torch operations that is a dozen
passes over the (M, F_out) output block per bound-management round plus the digital scalings,
and as many again in the backward. Here (on CPU, float32/float64) it is:

- forward: the HWA weight noise drawn in one loop (:func:`~analog_snu.functional.periphery_loops.add_normal`),
  the crossbar product ``x W^T`` (one GEMM, or gather-sums over the input's 1s, below), then
  :func:`~analog_snu.functional.periphery_loops.spike_rounds`: each vector's conversions,
  output noise drawn in the loop, ADC codes, the bound test and the final rescaling and column
  scalings (mapping scale, drift compensation in eval mode, learned output scale), one pass;
- backward: :func:`~analog_snu.functional.periphery_loops.spike_rows_backward` (the gradient at
  the crossbar output from the int16 ADC codes, the learned output scale's gradient and the
  final rescaling's, one pass), one GEMM for the input side, one pass for the input and the
  noise-management scale gradients (:func:`~analog_snu.functional.periphery_loops.input_gradients`;
  it uses :math:`\sum_j G_j (W x)_j = \sum_i x_i (G W)_i`, so the crossbar product is not
  computed again; the scale is each row's maximum, so its gradient is added to the input's at the
  row's first 1, found by the 0/1 check, instead of through autograd's max) and one GEMM for the
  weight gradient (where the input needs no gradient, its operand, the gradient at the crossbar
  output, is written by the loop in the (F_out, M) layout oneDNN takes without a copy).

**Sparse spikes.** Where the input is sparse enough for the digital layers' gather-sums
(:func:`~analog_snu.functional.linear.spike_operand`: the same rules, the density limit, the
minimum work, CPU float32/float64, off under ``ANALOG_SNU_DENSE_SPIKES=1`` or ``ANALOG_SNU_TORCH_GEMM=1``;
each tile of a split layer decides for its column share), the crossbar product and the weight gradient ``(q G)^T x`` are
sums over the input's 1s (:func:`~analog_snu.functional.spike_linear.spike_product`,
:func:`~analog_snu.functional.spike_linear.spike_weight_gradient`; the index lists are made once in
the tile's path choice, where they also show the input 0/1 and give each row's first 1, and kept
for the backward, which then writes G row-major); the input gradient stays a
GEMM. The products differ from the GEMMs' by float rounding only (none where the sums are exact; an
ADC code can move where a product lies within that rounding of a code boundary), and the random
draws are the same (tests/tiles/test_tile_spike_products.py).

Saved for the backward: the input (unless only the gather-sums' weight gradient is wanted, which
reads the index lists instead), the (noisy) weight, the int16 codes and (M,) per-vector
numbers, as in the torch-operation path. The normal draws are made in the loops
(:mod:`analog_snu.functional.periphery_loops`), keyed per call by one draw of torch's default
generator, so ``torch.manual_seed`` makes runs repeatable; they are not torch's draws, so outputs
equal aihwkit's in distribution, and bit for bit when the simulated noise is off
(tests/tiles/test_fused_periphery.py).

**Soft (non-spike) inputs.** An sSNU layer's outputs lie in (0, 1), and a readout's input is a
time average: for such inputs nothing before the crossbar is a scalar, so the spike loops do not
apply, and aihwkit's input stage, product and output stage ran as torch operations
(:meth:`~analog_snu.tiles.spike_mvm.SpikeAnalogMVM._per_vector_rounds`: about 25 passes over the
(M, F_in) and (M, F_out) blocks per round, autograd through each; the sSNU HWA step of
``benchmarks/bench_snu.py`` cost 1.65x the SNU's). :func:`fused_general_forward` runs, where the
settings are the preset's kind (:func:`general_path_applies`: deterministic DAC and ADC, no input
noise or asymmetry, abs-max noise management, iterative or no bound management):

- forward: one loop for the input stage of every vector
  (:func:`~analog_snu.functional.periphery_loops.general_inputs`: the row's abs-max, then
  ``DAC(x (1 / nm) / f)``), the crossbar GEMM on oneDNN, one loop for the output stage
  (:func:`~analog_snu.functional.periphery_loops.general_output_round`: the spike loop's conversion
  and row write, shared); the vectors that saturated run again at half the input scale (their input
  stage re-quantised, their own GEMM, their output stage), the others already hold their final
  output;
- backward: the spike path's output-side loop (gradient at the crossbar output from the int16
  codes, the learned scale's and the final rescaling's), one GEMM for the input side, one loop for
  the input gradient (the DAC's clip mask, recomputed from the input, times ``s``, plus the
  noise-management scale's gradient at the row's first maximum of |x|:
  :func:`~analog_snu.functional.periphery_loops.general_input_gradients`) and one GEMM for the
  weight gradient from the saved DAC outputs.

With the noise off its outputs equal the torch path's bit for bit and its gradients to float
rounding (the torch path sums the weight gradient per round); with noise on they have its
distribution (tests/tiles/test_fused_periphery.py). Measured (one thread, busy machine,
``bench_snu.py --paths digital preset_hwa preset_hwa_ssnu preset_hwa_ssnu_torch_general``, see
benchmarks/RESULTS.md): the sSNU HWA step 3.31x -> 2.20x the digital one (1.52x faster), 1.17x the
SNU's preset step (1.65x before); per 1280 x 256 -> 256 call,
forward 1.6 ms (input loop 0.23, GEMM 0.64, output loop with noise 0.57-0.62), forward and backward
4.5 ms, of which the three GEMMs 2.2 ms.

Set the environment variable ``ANALOG_SNU_TORCH_PERIPHERY=1`` for the torch-operation paths
(aihwkit's own operations and random draws, for spike and soft inputs), e.g. to compare the two.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from analog_snu.functional.linear import product_t
from analog_snu.functional.numpy_args import numpy_scalar, numpy_view
from analog_snu.functional.spike_linear import SpikeRows, spike_product, spike_weight_gradient
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.spike_mvm import _BM, _CLAMP_GRAD_AT_BOUND, SpikeAnalogMVM, _limit_reached, adc_step

__all__ = ["TORCH_PERIPHERY_ENV", "fused_general_forward", "fused_periphery_applies", "fused_spike_forward",
           "general_path_applies", "noisy_weight", "round_tables", "spike_input_state"]

TORCH_PERIPHERY_ENV = "ANALOG_SNU_TORCH_PERIPHERY"
"""Set this environment variable to ``1`` to simulate the spike tile's periphery, for spike and soft
inputs, with aihwkit's torch operations and random draws instead of the compiled loops (to compare, or
on a machine without numba)."""

_enums = aihwkit_module("simulator.parameters.enums")
_torch_tile = aihwkit_module("simulator.tiles.torch_tile")
_MOD = _enums.WeightModifierType


def _loops():
    """The compiled loops, imported on first use (numba's import and cache load take a while)."""
    from analog_snu.functional import periphery_loops

    return periphery_loops


def fused_periphery_applies(tensor: Tensor) -> bool:
    """The compiled loops serve CPU float32/float64 tensors unless :data:`TORCH_PERIPHERY_ENV` is ``1``."""
    if os.environ.get(TORCH_PERIPHERY_ENV) == "1":
        return False
    return tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)


def spike_input_state(x: Tensor, first_ones: Tensor | None = None) -> tuple[bool, bool]:
    """``(every entry is 0 or 1, some entry is 1)`` for a CPU input, in one compiled pass. Shape: x (M, F_in).

    ``first_ones`` (M,) int64, if given, gets the column of each row's first 1 (-1 for a silent row):
    where torch's ``max`` over the row takes its value, so where the noise-management scale's
    gradient goes (:func:`fused_spike_forward`).
    """
    loops = _loops()
    x = x.detach()
    rows, width = x.shape
    if x.stride(1) != 1 or x.stride(0) < 0:
        x = x.contiguous()
    # the rows in place as one flat run of memory (a tile's share of the input is a column slice)
    flat = torch.as_strided(x, ((rows - 1) * x.stride(0) + width,), (1,))
    found = first_ones.numpy() if first_ones is not None else np.empty(0, dtype=np.int64)
    state = loops.binary_state(flat.numpy(), rows, width, x.stride(0), found)
    return state != loops.NOT_BINARY, state == loops.BINARY


def _streams() -> tuple[np.uint64, np.ndarray]:
    """Keys of the compiled loops' normal draws, from one draw of torch's default generator."""
    return _loops().new_streams(int(torch.randint(0, 2**62, (1,))))


def _no_streams() -> tuple[np.uint64, np.ndarray]:
    """Placeholder keys where the loops draw nothing: torch's generator is left alone, as aihwkit's path leaves it."""
    return np.uint64(0), np.zeros(2, dtype=np.uint64)


_TABLES: dict[tuple, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
_TABLE_ARRAYS: dict[tuple, tuple[np.ndarray, ...]] = {}  # numpy views of _TABLES' tensors, for the loops


def round_tables(io_pars: Any, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(q, dq/dx, f, out_scale * f)`` of every bound-management round the settings allow, shape (K,) each.

    Round k converts at input scale 1 / f, f = 2^k; the last entry is the round at which aihwkit's
    stop rule ends the rounds (one entry without iterative bound management). ``q`` is aihwkit's
    input stage applied to a single 1 (:meth:`SpikeAnalogMVM._input_factor`). Cached per settings.
    """
    return _TABLES[_cached_round_key(io_pars, dtype)]


def _round_arrays(io_pars: Any, dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    """:func:`round_tables` as numpy views of the same cached tensors (the loops' arguments, made once)."""
    return _TABLE_ARRAYS[_cached_round_key(io_pars, dtype)]


def _cached_round_key(io_pars: Any, dtype: torch.dtype) -> tuple:
    """The cache key of the settings' round tables, computing them on first use."""
    key = (io_pars.inp_res, io_pars.inp_bound, io_pars.inp_noise, io_pars.inp_asymmetry, io_pars.inp_sto_round,
           io_pars.bound_management, io_pars.max_bm_factor, io_pars.max_bm_res, io_pars.out_scale, dtype)
    if key not in _TABLES:
        reductions = [1.0]
        while io_pars.bound_management == _BM.ITERATIVE and not _limit_reached(reductions[-1], io_pars):
            reductions.append(reductions[-1] * 2.0)
        like = torch.empty(0, dtype=dtype)
        q, dq = zip(*(SpikeAnalogMVM._input_factor(1.0 / f, io_pars, like) for f in reductions))
        reduction = torch.tensor(reductions, dtype=dtype)
        out_factor = io_pars.out_scale * reduction  # as aihwkit's final rescaling computes it, in the tensor's type
        _TABLES[key] = torch.tensor(q, dtype=dtype), torch.tensor(dq, dtype=dtype), reduction, out_factor
        _TABLE_ARRAYS[key] = tuple(table.numpy() for table in _TABLES[key])
    return key


def noisy_weight(weight: Tensor, modifier: Any) -> Tensor:
    """The training forward's weight (aihwkit's ``modify_weight``), additive normal noise drawn in one compiled loop.

    Additive normal noise (``ADD_NORMAL``, one draw per weight, not per batch sample) is
    ``W + std_dev * w_max * xi`` with ``w_max = max|W|`` (``rel_to_actual_wmax``) or
    ``assumed_wmax``, as aihwkit computes it; the gradient passes to ``weight`` unchanged. Any
    other modifier is aihwkit's own. Shape: weight (F_out, F_in).
    """
    if modifier.type in (_MOD.NONE, _MOD.COPY):
        return weight
    if modifier.type != _MOD.ADD_NORMAL or modifier.per_batch_sample or not fused_periphery_applies(weight):
        return _torch_tile.TorchSimulatorTile.modify_weight(weight, modifier, 1)
    with torch.no_grad():
        # aihwkit's std_dev * w_max: in the tensor's type for the measured max|W|, in double for the assumed one
        sigma = modifier.std_dev * (weight.abs().max() if modifier.rel_to_actual_wmax else modifier.assumed_wmax)
        noisy = torch.empty_like(weight)
        _loops().add_normal(numpy_view(weight), numpy_scalar(float(sigma), weight.dtype), *_streams(), noisy.numpy())
    return _AddNoise.apply(weight, noisy)


class _AddNoise(torch.autograd.Function):
    """``noisy`` in value, the identity for the gradient of ``weight`` (aihwkit's ``weight.clone() + noise``)."""

    @staticmethod
    def forward(ctx, weight, noisy):  # type: ignore[override]
        return noisy

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def fused_spike_forward(x: Tensor, weight: Tensor, row_scale: Tensor, factors: list[Tensor], alpha: Tensor | None,
                        io_pars: Any, out_noise_values: Tensor | None, codes_limit: int,
                        scale_grad_at: Tensor | None = None, spikes: SpikeRows | None = None) -> Tensor:
    """The spike tile's output for 0/1 rows ``x`` through the compiled periphery (module docstring).

    ``weight``: the crossbar weight as this forward sees it (with HWA noise, :func:`noisy_weight`);
    ``row_scale``: the noise-management scale (1 in value; aihwkit's gradient, if it has one);
    ``factors``: column factors without gradient, applied in order after the final rescaling (each
    (1,) or (F_out,)); ``alpha``: the learned output scale, applied last (None: none).
    ``scale_grad_at`` (M,) int64: instead of a ``row_scale`` built by autograd as the maximum of each
    row (aihwkit's noise management, whose gradient goes to the row's first maximum), ones, and the
    column of each row's first 1 (-1: a silent row, whose scale aihwkit sets to 1 without gradient);
    the backward adds the scale's gradient to the input's there itself: the same values, without
    the (M, F_in) tensors of autograd's max, masked assignment and sum (:func:`spike_input_state`
    finds the columns).
    ``spikes``: the index lists of ``x`` where the crossbar product and the weight gradient are to be
    gather-sums over its 1s (from :func:`~analog_snu.functional.linear.spike_operand` over ``x`` and a
    weight of ``weight``'s shape and type: the caller decides, so the input is scanned once); None: GEMMs.
    Shape: x (M, F_in), weight (F_out, F_in), row_scale (M, 1); returns (M, F_out).
    """
    column_factors = _column_factors(factors, alpha, weight.shape[0], x)
    return _FusedSpikeRows.apply(x, weight, row_scale, alpha, column_factors, io_pars, out_noise_values, codes_limit,
                                 scale_grad_at, spikes)


def _column_factors(factors: list[Tensor], alpha: Tensor | None, f_out: int, like: Tensor) -> Tensor:
    """The column factors, then the learned output scale, as one (C, F_out) array in ``like``'s dtype
    (no gradient: the backward forms the learned scale's itself)."""
    columns = [factor.detach().to(like.dtype).reshape(-1).expand(f_out) for factor in factors]
    if alpha is not None:
        columns.append(alpha.detach().to(like.dtype).reshape(-1).expand(f_out))
    return torch.stack(columns) if columns else like.new_empty(0, f_out)


def _output_noise(io_pars: Any, out_noise_values: Tensor | None, f_out: int, like: Tensor) -> tuple[Tensor, bool]:
    """The output noise's standard deviation per column (F_out,) and whether any is drawn: the tile's
    per-column ``out_noise_values`` where it has them, else ``io_pars.out_noise``."""
    if out_noise_values is not None:
        return out_noise_values.detach().to(like.dtype).expand(f_out).contiguous(), True
    return like.new_full((f_out,), io_pars.out_noise), io_pars.out_noise > 0.0


def _alpha_gradient(grad_alpha: np.ndarray, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """The learned output scale's gradient in its own shape, from the loops' per-column sums (F_out,)."""
    return torch.from_numpy(grad_alpha).sum_to_size(shape.numel()).reshape(shape).to(dtype)


class _FusedSpikeRows(torch.autograd.Function):
    """Forward and backward of :func:`fused_spike_forward` (module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, row_scale, alpha, column_factors, io_pars, out_noise_values, codes_limit,
                scale_grad_at, spikes):  # type: ignore[override]
        loops = _loops()
        dtype = x.dtype
        # dense rows serve the product here and the weight gradient's and input loop's in the backward:
        # oneDNN would copy a column slice (a layer split over tiles) for each, or run slowly on its strides
        # (the spike tile hands its rows contiguous already: its one copy also served the 0/1 scan)
        x = x.contiguous()
        q, dq, reduction, out_factor = _round_arrays(io_pars, dtype)
        # the crossbar product at input scale 1, shared by all rounds: (M, F_out), row-major; as gather-sums
        # over the 1s where the caller found the input sparse enough (the lists kept for the weight gradient),
        # else a GEMM
        product = spike_product(spikes, weight) if spikes is not None else product_t(x, weight)
        rows, f_out = product.shape
        sigma, noisy = _output_noise(io_pars, out_noise_values, f_out, product)
        codes = torch.empty(rows, f_out, dtype=torch.int16)
        rounds = torch.empty(rows, dtype=torch.int16)
        scale = product.new_empty(rows)
        out = product  # written over row by row: each row of the product is read before its output is written
        step, bound = numpy_scalar(adc_step(io_pars), dtype), numpy_scalar(io_pars.out_bound, dtype)
        loops.spike_rounds(product.numpy(), q, out_factor, numpy_view(sigma), noisy, step, bound, codes_limit,
                           numpy_view(row_scale.reshape(-1)), numpy_view(column_factors), *(_streams() if noisy else _no_streams()),
                           codes.numpy(), rounds.numpy(), scale.numpy(), out.numpy())
        needs = ctx.needs_input_grad
        ctx.io_pars = io_pars
        ctx.spikes = spikes if needs[1] else None  # the weight gradient's gather-sums reuse the lists
        ctx.alpha_shape = None if alpha is None else alpha.shape
        scale_grad_at = scale_grad_at if scale_grad_at is not None and needs[0] else None
        keep_x = needs[0] or needs[2] or (needs[1] and spikes is None)  # where the backward reads the input
        ctx.save_for_backward(x if keep_x else None, weight, row_scale if needs[2] or scale_grad_at is not None else None,
                              column_factors, codes, rounds, scale, scale_grad_at)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, weight, row_scale, column_factors, codes, rounds, scale, scale_grad_at = ctx.saved_tensors
        needs = ctx.needs_input_grad
        io_pars, loops, dtype = ctx.io_pars, _loops(), grad_out.dtype
        q, dq, reduction, out_factor = _round_arrays(io_pars, dtype)  # (K,) each, picked by each vector's round
        rounds = rounds.numpy()
        rows, f_out = codes.shape
        want_scale = needs[2] or scale_grad_at is not None  # the noise-management scale's gradient
        want_input = needs[0] or needs[2]
        # G at the crossbar output: (M, F_out) for the input gradient's product and the gather-sums; where only
        # oneDNN's weight gradient needs it, written as (F_out, M), the operand layout it would otherwise copy it into
        spikes = ctx.spikes
        transposed = not want_input and spikes is None
        grad = torch.empty((f_out, rows) if transposed else (rows, f_out), dtype=dtype)
        grad_alpha = np.zeros(f_out if needs[3] else 0)
        grad_final = grad.new_empty(rows if want_scale else 0)
        step, bound = numpy_scalar(adc_step(io_pars), dtype), numpy_scalar(io_pars.out_bound, dtype)
        loops.spike_rows_backward(numpy_view(grad_out), codes.numpy(), step, bound, not _CLAMP_GRAD_AT_BOUND, scale.numpy(),
                                  numpy_view(column_factors), bool(needs[3]), rounds, out_factor, q, not want_input,
                                  grad.numpy(), transposed, grad_alpha, grad_final.numpy())
        grad_x = grad_scale = None
        if want_input:
            grad_x = product_t(grad, weight.t())  # (M, F_in), made the input gradient in place below
            grad_scale = grad.new_empty(rows if want_scale else 0)
            ones = row_scale.reshape(-1) if want_scale else grad_scale
            to_input = scale_grad_at.numpy() if scale_grad_at is not None else np.empty(0, dtype=np.int64)
            loops.input_gradients(grad.numpy(), grad_x.numpy(), x.numpy(), rounds, q, dq, reduction, numpy_view(ones),
                                  grad_final.numpy(), grad_scale.numpy(), to_input)
            grad_scale = grad_scale.reshape(rows, 1) if needs[2] else None
            grad_x = grad_x if needs[0] else None
        grad_w = None
        if needs[1]:  # (q G)^T x
            grad_w = spike_weight_gradient(spikes, grad) if spikes is not None else \
                product_t(grad if transposed else grad.t(), x.t())
        grad_a = _alpha_gradient(grad_alpha, ctx.alpha_shape, dtype) if needs[3] else None
        return grad_x, grad_w, grad_scale, grad_a, None, None, None, None, None, None


def general_path_applies(io_pars: Any) -> bool:
    """Whether the compiled loops implement the forward IO settings for any (soft) input: deterministic
    DAC and ADC, no input noise or asymmetry, abs-max noise management without threshold, iterative
    or no bound management, one-pass MVM (the preset's settings; output asymmetry is checked by the tile)."""
    return (not io_pars.is_perfect and io_pars.mv_type == _enums.AnalogMVType.ONE_PASS
            and io_pars.inp_res > 0 and io_pars.inp_bound > 0 and not io_pars.inp_sto_round
            and io_pars.inp_noise <= 0.0 and io_pars.inp_asymmetry == 0.0
            and io_pars.noise_management == _enums.NoiseManagementType.ABS_MAX and io_pars.nm_thres <= 0.0
            and io_pars.bound_management in (_BM.NONE, _BM.ITERATIVE))


def fused_general_forward(x: Tensor, weight: Tensor, factors: list[Tensor], alpha: Tensor | None, io_pars: Any,
                          out_noise_values: Tensor | None, codes_limit: int) -> Tensor:
    """The tile's output for any input rows ``x`` through the compiled periphery (module docstring, general inputs).

    ``weight``, ``factors``, ``alpha`` as for :func:`fused_spike_forward`; the settings must pass
    :func:`general_path_applies`. Shape: x (M, F_in), weight (F_out, F_in); returns (M, F_out).
    """
    column_factors = _column_factors(factors, alpha, weight.shape[0], x)
    return _FusedGeneralRows.apply(x, weight, alpha, column_factors, io_pars, out_noise_values, codes_limit)


def _dac_step(io_pars: Any) -> float:
    """The DAC's step in input units, as aihwkit's ``UniformQuantize`` computes it (``inp_res`` > 0)."""
    res = 1 / io_pars.inp_res if io_pars.inp_res > 1.0 else io_pars.inp_res
    return res * (2 * io_pars.inp_bound)


class _FusedGeneralRows(torch.autograd.Function):
    """Forward and backward of :func:`fused_general_forward`.

    Forward: one compiled pass for the input stage of every vector (noise-management scale, DAC),
    one GEMM, one compiled pass for the output stage (noise, ADC, bound test; the vectors that fit
    get their final outputs); then, per further round, the failing vectors only: their input stage
    at half the scale, their own GEMM, their output stage. Saved: the input, the DAC outputs of each
    vector's last round (the weight gradient's operand, as aihwkit's autograd keeps them), the int16
    ADC codes and (M,) per-vector numbers.
    """

    @staticmethod
    def forward(ctx, x, weight, alpha, column_factors, io_pars, out_noise_values, codes_limit):  # type: ignore[override]
        loops = _loops()
        dtype = x.dtype
        x = x.contiguous()
        rows, f_out = x.shape[0], weight.shape[0]
        _, _, reduction, _ = _round_arrays(io_pars, dtype)
        last_round = reduction.shape[0] - 1
        res, in_bound = numpy_scalar(_dac_step(io_pars), dtype), numpy_scalar(io_pars.inp_bound, dtype)
        nm = x.new_empty(rows)
        first_max = torch.empty(rows, dtype=torch.int64)
        z = torch.empty_like(x)  # each vector's DAC output of its last round
        all_rows = torch.arange(rows)
        x_np, nm_np, first_np = x.detach().numpy(), nm.numpy(), first_max.numpy()
        any_signal = loops.general_inputs(x_np, all_rows.numpy(), reduction[0], res, in_bound, True, nm_np, first_np,
                                          z.numpy())
        ctx.all_zero = not any_signal
        ctx.alpha_shape = None if alpha is None else alpha.shape
        if not any_signal:  # aihwkit's shortcut: zeros, no noise drawn, no gradient to the input or weight
            return x.new_zeros(rows, f_out)
        sigma, noisy = _output_noise(io_pars, out_noise_values, f_out, x)
        key, stream = _streams() if noisy else _no_streams()
        codes = torch.empty(rows, f_out, dtype=torch.int16)
        rounds = torch.empty(rows, dtype=torch.int16)
        scale = x.new_empty(rows)
        out = x.new_empty(rows, f_out)
        failed = torch.empty(rows, dtype=torch.int64)
        step, out_bound = numpy_scalar(adc_step(io_pars), dtype), numpy_scalar(io_pars.out_bound, dtype)
        out_scale = numpy_scalar(io_pars.out_scale, dtype)
        fixed = (numpy_view(sigma), noisy, step, out_bound, codes_limit, numpy_view(column_factors), key)  # every round's
        arrays = (stream, codes.numpy(), rounds.numpy(), scale.numpy(), out.numpy(), failed.numpy())
        product = product_t(z, weight)
        active, start = all_rows, np.uint64(0)
        for k in range(last_round + 1):
            if k > 0:  # the vectors that saturated: input stage at half the scale, their own product
                z_part = x.new_empty(active.shape[0], x.shape[1])
                loops.general_inputs(x_np, active.numpy(), reduction[k], res, in_bound, False, nm_np, first_np,
                                     z_part.numpy())
                z.index_copy_(0, active, z_part)
                product = product_t(z_part, weight)
            n_failed, start = loops.general_output_round(product.numpy(), active.numpy(), k, k == last_round,
                                                         reduction[k], out_scale, nm_np, *fixed, start, *arrays)
            if n_failed == 0:
                break
            active = failed[:n_failed].clone()
        ctx.io_pars = io_pars
        ctx.save_for_backward(x, z, weight, column_factors, codes, rounds, scale, nm, first_max)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        needs = ctx.needs_input_grad
        if ctx.all_zero:
            grad_a = grad_out.new_zeros(ctx.alpha_shape) if needs[2] else None
            return None, None, grad_a, None, None, None, None
        x, z, weight, column_factors, codes, rounds, scale, nm, first_max = ctx.saved_tensors
        io_pars, loops, dtype = ctx.io_pars, _loops(), grad_out.dtype
        q, _, reduction, out_factor = _round_arrays(io_pars, dtype)
        rows, f_out = codes.shape
        rounds_np = rounds.numpy()
        grad = torch.empty(rows, f_out, dtype=dtype)  # G at the crossbar output
        grad_alpha = np.zeros(f_out if needs[2] else 0)
        grad_final = grad.new_empty(rows if needs[0] else 0)  # d/d nm through the final rescaling
        step, bound = numpy_scalar(adc_step(io_pars), dtype), numpy_scalar(io_pars.out_bound, dtype)
        loops.spike_rows_backward(numpy_view(grad_out), codes.numpy(), step, bound, not _CLAMP_GRAD_AT_BOUND,
                                  scale.numpy(), numpy_view(column_factors), bool(needs[2]), rounds_np, out_factor, q,
                                  False, grad.numpy(), False, grad_alpha, grad_final.numpy())
        grad_x = None
        if needs[0]:
            grad_x = product_t(grad, weight.t())  # (M, F_in), made the input gradient in place
            res, in_bound = numpy_scalar(_dac_step(io_pars), dtype), numpy_scalar(io_pars.inp_bound, dtype)
            loops.general_input_gradients(grad_x.numpy(), x.numpy(), rounds_np, reduction, nm.numpy(),
                                          first_max.numpy(), res, in_bound, grad_final.numpy())
        grad_w = product_t(grad.t(), z.t()) if needs[1] else None  # G^T z
        grad_a = _alpha_gradient(grad_alpha, ctx.alpha_shape, dtype) if needs[2] else None
        return grad_x, grad_w, grad_a, None, None, None, None
