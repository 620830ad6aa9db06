"""Weight-init schemes: ranges and moments of the draws, biases zeroed, analog maps written, bad names refused."""

import math

import pytest
import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig
from torch import nn

from analog_snu import MLP, SNUNetwork
from analog_snu.errors import ConfigError
from analog_snu.training.init import WEIGHT_INITS, init_weights


def test_he_uniform_bounds_moments_and_bias():
    model = MLP([400, 300, 10])
    assert init_weights(model, "he_uniform", seed=0) == 2
    w = model.hidden[0].weight.detach()
    limit = math.sqrt(6 / 400)
    assert w.abs().max() <= limit and w.abs().max() > 0.99 * limit
    assert abs(w.std().item() - limit / math.sqrt(3)) < 0.01 * limit  # 120k draws
    assert torch.count_nonzero(model.hidden[0].bias) == 0
    assert model.readout.weight.abs().max() <= math.sqrt(6 / 300)


def test_seed_reproducible_and_default_untouched():
    a, b = MLP([5, 6, 2]), MLP([5, 6, 2])
    init_weights(a, "he_normal", seed=3)
    init_weights(b, "he_normal", seed=3)
    assert torch.equal(a.hidden[0].weight, b.hidden[0].weight)
    before = a.hidden[0].weight.detach().clone()
    assert init_weights(a, "default") == 0
    assert torch.equal(a.hidden[0].weight, before)


def test_he_normal_and_xavier_moments_conv_and_snu():
    conv = nn.Sequential(nn.Conv2d(8, 64, 5), nn.Flatten(), nn.Linear(64, 10))
    init_weights(conv, "he_normal", seed=1)
    assert abs(conv[0].weight.std().item() - math.sqrt(2 / 200)) < 0.03 * math.sqrt(2 / 200)  # 12.8k draws
    init_weights(conv, "xavier_uniform", seed=1)
    limit = math.sqrt(6 / (200 + 64 * 25))
    assert conv[0].weight.abs().max() <= limit and conv[0].weight.abs().max() > 0.98 * limit
    net = SNUNetwork([20, 30, 4], recurrent=True)
    assert init_weights(net, "he_uniform", seed=0) == 3  # W, H and the readout
    assert net.layers[0].weight_hh.weight.abs().max() <= math.sqrt(6 / 30)


def test_analog_maps_written_through_set_weights():
    model = MLP([30, 20, 4], rpu_config=FloatingPointRPUConfig())
    assert init_weights(model, "he_uniform", seed=0) == 2
    weight, bias = model.hidden[0].get_weights()
    assert weight.abs().max() <= math.sqrt(6 / 30) and weight.abs().max() > 0.9 * math.sqrt(6 / 30)
    assert bias is None or torch.count_nonzero(bias) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scheme": "glorot"}, r"weight init must be one of \['default', 'he_uniform', 'he_normal', 'xavier_uniform'\]"),
        ({"scheme": "he_uniform", "seed": -2}, "seed must be a non-negative int or None, got -2"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        init_weights(MLP([2, 3, 2]), **kwargs)


def test_names():
    assert WEIGHT_INITS[0] == "default"
