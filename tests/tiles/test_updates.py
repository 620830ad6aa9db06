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
