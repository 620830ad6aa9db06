"""tiles.units: an inference tile's weights and gradient in the network's units, and its re-mapped scale."""

import pytest
import torch
from aihwkit.nn import AnalogLinear

from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, read_weight, remap_tile, tile_rows, update_in_network_units
from analog_snu.tiles.units import weight_parameter


def _scaled_layer(simulator, seed):
    """A 6 -> 4 analog layer on an ideal device whose tile stores W / s (weight_scaling_omega = 1)."""
    device = preset("ideal").updated({"periphery": {"weight_scaling_omega": 1.0}, "simulator": simulator})
    torch.manual_seed(seed)
    layer = AnalogLinear(6, 4, bias=False, rpu_config=device_rpu_config(device, "inference")).eval()
    ((tile, _),) = list(tile_rows(layer))
    return layer, tile, weight_parameter(tile)


@pytest.mark.parametrize("simulator", ["torch", "cpp"])
def test_update_in_network_units_gives_the_weights_and_gradient_the_network_computes_with(simulator):
    # The forward reads with scales s_f = 2 s (a drift compensation). Inside the block: W = s * W_tile
    # and dL/dW_f of the weights the forward computed with, in closed form for a squared error.
    layer, tile, weight = _scaled_layer(simulator, seed=0)
    resting = tile.get_mapping_scales().clone()
    x, target = torch.rand(5, 6), torch.rand(5, 4)
    tile.set_mapping_scales(resting * 2.0)
    loss = ((layer(x) - target) ** 2).sum()
    loss.backward()
    tile_weights = weight.detach().clone()
    # the network computed with W_f = 2 s W_tile: dL/dW_f in closed form
    expected_grad = 2.0 * (x @ (2.0 * resting * tile_weights).T - target).T @ x
    tile.set_mapping_scales(resting.clone())
    with update_in_network_units(tile, resting, resting * 2.0):
        assert torch.allclose(weight.detach(), tile_weights * resting, rtol=1e-6, atol=0)
        assert torch.allclose(weight.grad, expected_grad, rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            weight.add_(1.0)  # a step in network units
    assert torch.allclose(weight.detach(), tile_weights + 1.0 / resting, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("simulator", ["torch", "cpp"])
def test_remap_tile_keeps_the_network_weights_and_the_gradient_convention(simulator):
    layer, tile, weight = _scaled_layer(simulator, seed=1)
    with torch.no_grad():
        weight.mul_(7.0)  # trained weights outgrew the initial scale
    network = read_weight(layer).clone()
    remap_tile(tile, 1.0)
    assert float(weight.detach().abs().max()) == pytest.approx(1.0)
    torch.testing.assert_close(read_weight(layer), network)
    x, target = torch.rand(5, 6), torch.rand(5, 4)
    loss = ((layer(x) - target) ** 2).sum()
    loss.backward()
    expected_grad = 2.0 * (x @ network.T - target).T @ x
    scales = tile.get_mapping_scales().clone()
    with update_in_network_units(tile, scales, scales):
        torch.testing.assert_close(weight.grad, expected_grad, rtol=1e-4, atol=1e-6)
