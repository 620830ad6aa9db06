"""GRAPES: modulation factors, propagating and local error modulation, digital and analog."""

import copy

import pytest
import torch
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import FloatingPointRPUConfig, SingleRPUConfig
from aihwkit.simulator.configs.devices import ConstantStepDevice
from torch import nn

from analog_snu import MLP, SNUNetwork
from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.training import GRAPES, grapes_modulation, train_epoch

# ---------------------------------------------------------------- grapes_modulation


def test_modulation_hand_computed_clip_and_no_clip():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.5], [0.0, -0.25]])
    h = torch.tensor([[1.0], [0.0], [0.25]])
    # I = |W| row sums + |H| row sums = [3 + 1, 1 + 0, 0.25 + 0.25] = [4, 1, 0.5]; M = 2 I / 4
    torch.testing.assert_close(grapes_modulation(w, h, clip=False), torch.tensor([2.0, 0.5, 0.25]))
    torch.testing.assert_close(grapes_modulation(w, h), torch.tensor([2.0, 1.0, 1.0]))
    # W alone: I = [3, 1, 0.25] -> 2 I / 3
    torch.testing.assert_close(grapes_modulation(w, clip=False), torch.tensor([2.0, 2 / 3, 1 / 6]))
    w2 = torch.tensor([[3.0, 0.0], [-2.0, 0.25], [1.0, 1.0]])  # I = [3, 2.25, 2] -> [2, 1.5, 4/3]
    torch.testing.assert_close(grapes_modulation(w2), torch.tensor([2.0, 1.5, 4 / 3]))


def test_modulation_is_detached_and_keeps_dtype():
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    m = grapes_modulation(w)
    assert m.dtype == torch.float64 and not m.requires_grad and m.shape == (4,)


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ((), ConfigError, "at least one weight matrix"),
        ((torch.zeros(3, 2),), InputValueError, "all weights .* are zero"),
        ((torch.tensor([[1.0, float("nan")]]),), InputValueError, r"weights\[0\] contains NaN or inf"),
        ((torch.ones(2, 2), torch.tensor([[float("inf")], [1.0]])), InputValueError, r"weights\[1\] contains NaN"),
        ((torch.full((2, 3), 6e4, dtype=torch.float16),), InputValueError, "not finite"),
        ((torch.ones(3),), ShapeError, r"weights\[0\] must be a 2-D tensor"),
        ((torch.ones(3, 2), torch.ones(4, 3)), ShapeError, "same F_out=3"),
        (([[1.0]],), ShapeError, "got list"),
    ],
)
def test_modulation_errors(weights, error, match):
    with pytest.raises(error, match=match):
        grapes_modulation(*weights)


# ---------------------------------------------------------------- digital MLP, manual backprop


def manual_factors(weight, clip):
    importance = weight.abs().sum(1)
    m = 2 * importance / importance.max()
    return m.clamp(1, 2) if clip else m


def mlp_and_batch():
    torch.manual_seed(3)
    model = MLP([4, 5, 6, 3]).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (7,))
    return model, x, labels


def grads_under(model, x, labels, grapes):
    model.zero_grad()
    if grapes is not None:
        grapes.begin_batch()
    nn.functional.cross_entropy(model(x), labels).backward()
    if grapes is not None:
        grapes.before_step()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("clip", [True, False])
def test_propagating_mlp_matches_manual_delta_rule(clip):
    model, x, labels = mlp_and_batch()
    w1, b1 = model.hidden[0].weight.detach(), model.hidden[0].bias.detach()
    w2, b2 = model.hidden[1].weight.detach(), model.hidden[1].bias.detach()
    w3, b3 = model.readout.weight.detach(), model.readout.bias.detach()
    m1, m2 = manual_factors(w1, clip), manual_factors(w2, clip)
    # manual forward/backward: delta_l = M_l * (W_{l+1}^T delta_{l+1}) * f'(a_l)
    a1 = x @ w1.T + b1
    h1 = a1.relu()
    a2 = h1 @ w2.T + b2
    h2 = a2.relu()
    z = h2 @ w3.T + b3
    delta3 = (z.softmax(-1) - nn.functional.one_hot(labels, 3)) / x.shape[0]
    delta2 = m2 * (delta3 @ w3) * (a2 > 0)
    delta1 = m1 * (delta2 @ w2) * (a1 > 0)
    expected = {
        "hidden.0.weight": delta1.T @ x, "hidden.0.bias": delta1.sum(0),
        "hidden.1.weight": delta2.T @ h1, "hidden.1.bias": delta2.sum(0),
        "readout.weight": delta3.T @ h2, "readout.bias": delta3.sum(0),
    }
    grads = grads_under(model, x, labels, GRAPES(model, "propagating", clip=clip))
    for name, value in expected.items():
        torch.testing.assert_close(grads[name], value, msg=name)
    if not clip:
        assert not torch.allclose(m1, torch.ones_like(m1))  # the check is not vacuous


