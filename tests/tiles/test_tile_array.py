"""The tile array that adds its tiles' outputs without copies gives aihwkit's array's values and gradients bit for bit."""

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.tiles.array import TileModuleArray

from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.tile_array import AddingTileModuleArray


def layer_pair(in_size, out_size, max_in, max_out, bias, train):
    layers = []
    for array_class in (TileModuleArray, AddingTileModuleArray):
        rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
        rpu.tile_array_class = array_class
        rpu.mapping.max_input_size, rpu.mapping.max_output_size = max_in, max_out
        torch.manual_seed(0)
        layer = AnalogLinear(in_size, out_size, bias=bias, rpu_config=rpu)
        layer.train(train)
        layers.append(layer)
    assert type(layers[1].analog_module) is AddingTileModuleArray
    layers[1].load_state_dict(layers[0].state_dict())
    return layers


@pytest.mark.parametrize("max_in, max_out", [(8, 0), (8, 5), (0, 5)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("spiking", [True, False])
def test_adding_array_equals_aihwkits_array(max_in, max_out, bias, spiking):
    """Input splits of 8 (three slices of 20 inputs), output splits of 5, both, and one tile; with the
    periphery's noise on, the same seed gives the same draws in the same order."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(6, 4, 20, generator=gen)
    x = (x < 0.4).float() if spiking else x
    grad_out = torch.randn(6, 4, 12, generator=gen)
    results = []
    for layer in layer_pair(20, 12, max_in, max_out, bias, train=True):
        inp = x.clone().requires_grad_(True)
        torch.manual_seed(7)
        out = layer(inp)
        out.backward(grad_out)
        grads = [p.grad.clone() for p in layer.parameters() if p.grad is not None]
        results.append((out.detach(), inp.grad, grads))
    (out_a, gx_a, g_a), (out_b, gx_b, g_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    assert len(g_a) == len(g_b) > 0 and all(torch.equal(a, b) for a, b in zip(g_a, g_b))
