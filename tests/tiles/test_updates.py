"""scale_weight_update / tile_rows on every tile kind, including layers split into tile grids."""

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.configs import (
    FloatingPointRPUConfig,
    InferenceRPUConfig,
    SingleRPUConfig,
    TorchInferenceRPUConfig,
    UnitCellRPUConfig,
)
from aihwkit.simulator.presets import PCMPresetUnitCell
from torch import nn

from analog_snu.errors import ShapeError
from analog_snu.tiles import scale_weight_update, tile_rows


def split(rpu, max_in=3, max_out=2):
    rpu.mapping.max_input_size = max_in
    rpu.mapping.max_output_size = max_out
    return rpu


def test_tile_rows_partition_outputs_of_a_split_layer():
    layer = AnalogLinear(5, 5, bias=False, rpu_config=split(SingleRPUConfig()))
    rows = [(r.start, r.stop) for _, r in tile_rows(layer)]
    # 2 input splits x 3 output splits (sizes 2, 2, 1); each input split covers all rows
    assert rows == [(0, 2), (2, 4), (4, 5)] * 2
    single = AnalogLinear(5, 4, rpu_config=SingleRPUConfig())
    assert [(r.start, r.stop) for _, r in tile_rows(single)] == [(0, 4)]


def test_digital_linear_rows_scaled():
    layer = nn.Linear(3, 4)
    layer(torch.randn(5, 3)).pow(2).sum().backward()
    w, b = layer.weight.grad.clone(), layer.bias.grad.clone()
    factors = torch.tensor([1.0, 2.0, 1.5, 1.25])
    scale_weight_update(layer, factors)
    torch.testing.assert_close(layer.weight.grad, factors[:, None] * w)
    torch.testing.assert_close(layer.bias.grad, factors * b)


def weight_grads(layer):
    """The torch weight grads of the shared-weight tiles, joined to (F_out, F_in) like get_weights."""
    columns = []
    for in_tiles in layer.analog_module.array:
        parts = []
        for tile in in_tiles:
            weight = tile.shared_weights if tile.shared_weights is not None else tile.tile.weight
            parts.append(weight.grad.clone())
        columns.append(torch.cat(parts, 0))
    return torch.cat(columns, 1)


@pytest.mark.parametrize("rpu_factory", [InferenceRPUConfig, TorchInferenceRPUConfig])
def test_shared_weight_tiles_scale_the_torch_grad(rpu_factory):
    layer = AnalogLinear(5, 5, bias=True, rpu_config=split(rpu_factory()))
    layer(torch.rand(4, 5)).pow(2).sum().backward()
    grad, bias = weight_grads(layer), layer.analog_module.bias.grad.clone()
    factors = torch.tensor([1.0, 2.0, 1.5, 1.25, 1.75])
    scale_weight_update(layer, factors)
    torch.testing.assert_close(weight_grads(layer), factors[:, None] * grad)
    torch.testing.assert_close(layer.analog_module.bias.grad, factors * bias)


def test_unsplit_inference_tile_bias_scaled():
    layer = AnalogLinear(3, 2, bias=True, rpu_config=InferenceRPUConfig())
    layer(torch.rand(4, 3)).sum().backward()
    tile = layer.analog_module
    w, b = tile.shared_weights.grad.clone(), tile.bias.grad.clone()
    scale_weight_update(layer, torch.tensor([2.0, 1.5]))
    torch.testing.assert_close(tile.shared_weights.grad, torch.tensor([[2.0], [1.5]]) * w)
    torch.testing.assert_close(tile.bias.grad, torch.tensor([2.0, 1.5]) * b)


@pytest.mark.parametrize(
    "rpu_factory", [SingleRPUConfig, FloatingPointRPUConfig, lambda: UnitCellRPUConfig(device=PCMPresetUnitCell())]
)
def test_pulsed_tiles_scale_every_stored_d(rpu_factory):
    layer = AnalogLinear(5, 5, bias=False, rpu_config=split(rpu_factory()))
    x = torch.rand(4, 5)
    (layer(x).pow(2).sum() + layer(x[:2]).sum()).backward()  # two forward calls: two stored d per tile
    stored = {id(tile): [d.clone() for d in tile.analog_ctx.analog_grad_output] for tile, _ in tile_rows(layer)}
    factors = torch.tensor([1.0, 2.0, 1.5, 1.25, 1.75])
    scale_weight_update(layer, factors)
    for tile, rows in tile_rows(layer):
        after = tile.analog_ctx.analog_grad_output
        assert len(after) == 2
        for before, now in zip(stored[id(tile)], after):
            torch.testing.assert_close(now, before * factors[rows])


def test_wrong_factor_shape():
    with pytest.raises(ShapeError, match=r"factors must have shape \(4,\) for this layer, got \(3,\)"):
        scale_weight_update(nn.Linear(2, 4), torch.ones(3))


@pytest.mark.parametrize("simulator", ["torch", "cpp"])
def test_update_in_network_units_gives_the_weights_and_gradient_the_network_computes_with(simulator):
    # A tile stores W / s (weight_scaling_omega = 1); its forward reads with scales s_f = 2 s (a
    # drift compensation). Inside the block: W = s * W_tile and dL/dW_f, by finite differences.
    from analog_snu.device_models import preset
    from analog_snu.tiles import update_in_network_units
    from analog_snu.tiles.updates import _weight_parameter

    device = preset("ideal").updated({"periphery": {"weight_scaling_omega": 1.0}, "simulator": simulator})
    torch.manual_seed(0)
    layer = AnalogLinear(6, 4, bias=False, rpu_config=device.rpu_config("inference")).eval()
    ((tile, _),) = list(tile_rows(layer))
    weight = _weight_parameter(tile)
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
    from analog_snu.device_models import preset
    from analog_snu.tiles import read_weight, remap_tile, update_in_network_units
    from analog_snu.tiles.updates import _weight_parameter

    device = preset("ideal").updated({"periphery": {"weight_scaling_omega": 1.0}, "simulator": simulator})
    torch.manual_seed(1)
    layer = AnalogLinear(6, 4, bias=False, rpu_config=device.rpu_config("inference")).eval()
    ((tile, _),) = list(tile_rows(layer))
    weight = _weight_parameter(tile)
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
