"""The lateral-inhibition SNU against a reference loop written from its equations."""

import math

import pytest
import torch

from analog_snu.functional import SNUState, cell_sequence, neuron_cell, snu_li_step, snu_step


def reference_li(current, threshold, decay, g="relu", soft=False):
    """The snu_li equations, one float at a time (module docstring of analog_snu.functional.snu_li).

    current: nested lists [t][n][j]; threshold, decay: lists [j]. Returns y as nested lists.
    """
    steps, batch, feat = len(current), len(current[0]), len(current[0][0])
    act = {"relu": lambda a: max(a, 0.0), "identity": lambda a: a,
           "leaky_relu": lambda a: a if a > 0 else 0.1 * a}[g]
    out = [[[0.0] * feat for _ in range(batch)] for _ in range(steps)]
    for n in range(batch):
        s_prev, y_prev = [0.0] * feat, [0.0] * feat
        for t in range(steps):
            gate = 1.0 - max(y_prev)  # over this sample's neurons only
            s = [act(current[t][n][j] + decay[j] * s_prev[j] * gate) for j in range(feat)]
            if soft:
                y = [1.0 / (1.0 + math.exp(-(s[j] - threshold[j]))) for j in range(feat)]
            else:
                y = [1.0 if s[j] - threshold[j] > 0 else 0.0 for j in range(feat)]
            out[t][n] = y
            s_prev, y_prev = s, y
    return out


def unroll(step, current, threshold, decay, **params):
    zeros = current.new_zeros(current.shape[1:])
    state, ys = SNUState(zeros, zeros), []
    for t in range(current.shape[0]):
        y, state = step(current[t], state, threshold, decay, **params)
        ys.append(y)
    return torch.stack(ys), state


def test_one_spike_resets_the_whole_layer_by_hand():
    # decay 0.8, threshold 1; neuron 1 fires at t=1 (1.5 > 1), so at t=2 neuron 0 restarts from 0.6:
    # snu_li: s0 = 0.6, 0.6, 1.08 -> spikes [0, 0, 1];
    # snu:    s0 = 0.6, 1.08      -> fires at t=2 (its own state was never reset).
    current = torch.tensor([[[0.6, 1.5]], [[0.6, 0.0]], [[0.6, 0.0]]], dtype=torch.float64)
    thr, decay = torch.ones(2, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    y_li, state = unroll(snu_li_step, current, thr, decay)
    assert y_li[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert y_li[:, 0, 1].tolist() == [1.0, 0.0, 0.0]
    assert state.s[0].tolist() == pytest.approx([1.08, 0.0])
    y_snu, _ = unroll(snu_step, current, thr, decay)
    assert y_snu[:, 0, 0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("g", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("soft", [False, True])
def test_matches_reference_loop(g, soft):
    torch.manual_seed(0)
    steps, batch, feat = 9, 4, 5
    current = torch.randn(steps, batch, feat, dtype=torch.float64) * 1.2 + 0.3
    thr = torch.rand(feat, dtype=torch.float64) * 0.5 + 0.5
    decay = torch.rand(feat, dtype=torch.float64)
    expected = torch.tensor(reference_li(current.tolist(), thr.tolist(), decay.tolist(), g, soft), dtype=torch.float64)
    if not soft:
        assert 0 < expected.sum() < expected.numel()  # spikes and silences both occur
    y, _ = unroll(snu_li_step, current, thr, decay, g=g, soft=soft)
    torch.testing.assert_close(y, expected)
    # the registry's path (no fused sequence: loops over the step) gives the same
    cell = neuron_cell("snu_li")
    zeros = current.new_zeros(batch, feat)
    y_reg, _ = cell_sequence(cell, current, cell.state(zeros, zeros), thr, decay,
                             {"g": g, "soft": soft, "surrogate": "tanh"})
    torch.testing.assert_close(y_reg, expected)


def test_sample_output_does_not_depend_on_its_batch():
    torch.manual_seed(1)
    steps, feat = 12, 6
    quiet = torch.rand(steps, 1, feat, dtype=torch.float64) * 0.5  # alone: integrates slowly
    loud = torch.rand(steps, 7, feat, dtype=torch.float64) * 3.0  # spikes almost every step
    thr, decay = torch.ones(feat, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64)
    alone, _ = unroll(snu_li_step, quiet, thr, decay)
    together, _ = unroll(snu_li_step, torch.cat([quiet, loud], dim=1), thr, decay)
    assert together[:, 1:].sum() > 0.5 * together[:, 1:].numel()  # the others do fire a lot
    assert alone.sum() > 0  # and the quiet sample fires too, so a reset of it would show
    torch.testing.assert_close(together[:, :1], alone)

    # neuroaikit's gate, 1 - max over the whole batch, would couple them (the test can tell):
    def batch_max_step(current, state, threshold, decay_):
        s = torch.relu(current + decay_ * state.s * (1.0 - state.y.max()))
        y = (s - threshold > 0).to(s.dtype)
        return y, SNUState(s, y)

    coupled, _ = unroll(batch_max_step, torch.cat([quiet, loud], dim=1), thr, decay)
    coupled_alone, _ = unroll(batch_max_step, quiet, thr, decay)
    torch.testing.assert_close(coupled_alone, alone)  # same cell for a batch of one
    assert not torch.equal(coupled[:, :1], alone)


def test_soft_variant_passes_gradcheck():
    torch.manual_seed(2)
    current = (torch.randn(5, 3, 4, dtype=torch.float64) + 0.5).requires_grad_(True)
    thr = torch.full((4,), 0.6, dtype=torch.float64).requires_grad_(True)
    decay = (torch.rand(4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    s0 = torch.rand(3, 4, dtype=torch.float64).requires_grad_(True)
    y0 = torch.rand(3, 4, dtype=torch.float64).requires_grad_(True)

    def f(c, th, d, s_init, y_init):
        state, ys = SNUState(s_init, y_init), []
        for t in range(c.shape[0]):
            y, state = snu_li_step(c[t], state, th, d, g="identity", soft=True)
            ys.append(y)
        return torch.stack(ys), state.s

    assert torch.autograd.gradcheck(f, (current, thr, decay, s0, y0))


def test_spiking_variant_uses_the_surrogate_through_the_shared_gate():
    """Surrogate gradients equal those of an independent straight-through reference
    (forward Heaviside, backward d tanh), gate included."""
    torch.manual_seed(3)
    base = torch.randn(6, 3, 4, dtype=torch.float64) + 0.6
    thr_base = torch.full((4,), 0.8, dtype=torch.float64)
    grads_out = torch.randn(6, 3, 4, dtype=torch.float64)

    def straight_through(current, state, threshold, decay):
        gate = 1.0 - state.y.amax(dim=-1, keepdim=True)
        s = torch.relu(current + decay * state.s * gate)
        x = s - threshold
        y = (x > 0).to(x.dtype) + (torch.tanh(x) - torch.tanh(x).detach())
        return y, SNUState(s, y)

    grads = []
    for step in (snu_li_step, straight_through):
        current = base.clone().requires_grad_(True)
        thr = thr_base.clone().requires_grad_(True)
        y, _ = unroll(step, current, thr, torch.tensor(0.8, dtype=torch.float64))
        (y * grads_out).sum().backward()
        grads.append((current.grad, thr.grad))
    assert grads[0][0].abs().sum() > 0
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
