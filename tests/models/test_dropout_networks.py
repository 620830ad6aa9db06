"""Dropout inside the networks: where the masks act, one per sequence, eval identity, analog tiles."""

import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.models import MLP, ConvSNUNetwork, SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config

# threshold -1: s >= 0 > threshold, so every SNU spikes at every step and a layer's output is
# all ones; what the next layer receives is then exactly the dropout mask.
ALWAYS = {"threshold": -1.0}


def _inputs_of(module):
    seen = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    return seen, handle


def _assert_variational(received, steps, p):
    """``received`` (T, N, F): values {0, 1/(1-p)}, the same at every step, different between samples."""
    torch.testing.assert_close(received.unique(), torch.tensor([0.0, 1 / (1 - p)]))
    assert torch.equal(received, received[:1].expand(steps, *received.shape[1:]))
    rows = received[0].reshape(received.shape[1], -1)
    assert len({tuple(r.tolist()) for r in rows}) == rows.shape[0]


def test_snu_network_drops_the_same_units_at_every_step_before_each_layer_and_the_readout():
    steps, batch = 6, 16
    net = SNUNetwork([5, 24, 24, 3], output="sequence", dropout=0.5, **ALWAYS)
    net.train()
    into_second, h1 = _inputs_of(net.layers[1])
    into_readout, h2 = _inputs_of(net.readout)
    into_first, h3 = _inputs_of(net.layers[0])
    x = torch.ones(steps, batch, 5)
    net(x)
    for h in (h1, h2, h3):
        h.remove()
    assert torch.equal(into_first[0], x)  # the network input is never dropped
    _assert_variational(into_second[0], steps, 0.5)
    _assert_variational(into_readout[0].reshape(steps, batch, 24), steps, 0.5)
    assert not torch.equal(into_second[0][0], into_readout[0][:batch])  # independent masks per layer
    assert set(into_readout[0].unique().tolist()) == {0.0, 2.0}


def test_mean_readout_sees_the_time_average_of_masked_spikes():
    net = SNUNetwork([5, 32, 3], output="mean", dropout=0.25, **ALWAYS).train()
    into_readout, handle = _inputs_of(net.readout)
    net(torch.ones(4, 8, 5))
    handle.remove()
    # all-ones spikes, one mask per sample: the time average is the mask itself
    torch.testing.assert_close(into_readout[0].unique(), torch.tensor([0.0, 4 / 3]))


@pytest.mark.parametrize("output", ["mean", "sequence"])
def test_eval_mode_is_bit_equal_to_no_dropout(output):
    torch.manual_seed(3)
    plain = SNUNetwork([5, 12, 12, 3], output=output, threshold=0.3)
    dropped = SNUNetwork([5, 12, 12, 3], output=output, threshold=0.3, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.bernoulli(torch.full((6, 4, 5), 0.5))
    plain.eval(), dropped.eval()
    assert torch.equal(dropped(x), plain(x))
    dropped.train()
    assert not torch.equal(dropped(x), plain(x))  # and training mode does drop


def test_zero_dropout_in_training_mode_draws_nothing():
    net = SNUNetwork([5, 8, 3]).train()
    state = torch.get_rng_state()
    net(torch.ones(3, 2, 5))
    assert torch.equal(torch.get_rng_state(), state)


def test_conv_network_masks_the_pooled_maps_and_dense_spikes_per_sequence():
    steps, batch = 4, 6
    net = ConvSNUNetwork((1, 8, 8), (3,), kernel_size=3, pool=2, hidden=(10,), classes=2, dropout=0.5,
                         **ALWAYS).train()
    into_dense, h1 = _inputs_of(net.dense[0])
    into_readout, h2 = _inputs_of(net.readout)
    net(torch.ones(steps, batch, 64))
    h1.remove(), h2.remove()
    _assert_variational(into_dense[0], steps, 0.5)  # (T, N, C*H*W) = (4, 6, 3*3*3)
    assert into_dense[0].shape == (steps, batch, 27)
    assert set(into_readout[0].unique().tolist()) == {0.0, 2.0}  # mean of a time-constant mask
    net.eval()
    plain = ConvSNUNetwork((1, 8, 8), (3,), kernel_size=3, pool=2, hidden=(10,), classes=2, **ALWAYS).eval()
    plain.load_state_dict(net.state_dict())
    x = torch.bernoulli(torch.full((steps, batch, 64), 0.3))
    assert torch.equal(net(x), plain(x))


def test_mlp_drops_hidden_activations_per_element():
    torch.manual_seed(0)
    net = MLP([4, 64, 64, 3], dropout=0.5).train()
    into_readout, handle = _inputs_of(net.readout)
    before = []
    h2 = net.hidden[1].register_forward_hook(lambda _m, _a, out: before.append(torch.relu(out).detach()))
    x = torch.rand(200, 4)
    net(x)
    handle.remove(), h2.remove()
    active = before[0] > 0
    received = into_readout[0][active]
    kept = received != 0
    torch.testing.assert_close(received[kept], 2 * before[0][active][kept])  # scaled by 1/(1-p)
    fraction = kept.float().mean().item()
    assert abs(fraction - 0.5) < 5 * (0.25 / active.sum().item()) ** 0.5
    plain = MLP([4, 64, 64, 3]).eval()
    plain.load_state_dict(net.state_dict())
    assert torch.equal(net.eval()(x), plain(x))


@pytest.mark.parametrize("bad", [1.0, -0.5, float("nan"), True])
def test_networks_refuse_bad_dropout(bad):
    match = r"dropout must be a drop probability in \[0, 1\)"
    with pytest.raises(ConfigError, match=match):
        SNUNetwork([3, 4, 2], dropout=bad)
    with pytest.raises(ConfigError, match=match):
        ConvSNUNetwork((1, 8, 8), (2,), kernel_size=3, hidden=(), classes=2, dropout=bad)
    with pytest.raises(ConfigError, match=match):
        MLP([3, 4, 2], dropout=bad)


def test_dropout_on_analog_tiles_is_digital_before_the_tile():
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    torch.manual_seed(0)
    net = SNUNetwork([5, 16, 3], output="sequence", rpu_config=rpu, dropout=0.5, **ALWAYS).train()
    into_readout, handle = _inputs_of(net.readout)
    net(torch.ones(5, 8, 5))
    handle.remove()
    _assert_variational(into_readout[0].reshape(5, 8, 16), 5, 0.5)
    # one sample: a dropped unit sends nothing to the readout tile, so its weight column gets no gradient
    into_readout, handle = _inputs_of(net.readout)
    net(torch.ones(5, 1, 5)).square().mean().backward()
    handle.remove()
    dropped = into_readout[0][0] == 0  # (16,)
    assert 0 < int(dropped.sum()) < 16
    grad = [p.grad for n, p in net.readout.named_parameters() if p.grad is not None and p.shape == (3, 16)]
    assert grad, [n for n, p in net.readout.named_parameters() if p.grad is not None]
    assert torch.all(grad[0][:, dropped] == 0) and torch.any(grad[0][:, ~dropped] != 0)
