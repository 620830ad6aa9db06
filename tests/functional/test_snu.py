"""Hand-computed SNU dynamics and the fused recurrence against autograd."""

import numpy as np
import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.functional import SNUState, snu_loops, snu_sequence, snu_step, time_mean
from analog_snu.functional import snu as snu_module
from analog_snu.functional.surrogates import SURROGATES


def zero_state(n=1, f=1, dtype=torch.float64):
    z = torch.zeros(n, f, dtype=dtype)
    return SNUState(z, z)


def run_steps(currents, threshold=1.0, decay=0.8, g="relu", soft=False):
    """Unroll snu_step over a list of scalar currents for one neuron; return list of (s, y)."""
    state = zero_state()
    thr = torch.tensor([threshold], dtype=torch.float64)
    out = []
    for c in currents:
        y, state = snu_step(torch.tensor([[c]], dtype=torch.float64), state, thr, decay, g, soft)
        out.append((state.s.item(), y.item()))
    return out


def test_integrate_fire_and_reset_by_hand():
    # current 0.6 each step, decay 0.8, threshold 1:
    # s1 = 0.6 (no spike); s2 = 0.6 + 0.8*0.6 = 1.08 > 1 -> spike;
    # s3 = 0.6 + 0.8*1.08*(1-1) = 0.6 (reset); s4 = 1.08 -> spike again.
    out = run_steps([0.6, 0.6, 0.6, 0.6])
    assert [y for _, y in out] == [0.0, 1.0, 0.0, 1.0]
    assert [s for s, _ in out] == pytest.approx([0.6, 1.08, 0.6, 1.08])


def test_decay_without_input_and_threshold_is_strict():
    # one kick of 0.9 then nothing: s = 0.9, 0.72, 0.576 — never reaches threshold 1.
    out = run_steps([0.9, 0.0, 0.0])
    assert [s for s, _ in out] == pytest.approx([0.9, 0.72, 0.576])
    assert all(y == 0.0 for _, y in out)
    # s exactly at the threshold does not fire (y = 1 iff s - threshold > 0)
    assert run_steps([1.0])[0][1] == 0.0


def test_relu_clips_negative_membrane_and_identity_does_not():
    assert run_steps([-0.5], g="relu")[0][0] == 0.0
    assert run_steps([-0.5], g="leaky_relu")[0][0] == pytest.approx(-0.05)
    assert run_steps([-0.5], g="identity")[0][0] == pytest.approx(-0.5)


def test_soft_snu_sigmoid_output_and_proportional_reset():
    out = run_steps([0.6, 0.6], soft=True)
    s1 = 0.6
    y1 = 1 / (1 + torch.exp(torch.tensor(-(s1 - 1.0)))).item()
    s2 = 0.6 + 0.8 * s1 * (1 - y1)
    y2 = 1 / (1 + torch.exp(torch.tensor(-(s2 - 1.0)))).item()
    assert out[0] == pytest.approx((s1, y1))
    assert out[1] == pytest.approx((s2, y2))


def test_surrogate_gradient_matches_tanh_formula():
    s_val = 1.3
    current = torch.tensor([[s_val]], dtype=torch.float64, requires_grad=True)
    thr = torch.tensor([1.0], dtype=torch.float64)
    y, _ = snu_step(current, zero_state(), thr, 0.8, "relu", False, "tanh")
    y.sum().backward()
    expected = 1 - torch.tanh(torch.tensor(s_val - 1.0)) ** 2
    assert current.grad.item() == pytest.approx(expected.item())


def _unrolled(current, s0, y0, threshold, decay, g, soft, surrogate):
    state, ys = SNUState(s0, y0), []
    for t in range(current.shape[0]):
        y, state = snu_step(current[t], state, threshold, decay, g, soft, surrogate)
        ys.append(y)
    return torch.stack(ys), state


@pytest.fixture(params=["compiled", "torch"])
def loops(request, monkeypatch):
    """Run the fused recurrence through the numba loops (the CPU default) or the torch loops (GPU's)."""
    if request.param == "torch":
        monkeypatch.setenv(snu_module.TORCH_LOOPS_ENV, "1")
    return request.param