@pytest.mark.parametrize("clip", [True, False])
def test_local_mlp_scales_own_rows_only(clip):
    model, x, labels = mlp_and_batch()
    plain = grads_under(model, x, labels, None)
    m1 = manual_factors(model.hidden[0].weight.detach(), clip)
    m2 = manual_factors(model.hidden[1].weight.detach(), clip)
    grads = grads_under(model, x, labels, GRAPES(model, "local", clip=clip))
    torch.testing.assert_close(grads["hidden.0.weight"], m1[:, None] * plain["hidden.0.weight"])
    torch.testing.assert_close(grads["hidden.0.bias"], m1 * plain["hidden.0.bias"])
    torch.testing.assert_close(grads["hidden.1.weight"], m2[:, None] * plain["hidden.1.weight"])
    torch.testing.assert_close(grads["hidden.1.bias"], m2 * plain["hidden.1.bias"])
    torch.testing.assert_close(grads["readout.weight"], plain["readout.weight"])  # output layer untouched
    torch.testing.assert_close(grads["readout.bias"], plain["readout.bias"])
    assert not torch.allclose(grads["hidden.1.weight"], plain["hidden.1.weight"])


def test_output_layer_untouched_by_propagating():
    model, x, labels = mlp_and_batch()
    plain = grads_under(model, x, labels, None)
    grads = grads_under(model, x, labels, GRAPES(model, "propagating", clip=False))
    torch.testing.assert_close(grads["readout.weight"], plain["readout.weight"])
    assert not torch.allclose(grads["hidden.0.weight"], plain["hidden.0.weight"])


def test_remove_detaches_and_factors_reset_per_batch():
    model, x, labels = mlp_and_batch()
    plain = grads_under(model, x, labels, None)
    grapes = GRAPES(model, "propagating", clip=False)
    grapes.begin_batch()
    assert [f.shape for f in grapes.factors] == [(5,), (6,)]
    grapes.before_step()
    assert grapes.factors is None
    grapes.remove()
    grads = grads_under(model, x, labels, None)
    torch.testing.assert_close(grads["hidden.0.weight"], plain["hidden.0.weight"])


def test_forward_without_begin_batch_uses_current_weights():
    model, x, labels = mlp_and_batch()
    expected = grads_under(model, x, labels, GRAPES(model, "propagating", clip=False))
    model2, _, _ = mlp_and_batch()
    GRAPES(model2, "propagating", clip=False)
    nn.functional.cross_entropy(model2(x), labels).backward()  # no begin_batch: lazy factors
    torch.testing.assert_close(model2.hidden[0].weight.grad, expected["hidden.0.weight"])


def test_train_epoch_local_step_is_row_scaled_sgd():
    model, x, labels = mlp_and_batch()
    plain = grads_under(model, x, labels, None)
    m1 = manual_factors(model.hidden[0].weight.detach(), True)
    before = model.hidden[0].weight.detach().clone()
    grapes = GRAPES(model, "local")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    train_epoch(model, [(x, labels)], optimizer, nn.functional.cross_entropy, rule=grapes, progress=False)
    change = model.hidden[0].weight.detach() - before
    torch.testing.assert_close(change, -0.5 * m1[:, None] * plain["hidden.0.weight"])
    assert grapes.factors is None


# ---------------------------------------------------------------- SNU network over time


def scale_grad(y, m):
    """Identity in the forward; multiplies the gradient by m in the backward."""
    return y * m + (y * (1 - m)).detach()


def manual_snu_network(net, x, factors, compound=False):
    """Unrolled sSNU network written out here; ``factors`` modulate the error going up at each step.

    The recurrence (H y_{t-1} and the reset gate) uses the unmodulated outputs unless ``compound``.
    """
    steps, batch, _ = x.shape
    states = [(x.new_zeros(batch, l.hidden_size), x.new_zeros(batch, l.hidden_size)) for l in net.layers]
    total = 0.0
    for t in range(steps):
        inp = x[t]
        for k, layer in enumerate(net.layers):
            s_prev, y_prev = states[k]
            a = inp @ layer.weight_ih.weight.T + layer.decay * s_prev * (1 - y_prev)
            if layer.weight_hh is not None:
                a = a + y_prev @ layer.weight_hh.weight.T
            s = a.relu()
            y = torch.sigmoid(s - layer.threshold)
            y_up = scale_grad(y, factors[k])
            states[k] = (s, y_up if compound else y)
            inp = y_up
        total = total + inp
    return net.readout(total / steps)


