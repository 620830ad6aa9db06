"""Convolutional SNU layer: dynamics vs a per-step reference, one conv call, analog tiles, the compiled path."""

import copy

import pytest
import torch
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import FloatingPointRPUConfig
from torch import nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.layers.conv_snu import ConvSNU
from analog_snu.tiles import make_conv2d


def reference_unroll(layer, x, soft):
    """Per-step SNU written out here: s_t = g(W*x_t + d s_{t-1} (1 - y_{t-1})), y_t = h(s_t - theta_c)."""
    weight = layer.weight_ih.weight
    s = y = None
    outputs = []
    theta = layer.threshold.view(-1, 1, 1)
    for t in range(x.shape[0]):
        current = nn.functional.conv2d(x[t], weight, stride=layer.stride, padding=layer.padding)
        s = current if s is None else current + layer.decay * s * (1 - y)
        s = s.relu()
        y = torch.sigmoid(s - theta) if soft else (s - theta > 0).to(s.dtype)
        outputs.append(y)
    return torch.stack(outputs)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_shapes_and_spikes_match_per_step_reference(stride, padding):
    torch.manual_seed(0)
    layer = ConvSNU(2, 3, 3, stride=stride, padding=padding, threshold=0.2).double()
    x = torch.bernoulli(torch.full((5, 4, 2, 7, 7), 0.4, dtype=torch.float64))
    y, (s_last, y_last) = layer(x)
    side = (7 + 2 * padding - 3) // stride + 1
    assert y.shape == (5, 4, 3, side, side) and s_last.shape == (4, 3, side, side)
    expected = reference_unroll(layer, x, soft=False)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(y_last, expected[-1])
    assert 0 < y.mean() < 1  # some spikes, not all


def test_ssnu_gradients_match_autograd_reference():
    torch.manual_seed(1)
    layer = ConvSNU(2, 3, 3, soft=True, threshold=0.3, decay=0.6, learn_decay=True).double()
    twin = copy.deepcopy(layer)
    x = torch.rand(4, 2, 2, 6, 6, dtype=torch.float64)
    target = torch.rand(4, 2, 3, 4, 4, dtype=torch.float64)
    ((layer(x)[0] - target) ** 2).sum().backward()

    def reference(l, inp):
        out, s, y = [], None, None
        for t in range(inp.shape[0]):
            current = nn.functional.conv2d(inp[t], l.weight_ih.weight)
            s = current if s is None else current + l.decay.view(-1, 1, 1) * s * (1 - y)
            s = s.relu()
            y = torch.sigmoid(s - l.threshold.view(-1, 1, 1))
            out.append(y)
        return torch.stack(out)

    ((reference(twin, x) - target) ** 2).sum().backward()
    for (name, p), q in zip(layer.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_all_steps_in_one_conv_call():
    layer = ConvSNU(1, 2, 3)
    calls = []
    layer.weight_ih.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    layer(torch.rand(6, 3, 1, 5, 5))
    assert calls == [(18, 1, 5, 5)]


def test_analog_ideal_conv_equals_digital():
    torch.manual_seed(2)
    digital = ConvSNU(2, 3, 3, threshold=0.1)
    analog = ConvSNU(2, 3, 3, threshold=0.1, rpu_config=FloatingPointRPUConfig())
    assert type(analog.weight_ih).__name__ == "AnalogConv2d"
    analog.weight_ih.set_weights(digital.weight_ih.weight.detach())
    x = torch.bernoulli(torch.full((3, 2, 2, 6, 6), 0.5))
    torch.testing.assert_close(analog(x)[0], digital(x)[0])


def test_make_conv2d_digital_and_bad_config():
    conv = make_conv2d(2, 3, 5, padding=2)
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.padding == (2, 2)
    with pytest.raises(ConfigError, match="rpu_config must be an aihwkit RPU config .* got str"):
        make_conv2d(2, 3, 5, "pcm")


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: ConvSNU(0, 3, 3), ConfigError, "in_channels"),
        (lambda: ConvSNU(1, 3, 3, padding=-1), ConfigError, "padding must be a non-negative int, got -1"),
        (lambda: ConvSNU(1, 3, 3, decay=2.0), ConfigError, "decay"),
        (lambda: ConvSNU(1, 3, 3)(torch.rand(2, 1, 2, 5, 5)), ShapeError, r"shape \(T, N, 1, H, W\), got \(2, 1, 2, 5, 5\)"),
        (lambda: ConvSNU(1, 3, 3)(torch.ones(2, 1, 1, 5, 5, dtype=torch.int64)), ShapeError, "floating-point"),
        (lambda: ConvSNU(1, 3, 3)(torch.full((2, 1, 1, 5, 5), float("nan"))), InputValueError, "NaN or inf"),
        (lambda: ConvSNU(1, 3, 5)(torch.rand(2, 1, 1, 3, 3)), ShapeError, r"smaller than the kernel 5"),
        (lambda: ConvSNU(1, 3, 3)(torch.rand(2, 1, 1, 5, 5), (torch.zeros(1, 3, 3, 3), torch.zeros(1))), ShapeError,
         "state y must have shape"),
    ],
)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_state_is_accepted_and_continues():
    layer = ConvSNU(1, 2, 3, soft=True)
    x = torch.rand(6, 2, 1, 5, 5)
    full, _ = layer(x)
    first, state = layer(x[:3])
    second, _ = layer(x[3:], state)
    torch.testing.assert_close(torch.cat([first, second]), full)
    with pytest.raises(TypeError, match="state must be a tuple"):
        layer(x, "state")