@pytest.mark.parametrize("g", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("per_neuron_decay", [False, True])
def test_fused_sequence_matches_autograd_unroll(g, soft, per_neuron_decay, loops):
    torch.manual_seed(0)
    steps, batch, feat = 7, 3, 5
    base = torch.randn(steps, batch, feat, dtype=torch.float64) * 1.5
    s0_base = torch.rand(batch, feat, dtype=torch.float64)
    y0_base = (torch.rand(batch, feat, dtype=torch.float64) > 0.5).double()
    thr_base = torch.full((feat,), 0.7, dtype=torch.float64)
    decay_base = torch.rand(feat, dtype=torch.float64) if per_neuron_decay else torch.tensor(0.8, dtype=torch.float64)
    grads_out = torch.randn(steps, batch, feat, dtype=torch.float64)
    grad_s_last = torch.randn(batch, feat, dtype=torch.float64)

    results = []
    fused = lambda c, s0, y0, *rest: snu_sequence(c, SNUState(s0, y0), *rest)  # noqa: E731
    for fn in (fused, _unrolled):
        leaves = [t.clone().requires_grad_(True) for t in (base, s0_base, y0_base, thr_base, decay_base)]
        y, final = fn(*leaves, g, soft, "tanh")
        ((y * grads_out).sum() + (final.s * grad_s_last).sum()).backward()
        results.append((y.detach(), final.s.detach(), [leaf.grad for leaf in leaves]))
    (y_a, s_a, g_a), (y_b, s_b, g_b) = results
    torch.testing.assert_close(y_a, y_b)
    torch.testing.assert_close(s_a, s_b)
    for name, ga, gb in zip(("current", "s0", "y0", "threshold", "decay"), g_a, g_b):
        torch.testing.assert_close(ga, gb, msg=f"gradient of {name} differs")


def _fused_and_unrolled_gradients(surrogate, dtype, grad_y_pattern="dense", steps=6, batch=4, feat=9):
    torch.manual_seed(3)
    base = torch.randn(steps, batch, feat, dtype=dtype)
    thr_base = torch.linspace(0.2, 1.2, feat, dtype=dtype)
    grads_out = torch.randn(steps, batch, feat, dtype=dtype)
    if grad_y_pattern == "expanded":  # what a time-averaged readout sends back: stride 0 over T
        grads_out = torch.randn(batch, feat, dtype=dtype).expand(steps, batch, feat)
    out = []
    for fn in (lambda c, s0, y0, *rest: snu_sequence(c, SNUState(s0, y0), *rest), _unrolled):
        current, thr = base.clone().requires_grad_(True), thr_base.clone().requires_grad_(True)
        zero = torch.zeros(batch, feat, dtype=dtype)
        y, final = fn(current, zero, zero, thr, torch.tensor(0.8, dtype=dtype), "relu", False, surrogate)
        if grad_y_pattern == "final_state_only":  # dL/dy_t = 0 from outside: grad_y_all arrives as None
            final.s.sum().backward()
        else:
            (y * grads_out).sum().backward()
        out.append((y.detach(), current.grad, thr.grad))
    return out


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("grad_y_pattern", ["dense", "expanded", "final_state_only"])
def test_every_surrogate_through_the_fused_sequence_matches_autograd(surrogate, grad_y_pattern, loops):
    (y_a, gc_a, gt_a), (y_b, gc_b, gt_b) = _fused_and_unrolled_gradients(surrogate, torch.float64, grad_y_pattern)
    torch.testing.assert_close(y_a, y_b)
    torch.testing.assert_close(gc_a, gc_b)
    torch.testing.assert_close(gt_a, gt_b)


def test_compiled_loops_in_float32_agree_with_autograd_to_float32_rounding():
    (y_a, gc_a, gt_a), (y_b, gc_b, gt_b) = _fused_and_unrolled_gradients("tanh", torch.float32, steps=20, batch=8,
                                                                           feat=64)
    assert gc_a.dtype == gt_a.dtype == torch.float32
    torch.testing.assert_close(y_a, y_b, rtol=0, atol=0)
    torch.testing.assert_close(gc_a, gc_b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gt_a, gt_b, rtol=1e-5, atol=1e-5)


def test_cpu_sequences_run_through_the_compiled_loops(monkeypatch):
    calls = []
    for name in ("spike_forward", "recurrence_backward"):
        kernel = getattr(snu_loops, name)
        monkeypatch.setattr(snu_loops, name, lambda *args, kernel=kernel, name=name: (calls.append(name), kernel(*args)))
    current = torch.randn(3, 2, 4, requires_grad=True)
    zero = torch.zeros(2, 4)
    y, _ = snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8)
    y.sum().backward()
    y_soft, _ = snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8, soft=True)
    y_soft.sum().backward()
    # the sSNU's forward stays in torch (a sigmoid a step); both backwards are compiled
    assert calls == ["spike_forward", "recurrence_backward", "recurrence_backward"]


