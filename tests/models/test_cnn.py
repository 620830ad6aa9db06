"""The plain ReLU CNN (GRAPES baseline): reference forward, analog tiles, rules, bad input."""

import pytest
import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig
from torch import nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.models import CNN
from analog_snu.training.feedback_alignment import make_learning_rule


def reference_forward(net: CNN, x: torch.Tensor) -> torch.Tensor:
    """conv -> ReLU -> pool blocks, dense ReLU, linear: written from the layer's definition."""
    for conv in net.convs:
        x = nn.functional.max_pool2d(torch.relu(nn.functional.conv2d(x, conv.weight, conv.bias)), net.pool)
    x = x.flatten(1)
    for layer in net.dense:
        x = torch.relu(x @ layer.weight.T + layer.bias)
    return x @ net.readout.weight.T + net.readout.bias


def test_forward_matches_reference_and_flat_input():
    torch.manual_seed(0)
    net = CNN((2, 12, 12), (3, 4), kernel_size=3, hidden=(7,), classes=5)
    x = torch.rand(6, 2, 12, 12)
    out = net(x)
    assert out.shape == (6, 5)
    torch.testing.assert_close(out, reference_forward(net, x))
    torch.testing.assert_close(net(x.reshape(6, -1)), out)
    # 12 -> conv 3 -> 10 -> pool -> 5 -> conv 3 -> 3 -> pool -> 1: 4 features into the dense layer
    assert net.dense[0].in_features == 4 * 1 * 1
    assert [type(layer).__name__ for layer in net.hidden_layers()] == ["Conv2d", "Conv2d", "DigitalLinear"]


def test_analog_ideal_tiles_equal_digital():
    torch.manual_seed(1)
    digital = CNN((1, 8, 8), (3,), kernel_size=3, hidden=(5,), classes=2)
    analog = CNN((1, 8, 8), (3,), kernel_size=3, hidden=(5,), classes=2, rpu_config=FloatingPointRPUConfig())
    assert type(analog.convs[0]).__name__ == "AnalogConv2d" and type(analog.readout).__name__ == "AnalogLinear"
    for a, d in zip([*analog.convs, *analog.dense, analog.readout], [*digital.convs, *digital.dense, digital.readout]):
        a.set_weights(d.weight.detach(), d.bias.detach())
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(analog(x), digital(x))


@pytest.mark.parametrize("rule", ["BPgrapes", "FA", "FAgrapes", "DFA", "DFAgrapes"])
def test_learning_rules_train_the_cnn(rule):
    torch.manual_seed(2)
    net = CNN((1, 8, 8), (3,), kernel_size=3, hidden=(6,), classes=3)
    x, labels = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    learning = make_learning_rule(net, rule, seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        learning.begin_batch()
        nn.functional.cross_entropy(net(x), labels).backward()
        learning.before_step()
        optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_bad_configs_and_inputs_are_named():
    with pytest.raises(ConfigError, match="channels must be a non-empty list"):
        CNN(channels=())
    with pytest.raises(ConfigError, match="shrink to nothing after convolution 1"):
        CNN((1, 8, 8), (2, 2), kernel_size=3)
    with pytest.raises(ConfigError, match="input_shape must be"):
        CNN((28, 28))
    net = CNN((1, 8, 8), (2,), kernel_size=3, hidden=())
    with pytest.raises(ShapeError, match=r"input must have shape \(N >= 1, 1, 8, 8\) or \(N, 64\), got \(2, 63\)"):
        net(torch.rand(2, 63))
    with pytest.raises(InputValueError, match="NaN or inf"):
        net(torch.full((1, 64), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.ones(1, 64, dtype=torch.long))
