"""What the spike path keeps for the backward, and that its in-place and fused steps change no value.

The SNU layer hands the tile a (T*N, F_in) block of spikes; at T = 80, N = 64 every (T*N, F_out)
float tensor the tile saves is 5 MiB per layer. The spike path saves none when the input needs
no gradient (the first layer) and one (its output) when it does; the in-place output stage and
the fused final rescaling give aihwkit's values and gradients (compared here with aihwkit's own
functions and tiles).
"""

import dataclasses

import pytest
import torch
from aihwkit.simulator.tiles.analog_mvm import AnalogMVM

from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.spike_mvm import SpikeAnalogMVM

F64 = torch.float64


def preset_io(**change):
    """pcm_joshi2020's HWA forward IO (7-bit DAC, 9-bit ADC, bound 12, abs-max NM, iterative BM), changed."""
    return dataclasses.replace(device_rpu_config(preset("pcm_joshi2020"), "hwa").forward, **change)


def spikes(rows, cols, rate, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((rows, cols), rate, dtype=dtype), generator=gen)


def saved_by_matmul(weight, x, io):
    """(shape, dtype, data_ptr) of every tensor saved for the backward during one spike-path call."""
    saved = []

    def pack(tensor):
        saved.append((tuple(tensor.shape), tensor.dtype, tensor.data_ptr()))
        return tensor

    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = SpikeAnalogMVM.matmul(weight, x, io)
    return out, saved


@pytest.mark.parametrize("input_grad", [False, True])
def test_spike_path_saves_at_most_its_output_of_the_output_sized_floats(input_grad):
    rows, f_in, f_out = 600, 120, 48
    io = preset_io()
    weight = ((torch.rand(f_out, f_in, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.9).requires_grad_()
    x = spikes(rows, f_in, 0.3).requires_grad_(input_grad)
    out, saved = saved_by_matmul(weight, x, io)
    assert float(out.detach().abs().max()) > io.out_bound  # some vectors needed bound-management rounds
    big_floats = [s for s in saved if s[0] == (rows, f_out) and s[1].is_floating_point]
    if input_grad:  # the output itself (for the gradient through the noise-management row scale)
        assert [ptr for *_, ptr in big_floats] == [out.data_ptr()]
    else:
        assert big_floats == []
    # the input is saved as itself, never as a copy; the clip mask as bool
    assert all(ptr == x.data_ptr() for shape, _, ptr in saved if shape == (rows, f_in))
    assert [dtype for shape, dtype, _ in saved if shape == (rows, f_out) and not dtype.is_floating_point] == [torch.bool]
    # and it still trains: gradients of both operands exist and are finite
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0
    if input_grad:
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "change",
    [{}, {"out_asymmetry": 0.2}, {"out_sto_round": True}, {"out_res": -1.0}, {"out_noise": 0.0},
     {"out_bound": 0.0, "out_res": -1.0}],
)
@pytest.mark.parametrize("per_output_noise", [False, True])
def test_in_place_output_stage_equals_aihwkits_operations_bit_for_bit(change, per_output_noise):
    io = preset_io(**change)
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(200, 30, generator=gen) * 10.0  # some outputs past the bound 12
    noise_values = {"out_noise_values": torch.rand(30, generator=gen) * 0.2} if per_output_noise else {}
    results = []
    for in_place in (False, True):
        torch.manual_seed(3)
        out, passed, slope = SpikeAnalogMVM._output_stage(values.clone(), io, with_slope=True, in_place=in_place,
                                                          **noise_values)
        results.append((out, passed, slope, torch.get_rng_state()))
    for expected, got in zip(*results):
        assert torch.equal(got, expected)
    assert not bool(results[0][1].all()) or io.out_bound <= 0  # the bound test did reject some rows


def test_in_place_output_stage_is_not_used_under_autograd():
    io = preset_io()
    values = (torch.randn(20, 8, generator=torch.Generator().manual_seed(4)) * 10).requires_grad_()
    out, _, _ = SpikeAnalogMVM._output_stage(values * 1.0, io, in_place=True)
    out.sum().backward()  # an in-place op on a graph tensor would have raised or broken this gradient
    assert values.grad is not None and torch.isfinite(values.grad).all()


@pytest.mark.parametrize("out_scale", [1.0, 2.0, 0.3])  # y recovered from the output (powers of two) or saved
def test_spike_gradients_with_output_scale_equal_aihwkit_on_each_vector(out_scale):
    """Output noise on, bound-management rounds differ per vector: each row against aihwkit alone."""
    io = preset_io(out_scale=out_scale)
    gen = torch.Generator().manual_seed(5)
    weight = (torch.rand(16, 90, generator=gen, dtype=F64) * 2 - 1) * 0.9
    weight[0] = 0.9  # grows with the spike count: rows with many spikes need rounds
    x = torch.cat([spikes(4, 90, 0.05, seed=1, dtype=F64), spikes(4, 90, 0.5, seed=2, dtype=F64)])
    grad_out = torch.linspace(-1, 1, 8 * 16, dtype=F64).reshape(8, 16)
    for row in range(x.shape[0]):
        results = []
        for cls in (AnalogMVM, SpikeAnalogMVM):
            w, inp = weight.clone().requires_grad_(), x[row : row + 1].clone().requires_grad_()
            torch.manual_seed(row)
            out = cls.matmul(w, inp, io)
            (out * grad_out[row]).sum().backward()
            results.append((out.detach(), inp.grad, w.grad))
        for expected, got in zip(*results):
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert float(x.sum(1).max()) * 0.9 > 2 * io.out_bound  # output 0 of a dense row needed at least two rounds