def test_soft_sequence_passes_gradcheck():
    torch.manual_seed(1)
    current = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    thr = torch.full((3,), 0.5, dtype=torch.float64, requires_grad=True)
    decay = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    state = zero_state(2, 3)

    def f(c, th, d):
        return snu_sequence(c, state, th, d, "identity", True)[0]

    assert torch.autograd.gradcheck(f, (current, thr, decay))


def test_unknown_names_raise():
    with pytest.raises(ConfigError, match="g must be one of"):
        snu_sequence(torch.zeros(1, 1, 1), zero_state(dtype=torch.float32), torch.ones(1), 0.8, g="tanh")
    with pytest.raises(ConfigError, match="surrogate must be one of"):
        snu_sequence(torch.zeros(1, 1, 1), zero_state(dtype=torch.float32), torch.ones(1), 0.8, surrogate="x")


def test_spiking_sequence_keeps_two_sequence_tensors_one_of_them_its_output():
    """The CPU spiking path saves s and its own output y (alive anyway), not a separate gate tensor."""
    steps, batch, feat = 5, 3, 4
    saved = []

    def pack(tensor):
        saved.append((tuple(tensor.shape), tensor.data_ptr()))
        return tensor

    current = torch.randn(steps, batch, feat, requires_grad=True)
    zero = torch.zeros(batch, feat)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y, _ = snu_sequence(current, SNUState(zero, zero), torch.full((feat,), 0.5), 0.8)
    sequence_sized = [ptr for shape, ptr in saved if shape == (steps, batch, feat)]
    assert len(sequence_sized) == 2
    assert y.data_ptr() in sequence_sized


def test_environment_switch_selects_the_torch_loops_on_cpu(monkeypatch):
    def refuse(*args):
        raise AssertionError("compiled loop called")

    monkeypatch.setattr(snu_loops, "spike_forward", refuse)
    monkeypatch.setattr(snu_loops, "recurrence_backward", refuse)
    monkeypatch.setenv(snu_module.TORCH_LOOPS_ENV, "1")
    current = torch.randn(3, 2, 4, requires_grad=True)
    zero = torch.zeros(2, 4)
    y, _ = snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8)
    y.sum().backward()
    assert current.grad is not None
    monkeypatch.delenv(snu_module.TORCH_LOOPS_ENV)
    with pytest.raises(AssertionError, match="compiled loop called"):
        snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8)


def test_compiled_backward_reads_a_time_broadcast_output_gradient_as_it_is(monkeypatch):
    """An expanded dL/dy (a time-averaged readout) reaches the loop as one (N, F) slice, with the same bits."""
    shapes = []
    kernel = snu_loops.recurrence_backward
    monkeypatch.setattr(snu_loops, "recurrence_backward",
                        lambda grad_y, *rest: (shapes.append(grad_y.shape), kernel(grad_y, *rest)))
    torch.manual_seed(5)
    base = torch.randn(6, 4, 9) + 0.5
    grad_step = torch.randn(4, 9)
    grads = []
    for grad_y in (grad_step.expand(6, 4, 9), grad_step.expand(6, 4, 9).contiguous()):
        current, thr = base.clone().requires_grad_(True), torch.full((9,), 0.6, requires_grad=True)
        zero = torch.zeros(4, 9)
        y, _ = snu_sequence(current, SNUState(zero, zero), thr, 0.8)
        y.backward(grad_y)
        grads.append((current.grad, thr.grad))
    assert shapes == [(1, 4, 9), (6, 4, 9)]
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


