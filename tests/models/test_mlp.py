"""MLP: forward equals the written-out computation, analog tiles, hidden_layers, errors."""

import pytest
import torch
from aihwkit.simulator.configs import InferenceRPUConfig
from torch import nn

from analog_snu import MLP
from analog_snu.errors import ConfigError, InputValueError, ShapeError


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_forward_matches_manual(activation):
    model = MLP([3, 4, 5, 2], activation=activation)
    x = torch.randn(6, 3)
    f = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    h = x
    for layer in model.hidden:
        h = f(h @ layer.weight.T + layer.bias)
    torch.testing.assert_close(model(x), h @ model.readout.weight.T + model.readout.bias)


def test_hidden_layers_and_analog_tiles():
    model = MLP([3, 4, 5, 2], rpu_config=InferenceRPUConfig(), readout_rpu_config=None)
    assert [layer.out_features for layer in model.hidden_layers()] == [4, 5]
    assert model.readout not in model.hidden_layers()
    assert len(list(model.analog_tiles())) == 2
    assert isinstance(model.readout, nn.Linear) and model(torch.rand(2, 3)).shape == (2, 2)
    assert MLP([3, 4, 2], bias=False).hidden[0].bias is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": [3, 2]}, "at least one hidden layer"),
        ({"sizes": "abc"}, "sizes must list"),
        ({"sizes": [3, 0, 2]}, r"sizes\[1\] must be a positive int"),
        ({"sizes": [3, 4, 2], "activation": "gelu"}, r"activation must be one of .*got 'gelu'"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MLP(**kwargs)


def test_input_errors():
    model = MLP([3, 4, 2])
    with pytest.raises(ShapeError, match=r"input must have shape \(N, 3\), got \(2, 4\)"):
        model(torch.ones(2, 4))
    with pytest.raises(ShapeError, match=r"got \(3,\)"):
        model(torch.ones(3))
    with pytest.raises(InputValueError, match="NaN or inf"):
        model(torch.tensor([[1.0, float("nan"), 0.0]]))
    with pytest.raises(InputValueError, match="NaN or inf"):
        model(torch.tensor([[1.0, float("-inf"), 0.0]]))
    with pytest.raises(ShapeError, match=r"input must have shape \(N, 3\) with N >= 1, got \(0, 3\)"):
        model(torch.ones(0, 3))
    with pytest.raises(TypeError, match="floating-point tensor, got dtype torch.int64"):
        model(torch.ones(2, 3, dtype=torch.long))
