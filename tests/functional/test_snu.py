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


# -- feature-major storage: a (T, N, F) tensor over (F, T, N) memory ------------------------------

def _feature_major(t):
    """``t`` (T, N, F) stored feature-major: the same values, strides (N, 1, T*N)."""
    return t.permute(2, 0, 1).contiguous().permute(1, 2, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("grad_y_steps", [1, 6])
@pytest.mark.parametrize("slope_kind", ["tanh", "given"])
def test_feature_major_loops_match_the_time_major_loops(dtype, g, grad_y_steps, slope_kind):
    """Spikes and membrane bit for bit given the same current; gradients to rounding (the threshold's
    gradient sums in another order), with the slopes in a separate buffer or in grad_a's own memory."""
    rng = np.random.default_rng(10)
    steps, batch, feat = 6, 5, 7
    current = rng.normal(0.3, 0.8, (steps, batch, feat)).astype(dtype)
    s0 = rng.uniform(0, 1, (batch, feat)).astype(dtype)
    y0 = (rng.uniform(0, 1, (batch, feat)) > 0.5).astype(dtype)
    threshold = rng.uniform(0.2, 0.9, feat).astype(dtype)
    decay = rng.uniform(0.5, 1.0, feat).astype(dtype)
    code, slope_code = snu_loops.G_CODES[g], snu_loops.SLOPE_TANH if slope_kind == "tanh" else snu_loops.SLOPE_GIVEN
    leaky = dtype(0.1)
    fm = lambda a: np.ascontiguousarray(np.moveaxis(a, -1, 0))  # noqa: E731  (T, N, F) -> (F, T, N)

    s_tm, y_tm = np.empty_like(current), np.empty_like(current)
    snu_loops.spike_forward(current, s0, y0, threshold, decay, code, leaky, s_tm, y_tm)
    s_fm, y_fm = np.empty_like(fm(current)), np.empty_like(fm(current))
    snu_loops.spike_forward_fm(fm(current), np.ascontiguousarray(s0.T), np.ascontiguousarray(y0.T), threshold, decay,
                               code, leaky, s_fm, y_fm)
    assert np.array_equal(s_fm, fm(s_tm)) and np.array_equal(y_fm, fm(y_tm))
    assert 0 < y_tm.mean() < 1

    grad_y = rng.normal(0, 1, (grad_y_steps, batch, feat)).astype(dtype)
    grad_s_last = rng.normal(0, 1, (batch, feat)).astype(dtype)
    slope = rng.uniform(0.05, 0.95, (steps, batch, feat)).astype(dtype)
    grad_a_tm, thr_tm = np.empty_like(current), np.zeros(feat)
    snu_loops.recurrence_backward(grad_y, slope, slope_code, s_tm, y_tm, True, decay, grad_s_last, code, leaky, grad_a_tm,
                                  thr_tm)
    for shared in (False, True):
        grad_a_fm, thr_fm = np.empty_like(s_fm), np.zeros(feat)
        slope_fm = fm(slope)
        if shared:  # the sigmoid written into grad_a's memory, as _feature_major_backward does
            grad_a_fm[...] = slope_fm
            slope_fm = grad_a_fm
        snu_loops.spike_backward_fm(fm(grad_y), slope_fm, slope_code, s_fm, y_fm, decay, np.ascontiguousarray(grad_s_last.T),
                                    code, leaky, grad_a_fm, thr_fm)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(grad_a_fm, fm(grad_a_tm), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(thr_fm, thr_tm, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("g", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("per_neuron_decay", [False, True])
@pytest.mark.parametrize("grad_pattern", ["dense", "feature_major", "time_mean", "final_state_only"])
def test_a_feature_major_current_runs_feature_major_and_matches_the_unroll(dtype, g, per_neuron_decay, grad_pattern,
                                                                          monkeypatch):
    """The compiled spiking loops read a feature-major current as it is and return y (and the
    current's gradient) feature-major; values and every gradient as the time-major path and the
    autograd unroll (spikes and states bit for bit against the time-major path)."""
    calls = []
    for name in ("spike_forward_fm", "spike_backward_fm"):
        kernel = getattr(snu_loops, name)
        monkeypatch.setattr(snu_loops, name, lambda *args, kernel=kernel, name=name: (calls.append(name), kernel(*args)))
    torch.manual_seed(11)
    steps, batch, feat = 6, 4, 9
    base = torch.randn(steps, batch, feat, dtype=dtype) + 0.4
    s0_base = torch.rand(batch, feat, dtype=dtype)
    y0_base = (torch.rand(batch, feat) > 0.5).to(dtype)
    thr_base = torch.linspace(0.3, 1.1, feat, dtype=dtype)
    decay_base = torch.rand(feat, dtype=dtype) if per_neuron_decay else torch.tensor(0.8, dtype=dtype)
    grad_out = {"dense": torch.randn(steps, batch, feat, dtype=dtype),
                "feature_major": _feature_major(torch.randn(steps, batch, feat, dtype=dtype))}.get(grad_pattern)
    weight = torch.randn(batch, feat, dtype=dtype)
    results = {}
    for path in ("feature_major", "time_major", "unrolled"):
        leaves = [t.clone().requires_grad_(True) for t in (base, s0_base, y0_base, thr_base, decay_base)]
        current = _feature_major(leaves[0]) if path == "feature_major" else leaves[0] * 1.0
        if path == "unrolled":
            y, final = _unrolled(current, *leaves[1:], g, False, "tanh")
        else:
            y, final = snu_sequence(current, SNUState(leaves[1], leaves[2]), *leaves[3:], g=g)
        if grad_pattern == "time_mean":
            (time_mean(y) * weight).sum().backward()
        elif grad_pattern == "final_state_only":
            (final.s * weight).sum().backward()
        else:
            ((y * grad_out).sum() + (final.s * weight).sum()).backward()
        results[path] = (y, final, [leaf.grad for leaf in leaves])
    assert calls == ["spike_forward_fm", "spike_backward_fm"]
    y_fm, final_fm, grads_fm = results["feature_major"]
    assert y_fm.shape == (steps, batch, feat) and y_fm.stride() == (batch, 1, steps * batch)
    assert final_fm.s.is_contiguous() and final_fm.s.shape == (batch, feat)
    y_tm, final_tm, grads_tm = results["time_major"]
    assert torch.equal(y_fm, y_tm) and torch.equal(final_fm.s, final_tm.s) and torch.equal(final_fm.y, final_tm.y)
    for other in ("time_major", "unrolled"):
        y_o, final_o, grads_o = results[other]
        torch.testing.assert_close(y_fm.detach(), y_o.detach())
        for name, a, b in zip(("current", "s0", "y0", "threshold", "decay"), grads_fm, grads_o):
            torch.testing.assert_close(a, b, msg=f"gradient of {name} differs from the {other} path's")


def test_the_sequences_current_gradient_has_the_currents_layout():
    torch.manual_seed(12)
    leaf = torch.randn(5, 3, 4, requires_grad=True)
    current = _feature_major(leaf)
    zero = torch.zeros(3, 4)
    seen = []
    current.register_hook(lambda grad: seen.append(grad.stride()))
    y, _ = snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8)
    y.sum().backward()
    assert seen == [(3, 1, 15)]


@pytest.mark.parametrize("setting", ["soft", "torch_loops"])
def test_a_feature_major_current_elsewhere_runs_time_major_on_a_copy(setting, monkeypatch):
    """The sSNU and the torch loops index time-major: they take a contiguous copy, as before."""
    def refuse(*args):
        raise AssertionError("feature-major loop called")

    monkeypatch.setattr(snu_loops, "spike_forward_fm", refuse)
    monkeypatch.setattr(snu_loops, "spike_backward_fm", refuse)
    if setting == "torch_loops":
        monkeypatch.setenv(snu_module.TORCH_LOOPS_ENV, "1")
    torch.manual_seed(13)
    base = torch.randn(5, 3, 4) + 0.5
    zero = torch.zeros(3, 4)
    soft = setting == "soft"
    outs = []
    for current in (_feature_major(base).requires_grad_(), base.clone().requires_grad_()):
        y, _ = snu_sequence(current, SNUState(zero, zero), torch.full((4,), 0.5), 0.8, soft=soft)
        y.sum().backward()
        assert y.is_contiguous()
        outs.append((y.detach(), current.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_mean_of_a_feature_major_tensor(dtype):
    """The same values as torch's mean, the (N, F) result a transposed view, the gradient still a
    stride-0 view over the steps (read by the compiled backward as one (F, N) block)."""
    torch.manual_seed(14)
    x = torch.rand(20, 5, 33, dtype=dtype)
    weight = torch.randn(5, 33, dtype=dtype)
    leaf = x.clone().requires_grad_(True)
    inner = _feature_major(leaf)
    seen = []
    inner.register_hook(lambda grad: seen.append(grad.stride(0)))
    out = time_mean(inner)
    (out * weight).sum().backward()
    torch.testing.assert_close(out.detach(), x.mean(0), rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    assert out.stride() == (1, 5)
    assert torch.equal(leaf.grad, (weight / 20).expand(20, 5, 33))
    assert seen == [0]