@pytest.mark.parametrize("kind", ["tanh", "given"])
def test_recurrence_backward_may_read_its_slopes_from_its_output_buffer(kind):
    """The tanh surrogate's sigmoid is written into grad_a's memory; the loop reads each row before writing it."""
    torch.manual_seed(6)
    steps, batch, feat = 5, 3, 7
    s_all = torch.randn(steps, batch, feat).relu_()
    y_all = (s_all > 0.4).float()
    slope = torch.rand(steps, batch, feat)
    code = snu_loops.SLOPE_TANH if kind == "tanh" else snu_loops.SLOPE_GIVEN
    args = (torch.randn(steps, batch, feat).numpy(),)
    rest = (s_all.numpy(), y_all.numpy(), True, np.full(feat, 0.8, np.float32), torch.randn(batch, feat).numpy(), 0,
            np.float32(0.1))
    separate, shared = torch.empty(steps, batch, feat), slope.clone()
    thr_separate, thr_shared = np.zeros(feat), np.zeros(feat)
    snu_loops.recurrence_backward(*args, slope.numpy(), code, *rest, separate.numpy(), thr_separate)
    snu_loops.recurrence_backward(*args, shared.numpy(), code, *rest, shared.numpy(), thr_shared)
    assert torch.equal(separate, shared) and np.array_equal(thr_separate, thr_shared)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_mean_is_torchs_mean_bit_for_bit_with_a_broadcast_gradient(dtype):
    torch.manual_seed(7)
    x = torch.rand(20, 5, 33, dtype=dtype)
    weight = torch.randn(5, 33, dtype=dtype)
    results = []
    for mean in (lambda t: t.mean(0), time_mean):
        leaf = x.clone().requires_grad_(True)
        seen = []
        inner = leaf * 1.0
        inner.register_hook(lambda grad: seen.append(grad.stride(0)))
        out = mean(inner)
        (out * weight).sum().backward()
        results.append((out.detach(), leaf.grad, seen[0]))
    (out_a, grad_a, _), (out_b, grad_b, stride_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b)
    assert stride_b == 0  # handed on as a view over the steps, not written out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_a_transposed_current_gives_what_its_contiguous_copy_gives(dtype, soft, loops):
    """A dense but not contiguous current (a (N, T, F) tensor viewed as (T, N, F)): the compiled loops
    fill the strided outputs themselves (they once wrote into a contiguous copy, which was lost).
    The same values and gradients as for the contiguous copy (spikes and states bit for bit; torch's
    sigmoid and sums may round differently on another layout) and as the autograd unroll."""
    torch.manual_seed(8)
    batch, steps, feat = 4, 5, 6
    base = torch.randn(batch, steps, feat, dtype=dtype) + 0.5
    grads_out = torch.randn(steps, batch, feat, dtype=dtype)
    zero = torch.zeros(batch, feat, dtype=dtype)
    results = []
    for layout in ("transposed", "contiguous", "unrolled"):
        leaf, thr = base.clone().requires_grad_(True), torch.full((feat,), 0.6, dtype=dtype, requires_grad=True)
        current = leaf.transpose(0, 1) if layout != "contiguous" else leaf.transpose(0, 1).contiguous()
        if layout == "unrolled":
            y, final = _unrolled(current, zero, zero, thr, torch.tensor(0.8, dtype=dtype), "relu", soft, "tanh")
        else:
            y, final = snu_sequence(current, SNUState(zero, zero), thr, 0.8, soft=soft)
        ((y * grads_out).sum() + final.s.sum()).backward()
        results.append((y.detach(), final.s.detach(), leaf.grad, thr.grad))
    transposed, contiguous, unrolled = results
    assert torch.equal(transposed[1], contiguous[1])
    if not soft:
        assert torch.equal(transposed[0], contiguous[0])
    for name, a, b, c in zip(("y", "s", "current grad", "threshold grad"), transposed, contiguous, unrolled):
        torch.testing.assert_close(a, b, msg=f"{name} differs from the contiguous copy's")
        torch.testing.assert_close(a, c, msg=f"{name} differs from the unroll's")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_surrogate_reaches_the_loop_as_sigmoid_of_twice_the_distance_bit_for_bit(dtype, monkeypatch):
    """The compiled backward forms z = sigmoid(2 (s - threshold)) as sigmoid(2 s - 2 threshold) in one pass:
    the same bits as the formula, also at s = threshold and for tiny differences."""
    seen = []
    kernel = snu_loops.recurrence_backward

    def spy(grad_y, slope, kind, s_all, *rest):
        seen.append((slope.copy(), kind, s_all.copy()))
        return kernel(grad_y, slope, kind, s_all, *rest)

    monkeypatch.setattr(snu_loops, "recurrence_backward", spy)
    torch.manual_seed(9)
    steps, batch, feat = 4, 3, 8
    thr = torch.cat([torch.tensor([0.0, 1e-30, 0.3, 1.0 / 3.0]), torch.rand(feat - 4) * 2]).to(dtype).requires_grad_(True)
    current = torch.randn(steps, batch, feat, dtype=dtype) + 0.5
    current[0, 0] = thr.detach()  # s = threshold exactly at the first step
    current[0, 1] = thr.detach() + 1e-7  # and a hair above
    current.requires_grad_(True)
    zero = torch.zeros(batch, feat, dtype=dtype)
    y, _ = snu_sequence(current, SNUState(zero, zero), thr, 0.8, g="identity")
    y.sum().backward()
    (slope, kind, s_all), = seen
    assert kind == snu_loops.SLOPE_TANH
    s_all = torch.from_numpy(s_all)
    expected = torch.sigmoid((s_all - thr.detach()) * 2.0)
    assert torch.equal(torch.from_numpy(slope), expected)
