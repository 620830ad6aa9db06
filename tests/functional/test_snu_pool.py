"""The pooled grid recurrence (compiled loops) against snu_step unrolled by autograd + max_pool2d, and by hand."""

import pytest
import torch

from analog_snu.errors import ConfigError, ShapeError
from analog_snu.functional import SNUState, snu_pool_compiled, snu_pool_loops, snu_pool_sequence, snu_step
from analog_snu.functional import snu as snu_module
from analog_snu.functional.surrogates import SURROGATES


def reference(current, s0, y0, threshold, decay, pool, g, soft, surrogate):
    """snu_step per step on the (N, H, W, C) grid, then torch's max_pool2d of each step's output."""
    state, pooled = SNUState(s0, y0), []
    for t in range(current.shape[0]):
        y, state = snu_step(current[t], state, threshold, decay, g, soft, surrogate)
        image = y.permute(0, 3, 1, 2)  # (N, C, H, W)
        out = torch.nn.functional.max_pool2d(image, pool) if pool > 1 else image
        pooled.append(out.permute(0, 2, 3, 1))
    return torch.stack(pooled), state


def run(fn, inputs, pool, g, soft, surrogate, grads):
    """Forward + backward of ``fn``; returns the outputs and the gradients of every input."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    pooled, final = fn(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], pool, g, soft, surrogate)
    grad_pooled, grad_s, grad_y = grads
    loss = (pooled * grad_pooled).sum() + (final.s * grad_s).sum() + (final.y * grad_y).sum()
    loss.backward()
    return [pooled.detach(), final.s.detach(), final.y.detach()], [leaf.grad for leaf in leaves]


def fused(current, s0, y0, threshold, decay, pool, g, soft, surrogate):
    return snu_pool_sequence(current, SNUState(s0, y0), threshold, decay, pool, g, soft, surrogate)


def make_inputs(steps, batch, height, width, channels, pool, per_channel_decay, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    current = torch.randn(steps, batch, height, width, channels, dtype=dtype) * 1.2 + 0.3
    s0 = torch.rand(batch, height, width, channels, dtype=dtype)
    y0 = (torch.rand(batch, height, width, channels, dtype=dtype) > 0.5).to(dtype)
    threshold = torch.linspace(0.4, 1.0, channels, dtype=dtype)
    decay = torch.rand(channels, dtype=dtype) if per_channel_decay else torch.tensor(0.8, dtype=dtype)
    grads = (torch.randn(steps, batch, height // pool, width // pool, channels, dtype=dtype),
             torch.randn(batch, height, width, channels, dtype=dtype),
             torch.randn(batch, height, width, channels, dtype=dtype))
    return (current, s0, y0, threshold, decay), grads


@pytest.mark.parametrize("g", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(("pool", "height", "width"), [(1, 3, 4), (2, 4, 6), (2, 5, 7), (3, 7, 6)])
@pytest.mark.parametrize("per_channel_decay", [False, True])
def test_matches_unrolled_steps_and_max_pool(g, soft, pool, height, width, per_channel_decay, loops):
    inputs, grads = make_inputs(6, 3, height, width, 4, pool, per_channel_decay)
    (out_a, grads_a), (out_b, grads_b) = (run(fn, inputs, pool, g, soft, "tanh", grads) for fn in (fused, reference))
    for name, a, b in zip(("pooled", "s_T", "y_T"), out_a, out_b):
        torch.testing.assert_close(a, b, msg=name)
    if not soft:
        assert 0 < out_a[0].mean() < 1  # the windows are neither all silent nor all firing
    for name, a, b in zip(("current", "s0", "y0", "threshold", "decay"), grads_a, grads_b):
        torch.testing.assert_close(a, b, msg=f"gradient of {name}")


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_every_surrogate_matches_unrolled(surrogate):
    inputs, grads = make_inputs(5, 2, 4, 4, 3, 2, per_channel_decay=True, seed=1)
    (out_a, grads_a), (out_b, grads_b) = (run(fn, inputs, 2, "relu", False, surrogate, grads) for fn in (fused, reference))
    torch.testing.assert_close(out_a[0], out_b[0])
    for name, a, b in zip(("current", "s0", "y0", "threshold", "decay"), grads_a, grads_b):
        torch.testing.assert_close(a, b, msg=f"gradient of {name}")


def test_gradient_goes_to_the_first_spike_of_a_window_or_its_first_position_by_hand():
    # one step, decay 0, identity g: s = current; threshold 1 -> spikes where current > 1
    current = torch.tensor([[[[0.2], [1.5]], [[1.7], [0.1]]],     # window 1: spikes at (0, 1) and (1, 0)
                            [[[0.2], [0.3]], [[0.1], [0.4]]]],    # window 2: silent
                           dtype=torch.float64).unsqueeze(0).requires_grad_(True)  # (T=1, N=2, 2, 2, C=1)
    zero = torch.zeros(2, 2, 2, 1, dtype=torch.float64)
    pooled, _ = snu_pool_sequence(current, SNUState(zero, zero), torch.ones(1, dtype=torch.float64), 0.0, 2,
                                  g="identity")
    assert pooled.flatten().tolist() == [1.0, 0.0]
    pooled.backward(torch.tensor([2.0, 3.0], dtype=torch.float64).reshape(pooled.shape))
    surrogate = lambda x: 1.0 - torch.tanh(torch.tensor(x, dtype=torch.float64)) ** 2  # noqa: E731
    expected = torch.zeros_like(current)
    expected[0, 0, 0, 1, 0] = 2.0 * surrogate(0.5)  # row-major first spike of window 1
    expected[0, 1, 0, 0, 0] = 3.0 * surrogate(-0.8)  # window 2 has no spike: its first position
    torch.testing.assert_close(current.grad, expected)


def test_float32_compiled_agrees_with_float64_reference_to_float32_rounding():
    inputs, grads = make_inputs(20, 4, 8, 8, 16, 2, per_channel_decay=True, dtype=torch.float32, seed=2)
    (out_a, grads_a) = run(fused, inputs, 2, "relu", False, "tanh", grads)
    (out_b, grads_b) = run(reference, inputs, 2, "relu", False, "tanh", grads)
    assert grads_a[0].dtype == torch.float32
    torch.testing.assert_close(out_a[0], out_b[0], rtol=0, atol=0)  # spikes bit for bit
    torch.testing.assert_close(grads_a[0], grads_b[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads_a[3], grads_b[3], rtol=1e-5, atol=1e-4)


def test_cpu_runs_the_compiled_loops_and_the_switch_turns_them_off(monkeypatch):
    calls = []
    for name in ("spike_pool_forward", "max_pool_forward", "pool_recurrence_backward"):
        kernel = getattr(snu_pool_loops, name)
        monkeypatch.setattr(snu_pool_loops, name, lambda *args, kernel=kernel, name=name: (calls.append(name),
                                                                                        kernel(*args)))
    current = torch.randn(3, 2, 4, 4, 2, requires_grad=True)
    zero = torch.zeros(2, 4, 4, 2)
    for soft in (False, True):
        pooled, _ = snu_pool_sequence(current, SNUState(zero, zero), torch.full((2,), 0.5), 0.8, 2, soft=soft)
        pooled.sum().backward()
    assert calls == ["spike_pool_forward"] + ["pool_recurrence_backward"] * 3 + ["max_pool_forward"] + ["pool_recurrence_backward"] * 3  # one call a step
    assert snu_pool_compiled(current)
    monkeypatch.setenv(snu_module.TORCH_LOOPS_ENV, "1")
    assert not snu_pool_compiled(current)
    calls.clear()
    snu_pool_sequence(current, SNUState(zero, zero), torch.full((2,), 0.5), 0.8, 2)[0].sum().backward()
    assert calls == []


def test_spiking_forward_saves_the_membrane_only():
    """The spiking path keeps s for the backward (the spikes are recomputed from it), no full-size y."""
    saved = []
    current = torch.randn(5, 3, 4, 4, 2, requires_grad=True)
    zero = torch.zeros(3, 4, 4, 2)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        snu_pool_sequence(current, SNUState(zero, zero), torch.full((2,), 0.5), 0.8, 2)
    assert saved.count((5, 3, 4, 4, 2)) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pool": 0}, ConfigError, "pool must be a positive int, got 0"),
        ({"pool": True}, ConfigError, "pool must be a positive int"),
        ({"current": torch.zeros(2, 1, 3, 3)}, ShapeError, r"\(T, N, H, W, C\)"),
        ({"pool": 4}, ShapeError, "H, W >= pool=4"),
        ({"g": "tanh"}, ConfigError, "g must be one of"),
        ({"surrogate": "x"}, ConfigError, "surrogate must be one of"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"current": torch.zeros(2, 1, 3, 3, 1), "pool": 2, "g": "relu", "surrogate": "tanh"}
    args.update(kwargs)
    zero = torch.zeros(1, 3, 3, 1)
    with pytest.raises(error, match=match):
        snu_pool_sequence(args["current"], SNUState(zero, zero), torch.ones(1), 0.8, args["pool"], g=args["g"],
                          surrogate=args["surrogate"])


def _grid_inputs(seed=3):
    torch.manual_seed(seed)
    weight = torch.randn(5, 3, 4, 4, 2, dtype=torch.float64).requires_grad_(True)
    zero = torch.zeros(3, 4, 4, 2, dtype=torch.float64)
    threshold = torch.full((2,), 0.5, dtype=torch.float64, requires_grad=True)
    return weight, SNUState(zero, zero), threshold


@pytest.mark.parametrize("soft", [False, True])
def test_overwrite_writes_the_membrane_over_the_current_with_the_same_values_and_gradients(soft):
    weight, state, threshold = _grid_inputs()
    results = []
    for overwrite in (False, True):
        current = weight * 2.0  # an intermediate: mul saves its inputs, not its output
        pooled, final = snu_pool_sequence(current, state, threshold, 0.8, 2, soft=soft, overwrite=overwrite)
        if overwrite:  # the last step's membrane now sits in the current's memory
            torch.testing.assert_close(current[-1].detach(), final.s.detach())
        else:
            torch.testing.assert_close(current.detach(), weight.detach() * 2.0)
        (pooled.sum() + final.s.sum()).backward()
        results.append((pooled.detach(), weight.grad.clone(), threshold.grad.clone()))
        weight.grad, threshold.grad = None, None
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_overwrite_covers_a_whole_base_through_a_view_and_survives_retain_graph():
    weight, state, threshold = _grid_inputs(4)
    image = (weight * 1.5).permute(0, 1, 4, 2, 3).contiguous()  # (T, N, C, H, W), what a conv's output is like
    current = image.permute(0, 1, 3, 4, 2)  # not contiguous: not written over
    snu_pool_sequence(current, state, threshold, 0.8, 2, overwrite=True)
    torch.testing.assert_close(image.detach(), (weight * 1.5).permute(0, 1, 4, 2, 3).detach())
    base = weight * 1.5
    pooled, _ = snu_pool_sequence(base.view(base.shape), state, threshold, 0.8, 2, overwrite=True)
    assert not torch.equal(base.detach(), (weight * 1.5).detach())  # the view covered it: written over
    pooled.sum().backward(retain_graph=True)
    first = weight.grad.clone()
    pooled.sum().backward()  # the saved membrane is still intact for a second backward
    torch.testing.assert_close(weight.grad, 2 * first)


def test_overwrite_leaves_a_leaf_alone_and_autograd_catches_a_current_that_was_needed():
    weight, state, threshold = _grid_inputs(5)
    before = weight.detach().clone()
    snu_pool_sequence(weight, state, threshold, 0.8, 2, overwrite=True)[0].sum().backward()
    torch.testing.assert_close(weight.detach(), before)  # a leaf that requires grad is never written over
    current = torch.exp(weight)  # exp saves its output for the backward
    pooled, _ = snu_pool_sequence(current, state, threshold, 0.8, 2, overwrite=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        pooled.sum().backward()


def test_backward_writes_the_gradient_over_the_saved_membrane_unless_the_graph_is_kept():
    weight, state, threshold = _grid_inputs(6)
    current = weight * 2.0
    pooled, final = snu_pool_sequence(current, state, threshold, 0.8, 2, overwrite=True)
    pooled.sum().backward(retain_graph=True)  # kept: the membrane stays for the next backward
    torch.testing.assert_close(current[-1].detach(), final.s.detach())
    weight.grad = None
    pooled.sum().backward()  # the last use: dL/d current goes where the membrane was
    torch.testing.assert_close(current.detach(), weight.grad / 2.0)
