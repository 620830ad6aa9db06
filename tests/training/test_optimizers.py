"""make_optimizer: plain torch optimizers for digital networks, aihwkit's wrapper when tiles are present;
torch's weight decay where it reaches the weights."""

import pytest
import torch
from aihwkit.optim import AnalogOptimizer, AnalogSGD
from aihwkit.optim.context import AnalogContext
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import crossbars, device_rpu_config
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


# --- weight decay: torch's coupled L2 term ---------------------------------------------------------


def test_sgd_step_with_weight_decay_is_w_minus_lr_times_grad_plus_wd_w():
    net = SNUNetwork([6, 5, 3], threshold=0.1)
    optimizer = make_optimizer(net, "sgd", lr=0.5, weight_decay=0.3)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    x = torch.bernoulli(torch.full((4, 2, 6), 0.7), generator=torch.Generator().manual_seed(0))
    net(x).square().sum().backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    assert all(g.abs().sum() > 0 for g in grads.values())  # every parameter learns in this step
    optimizer.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - 0.5 * (grads[name] + 0.3 * before[name]))


def _adam_reference(w, grads, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """Adam with coupled L2 as torch.optim.Adam documents it, written out (float64)."""
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        w = w - lr * m_hat / (v_hat.sqrt() + eps)
    return w


def test_adam_steps_with_weight_decay_follow_adams_formula():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2, dtype=torch.float64)
    start = layer.weight.detach().clone()
    # gradients as small as the decay term wd * w, so the decay changes the direction of the steps
    grads = [0.05 * torch.randn(2, 3, dtype=torch.float64) for _ in range(3)]
    optimizer = make_optimizer(layer, "adam", lr=0.1, weight_decay=0.2)
    for g in grads:
        layer.weight.grad = g.clone()
        layer.bias.grad = torch.zeros_like(layer.bias)
        optimizer.step()
    expected = _adam_reference(start, grads, lr=0.1, weight_decay=0.2)
    torch.testing.assert_close(layer.weight.detach(), expected, rtol=1e-12, atol=1e-12)
    undecayed = _adam_reference(start, grads, lr=0.1, weight_decay=0.0)
    assert (expected - undecayed).abs().max() > 0.05  # the decay is not lost in the tolerance


@pytest.mark.parametrize("simulator", ["torch", "cpp"])
def test_weight_decay_reaches_the_crossbar_weights_of_hardware_aware_tiles(simulator):
    # hwa: torch steps the inference tiles' own weights (tile units), so the decay shrinks the
    # crossbar's weights; the tile then clips them to +-clip as after any step
    device = preset("pcm_joshi2020").updated({"simulator": simulator})
    torch.manual_seed(0)
    net = SNUNetwork([6, 5, 3], rpu_config=device_rpu_config(device, "hwa"), threshold=0.1)
    optimizer = make_optimizer(net, "sgd", lr=0.5, weight_decay=0.3)
    assert all(group["weight_decay"] == 0.3 for group in optimizer.param_groups)
    tiles = {c.name: c for c in crossbars(net)}
    stepped = {name: p for name, p in net.named_parameters() if not isinstance(p, AnalogContext)}
    before = {name: p.detach().clone() for name, p in stepped.items()}
    x = torch.bernoulli(torch.full((4, 2, 6), 0.7), generator=torch.Generator().manual_seed(0))
    net(x).square().sum().backward()
    grads = {name: p.grad.clone() for name, p in stepped.items() if p.grad is not None}
    optimizer.step()
    weights_of = {name: tile for tile in tiles for name in (f"{tile}.tile.weight", f"{tile}.shared_weights")}
    assert {weights_of[name] for name in grads if name in weights_of} == set(tiles)  # every tile learned
    for name, grad in grads.items():
        expected = before[name] - 0.5 * (grad + 0.3 * before[name])
        if name in weights_of:
            expected = expected.clamp(-device.hwa.clip, device.hwa.clip)
            torch.testing.assert_close(tiles[weights_of[name]].read_weights(), expected)
        torch.testing.assert_close(stepped[name].detach(), expected)


def test_weight_decay_is_refused_on_pulsed_tiles_it_cannot_reach():
    net = SNUNetwork([6, 5, 3], rpu_config=device_rpu_config(preset("pcm_joshi2020"), "pulsed"))
    with pytest.raises(ConfigError, match=r"^weight_decay does not reach the pulsed \(or floating-point\) tiles of "
                                          r"layer 'layers.0.weight_ih': aihwkit updates them by pulses"):
        make_optimizer(net, "sgd", lr=0.1, weight_decay=1e-4)
    assert make_optimizer(net, "sgd", lr=0.1, weight_decay=0.0).param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("weight_decay", [-1e-4, float("nan"), float("inf"), "0.1", True, None])
def test_bad_weight_decay_is_refused(weight_decay):
    with pytest.raises(ConfigError, match=r"^weight_decay must be a finite number >= 0, got "):
        make_optimizer(nn.Linear(2, 2), "adam", lr=0.1, weight_decay=weight_decay)