@pytest.mark.parametrize("recurrent", [False, True])
def test_snu_propagating_does_not_compound_over_time(recurrent):
    torch.manual_seed(5)
    net = SNUNetwork([4, 6, 5, 3], soft=True, recurrent=recurrent, threshold=0.3, decay=0.7).double()
    x = torch.bernoulli(torch.full((6, 3, 4), 0.5, dtype=torch.float64))
    labels = torch.tensor([0, 2, 1])
    factors = []
    for layer in net.layers:
        weights = [layer.weight_ih.weight.detach()] + ([layer.weight_hh.weight.detach()] if recurrent else [])
        importance = sum(w.abs().sum(1) for w in weights)
        factors.append(2 * importance / importance.max())  # unclipped: every node has its own factor
    reference = copy.deepcopy(net)
    nn.functional.cross_entropy(manual_snu_network(reference, x, factors), labels).backward()
    compounded = copy.deepcopy(net)
    nn.functional.cross_entropy(manual_snu_network(compounded, x, factors, compound=True), labels).backward()

    grapes = GRAPES(net, "propagating", clip=False)
    grapes.begin_batch()
    nn.functional.cross_entropy(net(x), labels).backward()
    grapes.before_step()
    for (name, p), q, c in zip(net.named_parameters(), reference.parameters(), compounded.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    first = net.layers[0].weight_ih.weight.grad
    assert not torch.allclose(first, compounded.layers[0].weight_ih.weight.grad)  # the test can tell


def test_snu_local_scales_weights_and_threshold_rows():
    torch.manual_seed(6)
    net = SNUNetwork([4, 6, 3], soft=True, recurrent=True, threshold=0.3, learn_decay=True).double()
    x = torch.bernoulli(torch.full((5, 2, 4), 0.5, dtype=torch.float64))
    labels = torch.tensor([1, 2])
    nn.functional.cross_entropy(net(x), labels).backward()
    plain = {n: p.grad.clone() for n, p in net.named_parameters()}
    layer = net.layers[0]
    importance = layer.weight_ih.weight.detach().abs().sum(1) + layer.weight_hh.weight.detach().abs().sum(1)
    m = (2 * importance / importance.max()).clamp(1, 2)
    net.zero_grad()
    grapes = GRAPES(net, "local")
    grapes.begin_batch()
    nn.functional.cross_entropy(net(x), labels).backward()
    grapes.before_step()
    grads = dict(net.named_parameters())
    for name in ("layers.0.weight_ih.weight", "layers.0.weight_hh.weight"):
        torch.testing.assert_close(grads[name].grad, m[:, None] * plain[name])
    for name in ("layers.0.threshold", "layers.0.decay"):
        torch.testing.assert_close(grads[name].grad, m * plain[name])
    torch.testing.assert_close(grads["readout.weight"].grad, plain["readout.weight"])


# ---------------------------------------------------------------- pulsed analog tile


def perfect_pulsed_config():
    rpu = SingleRPUConfig(device=ConstantStepDevice())
    rpu.forward.is_perfect = True
    rpu.backward.is_perfect = True
    return rpu


def capture_updates(linear):
    """Record the (x, d) that the optimizer hands to every tile of ``linear``."""
    seen = []
    for tile in linear.analog_tiles():
        original = tile.update

        def update(x, d, original=original):
            seen.append((x.clone(), d.clone()))
            return original(x, d)

        tile.update = update
    return seen


@pytest.mark.parametrize("variant", ["local", "propagating"])
def test_pulsed_tile_receives_modulated_d_rows(variant):
    torch.manual_seed(8)
    model = MLP([4, 5, 3], rpu_config=perfect_pulsed_config())
    x = torch.rand(6, 4)
    labels = torch.randint(0, 3, (6,))
    w1, b1 = model.hidden[0].get_weights()
    w2, b2 = model.readout.get_weights()
    m = manual_factors(w1, clip=False)
    a1 = x @ w1.T + b1
    z = a1.relu() @ w2.T + b2
    delta2 = (z.softmax(-1) - nn.functional.one_hot(labels, 3)) / 6
    plain_d1 = (delta2 @ w2) * (a1 > 0)
    hidden_seen, readout_seen = capture_updates(model.hidden[0]), capture_updates(model.readout)
    optimizer = AnalogSGD(model.parameters(), lr=0.01)
    optimizer.regroup_param_groups(model)
    grapes = GRAPES(model, variant, clip=False)
    train_epoch(model, [(x, labels)], optimizer, nn.functional.cross_entropy, rule=grapes, progress=False)
    (x_hidden, d_hidden), = hidden_seen
    (_, d_readout), = readout_seen
    torch.testing.assert_close(x_hidden, x)
    torch.testing.assert_close(d_hidden, m * plain_d1, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(d_readout, delta2, atol=1e-6, rtol=1e-4)  # output layer's d is plain
    assert not torch.allclose(d_hidden, plain_d1, atol=1e-4)


# ---------------------------------------------------------------- bad arguments


class _NoHidden(nn.Module):
    def forward(self, x):
        return x


class _EmptyHidden(_NoHidden):
    def hidden_layers(self):
        return []


class _ConvHidden(_NoHidden):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3)

    def hidden_layers(self):
        return [self.conv]


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        (MLP([2, 3, 2]), {"variant": "global"}, r"variant must be one of \['propagating', 'local'\], got 'global'"),
        (MLP([2, 3, 2]), {"clip": 1}, "clip must be a bool, got 1"),
        (_NoHidden(), {}, r"_NoHidden has 0 dense/conv/SNU layer\(s\); GRAPES needs at least one hidden layer"),
        (nn.Linear(2, 2), {}, "got a single Linear"),
        (nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)), {}, r"module '1' \(LSTM\) has trainable parameters"),
        (_EmptyHidden(), {}, "returned no layers"),
        (_ConvHidden(), {}, "got Conv1d"),
    ],
)
def test_bad_arguments(model, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GRAPES(model, **kwargs)


# ---------------------------------------------------------------- any nn.Module, convolutions, analog conv tiles


def test_plain_sequential_hidden_layers_in_registration_order():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    mlp = MLP([4, 5, 6, 3]).double()
    for src, dst in zip((model[0], model[2], model[4]), list(mlp.hidden) + [mlp.readout]):
        dst.load_state_dict(src.state_dict())
    x = torch.randn(7, 4, dtype=torch.float64)
    labels = torch.randint(0, 3, (7,))
    grapes = GRAPES(model, "propagating", clip=False)
    assert grapes.layers == [model[0], model[2]]
    got = grads_under(model, x, labels, grapes)
    expected = grads_under(mlp, x, labels, GRAPES(mlp, "propagating", clip=False))  # checked against the delta rule above
    torch.testing.assert_close(got["0.weight"], expected["hidden.0.weight"])
    torch.testing.assert_close(got["2.weight"], expected["hidden.1.weight"])


def _cnn(conv2):
    torch.manual_seed(10)
    conv1 = nn.Conv2d(1, 3, 3)
    return nn.Sequential(conv1, nn.ReLU(), conv2, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 3))


