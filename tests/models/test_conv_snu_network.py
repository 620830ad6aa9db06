"""The spiking CNN: shapes, analog tiles counted/programmed/drifted, GRAPES and FA/DFA, the compiled path."""

import copy

import pytest
import torch
from torch import nn

from analog_snu import device_count, drift, program
from analog_snu.errors import ConfigError, ShapeError
from analog_snu.models import ConvSNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.training import GRAPES
from analog_snu.training.feedback_alignment import make_learning_rule


def test_analog_network_is_counted_programmed_drifted():
    torch.manual_seed(2)
    net = ConvSNUNetwork((1, 12, 12), (4,), kernel_size=3, hidden=(6,), classes=3,
                         rpu_config=device_rpu_config(preset("pcm_joshi2020"), "inference"))
    counts = device_count(net)
    assert counts["convs.0.weight_ih"] == 2 * 4 * 1 * 3 * 3
    assert counts["dense.0.weight_ih"] == 2 * 6 * 4 * 5 * 5 and counts["readout"] == 2 * 3 * 6
    assert counts["total"] == 2 * (36 + 600 + 18)
    before = net.convs[0].weight_ih.get_weights()[0].clone()
    program(net, seed=1)
    drift(net, 3600.0)
    tile = next(net.convs[0].weight_ih.analog_tiles())
    assert not torch.equal(tile.tile.get_weights(), before.reshape(tile.tile.get_weights().shape))
    out = net(torch.bernoulli(torch.full((4, 2, 144), 0.3)))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_network_default_shapes_and_hidden_layers():
    net = ConvSNUNetwork()
    assert net.features == 64 * 4 * 4
    assert [type(l).__name__ for l in net.hidden_layers()] == ["ConvSNU", "ConvSNU", "SNU"]
    x = torch.bernoulli(torch.full((3, 2, 784), 0.2))
    out = net(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(net(x.reshape(3, 2, 1, 28, 28)), out)


def test_grapes_on_cnn_scales_each_channel_error():
    torch.manual_seed(3)
    net = ConvSNUNetwork((1, 8, 8), (3,), kernel_size=3, hidden=(5,), classes=2, soft=True, threshold=0.2).double()
    twin = copy.deepcopy(net)
    x = torch.rand(4, 2, 1, 8, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1])
    grapes = GRAPES(net, "propagating", clip=False)
    grapes.begin_batch()
    nn.functional.cross_entropy(net(x), labels).backward()
    # reference: per-channel factor I_c = sum |W[c]|, error of channel c scaled by 2 I_c / max I
    w = twin.convs[0].weight_ih.weight.detach()
    i_c = w.abs().sum((1, 2, 3))
    m_conv = (2 * i_c / i_c.max()).view(-1, 1, 1)
    wd = twin.dense[0].weight_ih.weight.detach()
    m_dense = 2 * wd.abs().sum(1) / wd.abs().sum(1).max()

    def scale(y, m):
        return y * m + (y * (1 - m)).detach()

    twin.convs[0].pool = 1  # the layer pools its output; here the scaled spikes are pooled as GRAPES first saw them
    y, _ = twin.convs[0](x)
    y = scale(y, m_conv)
    pooled = nn.functional.max_pool2d(y.reshape(8, 3, 6, 6), 2).reshape(4, 2, -1)
    h, _ = twin.dense[0](pooled)
    logits = twin.readout(scale(h, m_dense).mean(0))
    nn.functional.cross_entropy(logits, labels).backward()
    for (name, p), q in zip(net.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert not torch.allclose(m_conv, torch.ones_like(m_conv))


@pytest.mark.parametrize("name", ["FA", "FAgrapes", "DFA", "DFAgrapes"])
def test_feedback_rules_run_on_the_spiking_cnn(name):
    torch.manual_seed(4)
    net = ConvSNUNetwork((1, 12, 12), (3, 4), kernel_size=3, hidden=(5,), classes=3, soft=True, threshold=0.2)
    bp_net = copy.deepcopy(net)
    x = torch.rand(3, 2, 1, 12, 12)
    labels = torch.tensor([0, 2])
    rule = make_learning_rule(net, name, seed=0)
    rule.begin_batch()
    nn.functional.cross_entropy(net(x), labels).backward()
    rule.before_step()
    nn.functional.cross_entropy(bp_net(x), labels).backward()
    state = rule.state_dict()
    assert sorted(state) == ["convs.1.weight_ih", "dense.0.weight_ih", "readout"]
    if name.startswith("DFA"):
        assert state["convs.1.weight_ih"].shape == (3, 3 * 5 * 5)  # (C, C_in * H * W) of the pooled input
    else:
        assert state["convs.1.weight_ih"].shape == (4, 3, 3, 3)
    first = net.convs[0].weight_ih.weight.grad
    assert torch.isfinite(first).all() and not torch.allclose(first, bp_net.convs[0].weight_ih.weight.grad)
    # the readout always learns from the true error
    torch.testing.assert_close(net.readout.weight.grad, bp_net.readout.weight.grad)


@pytest.mark.parametrize("cell", ["snu", "ssnu"])
def test_network_compiled_path_equals_the_torch_path_float32(cell, monkeypatch):
    torch.manual_seed(12)
    net = ConvSNUNetwork((1, 12, 12), (4, 5), kernel_size=3, hidden=(6,), classes=3, cell=cell, threshold=0.3)
    x = torch.bernoulli(torch.full((8, 4, 1, 12, 12), 0.3))
    labels = torch.tensor([0, 2, 1, 1])
    results = []
    for torch_loops in (False, True):
        if torch_loops:
            monkeypatch.setenv("ANALOG_SNU_TORCH_LOOPS", "1")
        twin = copy.deepcopy(net)
        logits = twin(x)
        nn.functional.cross_entropy(logits, labels).backward()
        results.append((logits.detach(), {name: p.grad for name, p in twin.named_parameters()}))
    (logits_a, grads_a), (logits_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert grads_a["convs.0.weight_ih.weight"].abs().sum() > 0


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: ConvSNUNetwork((1, 28)), ConfigError, r"input_shape must be \(C, H, W\)"),
        (lambda: ConvSNUNetwork(channels=()), ConfigError, "channels must be a non-empty list"),
        (lambda: ConvSNUNetwork((1, 8, 8), (2, 2, 2)), ConfigError, "conv-SNU layer 1 leaves no positions"),
        (lambda: ConvSNUNetwork()(torch.rand(2, 3, 100)), ShapeError, r"input must have shape \(T, N, 1, 28, 28\)"),
    ],
)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_cells_from_the_registry():
    net = ConvSNUNetwork((1, 8, 8), (2,), kernel_size=3, hidden=(4,), classes=2, cell="ssnu")
    assert net.dense[0].soft and net.convs[0].cell.name == "ssnu"
    li_net = ConvSNUNetwork((1, 8, 8), (2,), kernel_size=3, hidden=(4,), classes=2, cell="snu_li")
    assert li_net(torch.rand(3, 2, 64)).shape == (2, 2)
