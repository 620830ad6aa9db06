"""The spike-input shortcut gives aihwkit's torch-tile results where no vector saturates; per-vector rounds otherwise.

Where some vector saturates, aihwkit's torch tile reruns the whole batch and this module only the
saturating vectors (tests/tiles/test_bound_management.py compares each vector with aihwkit's tile
on that vector alone).
"""

import dataclasses

import pytest
import torch
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
from aihwkit.simulator.tiles.analog_mvm import AnalogMVM
from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile

from analog_snu.functional.linear import linear, onednn_applies
from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.fused_periphery import TORCH_PERIPHERY_ENV
from analog_snu.tiles.spike_mvm import SpikeAnalogMVM, SpikeTorchSimulatorTile, spike_shortcut_applies


def preset_io():
    """The forward IO parameters of pcm_joshi2020's HWA config (7-bit DAC, 9-bit ADC, bound 12, iterative BM)."""
    return device_rpu_config(preset("pcm_joshi2020"), "hwa").forward


def spikes(rows, cols, rate, seed=0):
    return torch.bernoulli(torch.full((rows, cols), rate), generator=torch.Generator().manual_seed(seed))


def count_rounds(monkeypatch):
    """One entry per output-stage call (one per bound-management round): the class name for aihwkit's,
    ("SpikeAnalogMVM", number of vectors) for ours."""
    calls = []
    original = AnalogMVM._finalize_output.__func__
    ours = SpikeAnalogMVM._output_stage.__func__

    def counting(klass, *args, **kwargs):
        calls.append(klass.__name__)
        return original(klass, *args, **kwargs)

    def counting_ours(klass, values, *args, **kwargs):
        calls.append(("SpikeAnalogMVM", values.shape[0]))
        return ours(klass, values, *args, **kwargs)

    monkeypatch.setattr(AnalogMVM, "_finalize_output", classmethod(counting))
    monkeypatch.setattr(SpikeAnalogMVM, "_output_stage", classmethod(counting_ours))
    return calls


def forward_both(weight, x, io, seed=5):
    """The outputs of aihwkit's MVM and ours (no gradient), from the same torch RNG state."""
    torch.manual_seed(seed)
    expected = AnalogMVM.matmul(weight, x, io)
    torch.manual_seed(seed)
    return expected, SpikeAnalogMVM.matmul(weight, x, io)


def run_both(weight, x, io, seed=3):
    """Output and gradients of aihwkit's MVM and ours, from the same torch RNG state."""
    results = []
    for cls in (AnalogMVM, SpikeAnalogMVM):
        w = weight.clone().requires_grad_()
        inp = x.clone().requires_grad_()
        torch.manual_seed(seed)
        out = cls.matmul(w, inp, io)
        grad_out = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        (out * grad_out).sum().backward()
        results.append((out.detach(), inp.grad, w.grad))
    return results


@pytest.mark.parametrize("weight_scale", [0.05, 0.4])  # no vector saturates: one round for the whole batch
def test_same_outputs_and_gradients_as_aihwkit_when_no_vector_saturates(monkeypatch, weight_scale):
    io = preset_io()
    weight = (torch.rand(32, 200, generator=torch.Generator().manual_seed(1)) * 2 - 1) * weight_scale
    x = spikes(300, 200, 0.3)
    calls = count_rounds(monkeypatch)
    (out_a, gx_a, gw_a), (out_b, gx_b, gw_b) = run_both(weight, x, io)
    assert calls == ["AnalogMVM", ("SpikeAnalogMVM", 300)]
    # One ADC step: the only difference allowed is a rounding flip of q (W x) versus W (q x) at a
    # quantisation boundary, and those must be rare.
    reduction = 1
    step = io.out_res * 2 * io.out_bound * reduction
    differ = (out_a - out_b).abs() > 1e-4 * reduction
    assert (out_a - out_b).abs().max() <= step * 1.01
    assert differ.float().mean() < 1e-3
    # Gradients: aihwkit's straight-through estimators; a rare ADC flip at the output bound changes
    # one output's clamp mask, i.e. one row of the input gradient and a tiny part of the weight's.
    row_differs = (gx_a - gx_b).abs().amax(1) > 1e-4 * float(gx_a.abs().max())
    assert row_differs.float().mean() < 0.02
    torch.testing.assert_close(gx_b[~row_differs], gx_a[~row_differs], rtol=1e-4, atol=1e-4 * float(gx_a.abs().max()))
    assert float((gw_b - gw_a).norm() / gw_a.norm()) < 1e-2


def test_bound_management_rounds_match(monkeypatch):
    io = preset_io()
    weight = torch.ones(4, 64) * 0.9
    x = torch.ones(8, 64)  # outputs 57.6: above 12, 24 and 48, so 4 rounds (1, 2, 4, 8)
    calls = count_rounds(monkeypatch)
    torch.manual_seed(0)
    out = SpikeAnalogMVM.matmul(weight, x, io)
    assert calls == [("SpikeAnalogMVM", 8)] * 4  # every vector saturates alike
    # final round: a spike enters the DAC as 1/8, quantised to round(63 / 8) / 63 = 8/63 (7 bits,
    # steps of 1/63), so aihwkit's bound management reads 57.6 as 57.6 * 8 * 8/63 = 58.51
    expected = 57.6 * 8 * 8 / 63
    adc_step, noise = io.out_res * 2 * io.out_bound * 8, io.out_noise * 8
    torch.testing.assert_close(out, torch.full_like(out, expected), atol=adc_step + 5 * noise, rtol=0)