def test_cells_from_the_registry():
    torch.manual_seed(7)
    soft = ConvSNU(1, 2, 3, soft=True, threshold=0.2)
    ssnu = ConvSNU(1, 2, 3, cell="ssnu", threshold=0.2)
    ssnu.load_state_dict(soft.state_dict())
    x = torch.rand(3, 2, 1, 5, 5)
    torch.testing.assert_close(ssnu(x)[0], soft(x)[0])
    torch.testing.assert_close(soft(x)[0], reference_unroll(soft, x, soft=True))
    li = ConvSNU(1, 2, 3, cell="snu_li", threshold=0.2)
    y, state = li(x)
    assert y.shape == (3, 2, 2, 3, 3) and len(state) == len(li.cell.state._fields)
    with pytest.raises(ConfigError, match=r"cell must be one of \['snu', 'ssnu', 'snu_li'"):
        ConvSNU(1, 2, 3, cell="lif")
    with pytest.raises(ConfigError, match="cell 'ssnu' fixes soft=True, got soft=False"):
        ConvSNU(1, 2, 3, cell="ssnu", soft=False)
    with pytest.raises(ConfigError, match="takes no parameter 'tau'"):
        ConvSNU(1, 2, 3, tau=2.0)


def _run_layer(layer, x, state, target):
    """Forward + backward through the layer's output and final state; outputs and every gradient."""
    x = x.clone().requires_grad_(True)
    layer.zero_grad()
    y, (s_last, y_last) = layer(x, state)
    loss = (y * target).sum() + (s_last * 0.3).sum() + (y_last * 0.2).sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters() if p.grad is not None}
    if hasattr(layer.weight_ih, "analog_tiles"):  # AnalogConv2d: its weight gradient shows in the tile's update
        before = layer.weight_ih.get_weights()[0].clone()
        optimizer = AnalogSGD(layer.parameters(), lr=0.5)
        optimizer.regroup_param_groups(layer)
        optimizer.step()
        grads["tile update"] = layer.weight_ih.get_weights()[0] - before
        assert grads["tile update"].abs().sum() > 0
    return [y.detach(), s_last.detach(), y_last.detach(), x.grad], grads


@pytest.mark.parametrize("cell", ["snu", "ssnu"])
@pytest.mark.parametrize("analog", [False, True])
@pytest.mark.parametrize(("pool", "padding"), [(2, 0), (2, 1), (1, 0)])
def test_compiled_grid_path_equals_the_torch_path(cell, analog, pool, padding, monkeypatch):
    """The CPU path (channels-last conv, fused recurrence + pooling) gives the values and gradients of
    the ANALOG_SNU_TORCH_LOOPS=1 path (conv, the cell's torch loops over C*H*W neurons, max_pool2d)."""
    torch.manual_seed(11)
    rpu_config = FloatingPointRPUConfig() if analog else None
    dtype = torch.float32 if analog else torch.float64  # aihwkit's tiles are float32
    layer = ConvSNU(2, 3, 3, padding=padding, pool=pool, cell=cell, threshold=0.4, decay=0.7, learn_decay=True,
                    rpu_config=rpu_config).to(dtype)
    with torch.no_grad():
        layer.threshold.copy_(torch.tensor([0.3, 0.5, 0.8]))
        layer.decay.copy_(torch.tensor([0.6, 0.8, 0.9]))
    x = torch.bernoulli(torch.full((6, 3, 2, 7, 7), 0.4, dtype=dtype))
    side = (7 + 2 * padding - 3) + 1
    state = (torch.rand(3, 3, side, side, dtype=dtype), torch.bernoulli(torch.full((3, 3, side, side), 0.5, dtype=dtype)))
    target = torch.randn(6, 3, 3, side // pool, side // pool, dtype=dtype)
    results = []
    for torch_loops in (False, True):
        if torch_loops:
            monkeypatch.setenv("ANALOG_SNU_TORCH_LOOPS", "1")
        results.append(_run_layer(copy.deepcopy(layer), x, state, target))
    (out_a, grads_a), (out_b, grads_b) = results
    for name, a, b in zip(("y", "s_T", "y_T", "grad x"), out_a, out_b):
        torch.testing.assert_close(a, b, msg=name)
    assert sorted(grads_a) == sorted(grads_b) and len(grads_a) >= 3
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], msg=name)
    if cell == "snu":
        assert 0 < out_a[0].mean() < 1


def test_digital_convolution_runs_channels_last_without_copies():
    layer = ConvSNU(1, 4, 3, pool=2)
    seen = []
    layer.weight_ih.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    y, (s_last, _) = layer(torch.bernoulli(torch.full((3, 2, 1, 8, 8), 0.3)))
    images, current = seen[0]
    assert images.is_contiguous(memory_format=torch.channels_last) and images.stride(1) == 1
    assert current.is_contiguous(memory_format=torch.channels_last)
    assert y.shape == (3, 2, 4, 3, 3) and s_last.shape == (2, 4, 6, 6)
    torch.testing.assert_close(current[-2:], s_last)  # the membrane was written over the convolution's output
    # the next layer reads the pooled channels-last output as it is
    nxt = ConvSNU(4, 2, 2)
    nxt.weight_ih.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    nxt(y)
    assert seen[1][0].data_ptr() == y.data_ptr()