def test_local_conv_scales_each_output_channel_of_its_kernel_and_bias():
    model = _cnn(nn.Conv2d(3, 4, 3))
    x = torch.rand(5, 1, 6, 6)
    labels = torch.tensor([0, 1, 2, 0, 1])
    plain = grads_under(model, x, labels, None)
    w = model[2].weight.detach()
    m = (2 * w.abs().sum((1, 2, 3)) / w.abs().sum((1, 2, 3)).max()).clamp(1, 2)
    grads = grads_under(model, x, labels, GRAPES(model, "local"))
    torch.testing.assert_close(grads["2.weight"], m[:, None, None, None] * plain["2.weight"])
    torch.testing.assert_close(grads["2.bias"], m * plain["2.bias"])
    torch.testing.assert_close(grads["5.weight"], plain["5.weight"])


def test_propagating_on_analog_conv_tile_uses_its_weights():
    digital = _cnn(nn.Conv2d(3, 4, 3, bias=False))
    analog = copy.deepcopy(digital)
    from analog_snu.tiles import make_conv2d

    analog[2] = make_conv2d(3, 4, 3, FloatingPointRPUConfig())
    analog[2].set_weights(digital[2].weight.detach())
    x = torch.rand(5, 1, 6, 6)
    labels = torch.tensor([0, 1, 2, 0, 1])
    grapes = GRAPES(analog, "propagating", clip=False)
    w = digital[2].weight.detach()
    i_c = w.abs().sum((1, 2, 3))
    torch.testing.assert_close(grapes.compute_factors()[1], 2 * i_c / i_c.max(), atol=1e-6, rtol=1e-5)
    got = grads_under(analog, x, labels, grapes)
    expected = grads_under(digital, x, labels, GRAPES(digital, "propagating", clip=False))
    torch.testing.assert_close(got["0.weight"], expected["0.weight"], atol=1e-6, rtol=1e-4)  # the error below it
    with pytest.raises(ConfigError, match="variant='local' cannot scale the tile update of an analog convolution"):
        GRAPES(analog, "local")
