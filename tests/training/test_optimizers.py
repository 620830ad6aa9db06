"""make_optimizer: plain torch optimizers for digital networks, aihwkit's wrapper when tiles are present."""

import pytest
import torch
from aihwkit.optim import AnalogOptimizer, AnalogSGD
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.models import SNUNetwork
from analog_snu.training.optimizers import has_analog_layers, make_optimizer


@pytest.mark.parametrize(("name", "cls"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_digital_network_gets_the_plain_torch_optimizer(name, cls):
    net = SNUNetwork([6, 5, 3])  # an aihwkit container holding only nn.Linear maps
    optimizer = make_optimizer(net, name, lr=0.1)
    assert type(optimizer) is cls
    assert not isinstance(optimizer, (AnalogSGD, AnalogOptimizer))
    assert not has_analog_layers(net)


def test_plain_sgd_step_is_w_minus_lr_grad():
    net = SNUNetwork([6, 5, 3], threshold=0.1)
    optimizer = make_optimizer(net, "sgd", lr=0.5)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    x = torch.bernoulli(torch.full((4, 2, 6), 0.7))
    net(x).square().sum().backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    optimizer.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - 0.5 * grads[name])


def test_network_with_tiles_gets_the_analog_optimizer():
    net = SNUNetwork([6, 5, 3], rpu_config=TorchInferenceRPUConfig())
    assert has_analog_layers(net)
    assert isinstance(make_optimizer(net, "sgd", lr=0.1), AnalogSGD)
    assert isinstance(make_optimizer(net, "adam", lr=0.1), AnalogOptimizer)


def test_one_analog_readout_makes_the_network_analog():
    net = SNUNetwork([6, 5, 3], rpu_config=None, readout_rpu_config=TorchInferenceRPUConfig())
    assert has_analog_layers(net)
    assert isinstance(make_optimizer(net, "adam"), AnalogOptimizer)


def test_plain_torch_module_is_digital():
    assert type(make_optimizer(nn.Sequential(nn.Linear(3, 2)), "adam")) is torch.optim.Adam


def test_unknown_optimizer_is_refused():
    with pytest.raises(ConfigError, match=r"optimizer must be one of \['adam', 'sgd'\], got 'rmsprop'"):
        make_optimizer(nn.Linear(2, 2), "rmsprop")


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan")])
def test_non_positive_lr_is_refused(lr):
    with pytest.raises(ConfigError, match="lr must be positive, got"):
        make_optimizer(nn.Linear(2, 2), "sgd", lr=lr)
