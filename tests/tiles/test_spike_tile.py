"""The ADC-code tile (``SpikeTorchInferenceTile``) gives aihwkit's tile module results bit for bit, and saves less.

Reference: aihwkit's ``TorchInferenceTile`` over the same simulator tile (``SpikeTorchSimulatorTile``),
i.e. the same MVM with aihwkit's mapping scale and learned output scaling applied by autograd.
These tests run the tile's torch-operation periphery (aihwkit's operations and random draws,
``ANALOG_SNU_TORCH_PERIPHERY=1``); tests/tiles/test_fused_periphery.py tests the compiled one.
"""

import dataclasses

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, spike_tile
from analog_snu.tiles.fused_periphery import TORCH_PERIPHERY_ENV
from analog_snu.tiles.spike_tile import SpikeTorchInferenceTile


@pytest.fixture(autouse=True)
def _torch_periphery(monkeypatch):
    monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")


def hwa_config(tile_class, columnwise=False, **forward_change):
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    rpu.tile_class = tile_class
    rpu.mapping.weight_scaling_columnwise = rpu.mapping.out_scaling_columnwise = columnwise  # per column
    rpu.forward = dataclasses.replace(rpu.forward, **forward_change)
    return rpu


def spikes(rows, cols, rate, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((rows, cols), rate, dtype=dtype), generator=gen)


def run_layer(tile_class, x, weight, alpha, input_grad, train=True, columnwise=False, **forward_change):
    """Output and the gradients of input, weight and learned output scales of one AnalogLinear call."""
    torch.manual_seed(0)
    rpu = hwa_config(tile_class, columnwise, **forward_change)
    layer = AnalogLinear(x.shape[-1], weight.shape[0], bias=False, rpu_config=rpu)
    layer.set_weights(weight)
    tile = next(layer.analog_tiles())
    assert type(tile) is tile_class
    with torch.no_grad():
        tile.out_scaling_alpha.copy_(alpha if columnwise else alpha[:1])
    layer.train(train)
    x = x.clone().requires_grad_(input_grad)
    torch.manual_seed(1)  # the same weight-noise and output-noise draws in both
    out = layer(x)
    grad_out = torch.linspace(-1, 1, out.numel()).reshape(out.shape).to(out.dtype)
    (out * grad_out).sum().backward()
    grads = [None if grad is None else grad.clone() for grad in (tile.tile.weight.grad, tile.out_scaling_alpha.grad)]
    return out.detach(), x.grad, *grads, tile  # (no weight gradient for an all-zero input: aihwkit's zeros)


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("shape", [(300,), (10, 30)])  # (T*N, F) and time-major (T, N, F) inputs
@pytest.mark.parametrize("columnwise", [False, True])
def test_same_values_and_gradients_as_aihwkits_tile_module_bit_for_bit(input_grad, shape, columnwise):
    f_in, f_out = 80, 24
    gen = torch.Generator().manual_seed(3)
    weight = (torch.rand(f_out, f_in, generator=gen) * 2 - 1) * 0.5
    weight[0] = 0.5  # dense rows saturate output 0: bound-management rounds, some rows up to the limit
    alpha = 0.5 + torch.rand(f_out, generator=gen)
    x = torch.cat([spikes(150, f_in, 0.1, seed=1), spikes(150, f_in, 0.9, seed=2)])
    x = x.reshape(*shape, f_in)
    expected = run_layer(TorchInferenceTile, x, weight, alpha, input_grad, columnwise=columnwise)
    got = run_layer(SpikeTorchInferenceTile, x, weight, alpha, input_grad, columnwise=columnwise)
    assert float(expected[0].abs().max()) > 12.0  # some vectors needed rounds (bound 12, rescaled by f)
    for ours, theirs in zip(got[:4], expected[:4]):
        if theirs is None:
            assert ours is None
        else:
            assert torch.equal(ours, theirs)
    assert expected[3].abs().sum() > 0 and (not input_grad or expected[1].abs().sum() > 0)


def saved_float_mib(tile_class, x, weight, alpha, input_grad):
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run_layer(tile_class, x, weight, alpha, input_grad)
    return sum(saved.values())


@pytest.mark.parametrize("input_grad", [False, True])
def test_saves_int16_codes_instead_of_output_sized_floats(input_grad):
    rows, f_in, f_out = 2000, 40, 64
    weight = (torch.rand(f_out, f_in, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 0.5
    x = spikes(rows, f_in, 0.3)
    ours = saved_float_mib(SpikeTorchInferenceTile, x, weight, torch.ones(f_out), input_grad)
    theirs = saved_float_mib(TorchInferenceTile, x, weight, torch.ones(f_out), input_grad)
    output_floats = rows * f_out * 4
    # aihwkit's: the product before alpha (float) and the clip mask (bool), plus the MVM output when
    # the input needs a gradient; ours: int16 codes. The rest (input, weights, (M, 1) factors) is shared.
    saved_less = output_floats + output_floats // 4 - output_floats // 2 + (output_floats if input_grad else 0)
    assert theirs - ours == saved_less


def test_other_inputs_and_settings_take_aihwkits_path(monkeypatch):
    calls = []
    original = spike_tile._ScaledSpikeRows.apply
    monkeypatch.setattr(spike_tile._ScaledSpikeRows, "apply", lambda *a: calls.append(1) or original(*a))
    weight = torch.rand(6, 10) - 0.5
    x = spikes(8, 10, 0.4)
    run_layer(SpikeTorchInferenceTile, x, weight, torch.ones(6), False)
    assert calls == [1]
    for inp, change in [(x * 0.5, {}), (x, {"out_sto_round": True}), (x, {"out_res": -1.0}),
                        (x, {"out_asymmetry": 0.1}), (torch.zeros_like(x), {})]:
        run_layer(SpikeTorchInferenceTile, inp, weight, torch.ones(6), False, **change)
    with torch.no_grad():  # no gradient: nothing to save
        layer = AnalogLinear(10, 6, bias=False, rpu_config=hwa_config(SpikeTorchInferenceTile))
        layer(x)
    assert calls == [1]


def test_eval_mode_with_drift_compensation_and_gradient_takes_aihwkits_path():
    """aihwkit's post_forward scales by the drift-compensation factor in eval mode; the code tile does not
    apply it, so such a call is aihwkit's."""
    gen = torch.Generator().manual_seed(5)
    weight = (torch.rand(24, 80, generator=gen) * 2 - 1) * 0.5
    x = spikes(60, 80, 0.3)
    outs = []
    for tile_class in (TorchInferenceTile, SpikeTorchInferenceTile):
        torch.manual_seed(0)
        layer = AnalogLinear(80, 24, bias=False, rpu_config=hwa_config(tile_class))
        layer.set_weights(weight)
        next(layer.analog_tiles()).alpha = torch.tensor([0.75])  # as drift_analog_weights sets it
        layer.eval()
        torch.manual_seed(1)
        outs.append(layer(x.clone().requires_grad_()).detach())
    assert torch.equal(outs[1], outs[0])


def test_preset_network_trains_through_the_code_tile():
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    assert rpu.tile_class is SpikeTorchInferenceTile
    torch.manual_seed(0)
    net = SNUNetwork([30, 16, 16, 4], threshold=0.3, rpu_config=rpu)
    x = spikes(5 * 3, 30, 0.4).reshape(5, 3, 30)
    net(x).square().sum().backward()
    alphas = [tile.out_scaling_alpha.grad for tile in net.analog_tiles()]
    assert all(grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0 for grad in alphas)