def test_non_spike_input_without_saturation_gives_aihwkit_result_bit_for_bit(monkeypatch):
    # a non-spike input runs aihwkit's own input stage and product; with no vector saturating, one round
    io = preset_io()
    weight = torch.randn(16, 40)
    x = torch.rand(10, 40)
    calls = count_rounds(monkeypatch)
    expected, got = forward_both(weight, x, io)
    assert calls == ["AnalogMVM", ("SpikeAnalogMVM", 10)]
    assert torch.equal(got, expected)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_crossbar_product_runs_on_onednn_with_aihwkits_values_and_gradients():
    # a soft (sSNU) input at a layer's size: the product is oneDNN's, equal to aihwkit's MKL one to float32 rounding
    weight = torch.randn(256, 256, generator=torch.Generator().manual_seed(2)) * 0.05
    x = torch.rand(64, 256, generator=torch.Generator().manual_seed(3))
    assert onednn_applies(x, weight)
    for trans, operand in ((False, x), (True, torch.randn(64, 256, generator=torch.Generator().manual_seed(4)))):
        w_ours, in_ours = weight.clone().requires_grad_(), operand.clone().requires_grad_()
        w_ref, in_ref = weight.clone().requires_grad_(), operand.clone().requires_grad_()
        ours = SpikeAnalogMVM._matmul(w_ours, in_ours, trans)
        reference = in_ref @ w_ref if trans else in_ref @ w_ref.T  # aihwkit's AnalogMVM._matmul
        assert torch.equal(ours.detach(), linear(operand, weight.T if trans else weight))
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
        grad = torch.linspace(-1, 1, ours.numel()).reshape(ours.shape)
        (ours * grad).sum().backward()
        (reference * grad).sum().backward()
        torch.testing.assert_close(in_ours.grad, in_ref.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(w_ours.grad, w_ref.grad, rtol=1e-5, atol=1e-4)


def test_soft_input_at_layer_size_matches_aihwkits_tile_to_adc_rounding(monkeypatch):
    # the whole MVM on a soft input big enough for oneDNN, no vector saturating (one round each): the
    # only differences are ADC codes flipped where the two products round across a step boundary
    io = preset_io()
    weight = torch.randn(256, 256, generator=torch.Generator().manual_seed(2)) * 0.05
    x = torch.rand(64, 256, generator=torch.Generator().manual_seed(3))
    calls = count_rounds(monkeypatch)
    expected, got = forward_both(weight, x, io)
    assert calls == ["AnalogMVM", ("SpikeAnalogMVM", 64)]
    step = io.out_res * 2 * io.out_bound
    assert float((got - expected).abs().max()) <= step * 1.01
    assert float(((got - expected).abs() > 1e-6).float().mean()) < 1e-3


def test_silent_input_gives_zeros_like_aihwkit():
    io = preset_io()
    x = torch.zeros(5, 12)
    weight = torch.randn(3, 12)
    torch.manual_seed(0)
    expected = AnalogMVM.matmul(weight, x, io)
    state = torch.get_rng_state()
    got = SpikeAnalogMVM.matmul(weight, x, io)
    assert torch.equal(got, expected) and not got.any()
    assert torch.equal(torch.get_rng_state(), state)  # no noise drawn, as in aihwkit


@pytest.mark.parametrize(
    ("change", "applies"),
    [
        ({}, True),
        ({"inp_noise": 0.01}, False),
        ({"inp_asymmetry": 0.1}, False),
        ({"inp_sto_round": True}, False),
        ({"is_perfect": True}, False),
        ({"bound_management": BoundManagementType.NONE}, True),
        ({"noise_management": NoiseManagementType.NONE}, True),
        ({"nm_thres": 0.5}, False),  # a 0/1 row would be rescaled by 1 / 0.5
        ({"noise_management": NoiseManagementType.CONSTANT, "nm_thres": 1.0}, True),
        ({"noise_management": NoiseManagementType.CONSTANT, "nm_thres": 3.0}, False),
    ],
)
def test_when_the_shortcut_applies(change, applies):
    io = dataclasses.replace(preset_io(), **change)
    assert spike_shortcut_applies(io) is applies


def test_preset_network_gives_the_stock_tile_results_when_no_vector_saturates(monkeypatch):
    """A whole HWA network (weight noise, output noise, ADC/DAC, bound management) on both tiles.

    The output bound is raised to 100 in both, so no vector saturates and both tiles do one
    round per call (with the preset's bound 12 some vectors saturate and the results differ
    by design: tests/tiles/test_bound_management.py). Our tile runs its torch-operation
    periphery here, which makes aihwkit's random draws (tests/tiles/test_fused_periphery.py
    compares the compiled periphery in distribution).
    """
    monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    rpu_ours = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    assert rpu_ours.simulator_tile_class is SpikeTorchSimulatorTile
    rpu_stock = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    rpu_stock.simulator_tile_class = TorchSimulatorTile
    rpu_ours.forward.out_bound = rpu_stock.forward.out_bound = 100.0
    assert isinstance(rpu_stock, TorchInferenceRPUConfig)
    x = spikes(6 * 4, 50, 0.3).reshape(6, 4, 50)
    grads, outs = [], []
    for rpu in (rpu_stock, rpu_ours):
        torch.manual_seed(0)
        net = SNUNetwork([50, 20, 20, 5], threshold=0.3, rpu_config=rpu)
        torch.manual_seed(1)
        out = net(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-3, atol=1e-3)
    for got, expected in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3 * max(1.0, float(expected.abs().max())))
