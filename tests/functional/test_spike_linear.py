"""Products with spike inputs as gather-sums: values and gradients against ``F.linear`` under autograd,
which inputs take the path, and a whole SNU network against its dense run."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from analog_snu import SNUNetwork
from analog_snu.errors import InputValueError
from analog_snu.functional import linear as linear_module
from analog_snu.functional import spike_linear as spike_module
from analog_snu.functional.linear import TORCH_GEMM_ENV, is_feature_major, linear, onednn_applies
from analog_snu.functional.spike_linear import (
    DENSE_SPIKES_ENV,
    SPIKE_MAX_DENSITY,
    SPIKE_MIN_ROWS,
    SPIKE_MIN_WORK,
    spike_linear,
    spike_rows,
)

# float32 sums of up to 128 terms of O(1) values, in different orders: 1e-5 relative with margin
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def spikes(rows, width, rate=0.1, seed=0, dtype=torch.float32):
    return (torch.rand(rows, width, generator=torch.Generator().manual_seed(seed)) < rate).to(dtype)


def integers(*shape, seed=0, dtype=torch.float32):
    return torch.randint(-20, 21, shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def value_and_grads(fn, x, weight, bias, grad):
    x, weight = x.detach().requires_grad_(), weight.detach().requires_grad_()
    bias = None if bias is None else bias.detach().requires_grad_()
    out = fn(x, weight, bias)
    leaves = [t for t in (x, weight, bias) if t is not None]
    return (out.detach(), *torch.autograd.grad(out, leaves, grad))


def counting(monkeypatch):
    """Count the calls of the sparse product inside :func:`linear`."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return spike_linear(*args, **kwargs)

    monkeypatch.setattr(linear_module, "spike_linear", counted)
    return calls


# -- values and gradients ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_integer_operands_give_f_linear_exactly(dtype, bias, monkeypatch):
    calls = counting(monkeypatch)
    x = spikes(160, 128, dtype=dtype)
    weight, grad = integers(120, 128, seed=1, dtype=dtype), integers(160, 120, seed=2, dtype=dtype)
    b = integers(120, seed=3, dtype=dtype) if bias else None
    got = value_and_grads(linear, x, weight, b, grad)
    assert calls == [(160, 128)]
    want = value_and_grads(F.linear, x, weight, b, grad)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_random_operands_give_f_linear_to_rounding(dtype, bias, monkeypatch):
    calls = counting(monkeypatch)
    generator = torch.Generator().manual_seed(4)
    x = spikes(160, 128, rate=0.18, seed=5, dtype=dtype)
    weight = torch.randn(120, 128, generator=generator, dtype=dtype)
    grad = torch.randn(160, 120, generator=generator, dtype=dtype)
    b = torch.randn(120, generator=generator, dtype=dtype) if bias else None
    got = value_and_grads(linear, x, weight, b, grad)
    assert len(calls) == 1
    want = value_and_grads(F.linear, x.double(), weight.double(), None if b is None else b.double(), grad.double())
    for g, w in zip(got, want):
        assert g.dtype == dtype
        # sums over up to 160 rows of O(1) values (the weight gradient): 1e-4 absolute in float32
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-4 if dtype == torch.float32 else 1e-10)


def test_only_the_needed_gradients_are_computed(monkeypatch):
    x, weight = spikes(160, 128), torch.randn(120, 128)
    grad = torch.randn(160, 120)
    seen = []
    monkeypatch.setattr(spike_module.SpikeRows, "by_column",
                        lambda self, real=spike_module.SpikeRows.by_column: seen.append("columns") or real(self))
    input_products = []

    def input_gradient(grad_rows, w, column_major):
        input_products.append(column_major)
        return torch.mm(grad_rows, w)

    # data input: the weight gradient only (against the formula g^T x)
    lists = spike_rows(x, weight)
    w = weight.clone().requires_grad_()
    spike_linear(x, w, None, lists, input_gradient).backward(grad)
    assert input_products == [] and seen == ["columns"]
    torch.testing.assert_close(w.grad, grad.T @ x, **TOLERANCE)
    # fixed weight: the input gradient only (the column-wise lists are never made)
    lists = spike_rows(x, weight)
    xr = x.clone().requires_grad_()
    spike_linear(xr, weight, None, lists, input_gradient).backward(grad)
    assert input_products == [False] and seen == ["columns"] and lists.columns is None
    torch.testing.assert_close(xr.grad, grad @ weight, **TOLERANCE)


def test_weight_gradient_is_laid_out_as_the_weight_and_accumulates():
    x, grad = spikes(160, 128), integers(160, 120, seed=6)
    weight = integers(120, 128, seed=7).requires_grad_()
    for _ in range(2):
        linear(x, weight).backward(grad)
    assert weight.grad.is_contiguous()  # autograd lays out the transposed view as the weight
    assert torch.equal(weight.grad, 2 * (grad.T @ x))


# -- which products take the gather-sums ------------------------------------------------------------

def test_which_inputs_take_the_gather_sums(monkeypatch):
    rows = -(-SPIKE_MIN_WORK // (128 * 64))  # the smallest R with enough work for 128 -> 64
    weight = torch.randn(64, 128)
    x = spikes(rows, 128, rate=0.1)
    found = spike_rows(x, weight)
    assert found is not None and found.shape == (rows, 128) and found.active == int(x.sum())
    soft = x.clone()
    soft[-1, 3] = 0.5  # one soft value in the last row
    assert spike_rows(soft, weight) is None
    assert spike_rows(spikes(rows, 128, rate=SPIKE_MAX_DENSITY + 0.05), weight) is None
    assert spike_rows(x[:-1], weight) is None  # too little work
    wide = torch.randn(SPIKE_MIN_WORK, 1)
    assert spike_rows(spikes(SPIKE_MIN_ROWS - 1, 1, rate=1.0), wide) is None  # too few rows
    for dtype in (torch.float16, torch.bfloat16):
        assert spike_rows(x.to(dtype), weight.to(dtype)) is None
    assert spike_rows(x.double(), weight) is None  # mixed dtypes: F.linear decides
    assert spike_rows(x.double(), weight.double()) is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert spike_rows(x, weight) is None
    monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
    assert spike_rows(x, weight) is None


def test_the_kernel_does_not_depend_on_the_thread_count():
    """A run's thread count is decided anew in each process (by the machine's load), and its results,
    resumed runs included, may not depend on it: the same products take the same kernel."""
    x, weight = spikes(256, 128, rate=0.15), torch.randn(64, 128)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = spike_rows(x, weight)
        torch.set_num_threads(2)
        two = spike_rows(x, weight)
        assert one is not None and two is not None and np.array_equal(one.lists, two.lists)
        assert spike_rows(spikes(256, 128, rate=0.3), weight) is None  # past the limit on any count
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("case", ["torch_gemm", "soft", "bias_of_another_dtype"])
def test_linear_stays_dense(case, monkeypatch):
    calls = counting(monkeypatch)
    x, weight, bias = spikes(160, 128), torch.randn(120, 128), None
    if case == "torch_gemm":  # every product through F.linear, spikes too
        monkeypatch.setenv(TORCH_GEMM_ENV, "1")
    elif case == "soft":
        x = x * 0.5
    else:  # F.linear decides what it makes of it
        bias = torch.randn(120, dtype=torch.float64)
        assert linear_module.spike_operand(x, weight, bias) is None
        return
    torch.testing.assert_close(linear(x, weight), F.linear(x, weight), **TOLERANCE)
    assert calls == []


def test_a_nan_input_takes_the_dense_product():
    x = spikes(160, 128)
    x[50, 3] = float("nan")
    weight = torch.randn(120, 128)
    assert spike_rows(x, weight) is None
    out = linear(x, weight)
    assert torch.isnan(out[50]).all() and torch.isfinite(out[:50]).all()


@pytest.mark.parametrize("layout", ["feature_major", "every_other_column", "row_major_3d"])
def test_inputs_of_any_layout(layout, monkeypatch):
    """A feature-major (T, N, F_in) input is read column-wise without a copy, and its gradient
    comes feature-major; other strides from a copy. The output is row-major either way."""
    calls = counting(monkeypatch)
    generator = torch.Generator().manual_seed(8)
    base = (torch.rand(6, 24, 256, generator=generator) < 0.1).float()
    if layout == "feature_major":
        x = base[..., :128].movedim(-1, 0).contiguous().movedim(0, -1)
        assert is_feature_major(x)
    elif layout == "every_other_column":
        x = base.reshape(144, 256)[:, ::2]
    else:
        x = base[..., :128].contiguous()
    weight = integers(120, 128, seed=9)
    grad = integers(*x.shape[:-1], 120, seed=10)
    leaf = x.detach().requires_grad_()
    seen = []
    leaf.register_hook(lambda g: seen.append(is_feature_major(g)))
    out = linear(leaf, weight.requires_grad_(), feature_major=True)
    assert len(calls) == 1 and out.is_contiguous() and out.shape == (*x.shape[:-1], 120)
    grad_x, grad_w = torch.autograd.grad(out, (leaf, weight), grad)
    assert seen == [layout == "feature_major"]
    weight.requires_grad_(False)
    assert torch.equal(out, F.linear(x, weight))
    assert torch.equal(grad_x, grad @ weight)
    assert torch.equal(grad_w, grad.reshape(-1, 120).T @ x.reshape(-1, 128))


def test_feature_major_lists_equal_the_row_major_ones():
    x = spikes(144, 128, seed=11)
    weight = torch.randn(120, 128)
    rows, columns = spike_rows(x, weight), spike_rows(x.T.contiguous().T, weight)
    assert not rows.column_major and columns.column_major
    for a, b in zip((rows.lists, rows.starts, rows.counts), (columns.lists, columns.starts, columns.counts)):
        assert (a == b).all()
    for a, b in zip(rows.by_column(), columns.by_column()):
        assert (a == b).all()


# -- a whole network --------------------------------------------------------------------------------

def grid(t, step):
    return torch.round(t / step) * step


@pytest.mark.parametrize("decay", [0.0, 0.5])
@pytest.mark.parametrize("output", ["mean", "sequence"])
def test_snu_network_matches_its_dense_run(decay, output, monkeypatch):
    """Weights on a 1/256 grid and 0/1 inputs make every current an exact sum, so the spikes and
    outputs agree bit for bit whichever way the products sum. With ``decay=0`` and the rectangle
    surrogate (slopes 0 or 1) every gradient is a sum of values on a power-of-two grid too, exact
    in any order: all parameter gradients agree bit for bit; with a decay to rounding."""
    torch.manual_seed(12)
    net = SNUNetwork([128, 128, 128, 10], output=output, decay=decay, threshold=0.25, surrogate="rectangle")
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 2:
                p.copy_(grid(p, 2.0**-8))
            else:  # readout bias and thresholds
                p.copy_(grid(p, 2.0**-4))
    x = torch.bernoulli(torch.full((8, 18, 128), 0.08), generator=torch.Generator().manual_seed(13))
    shape = (18, 10) if output == "mean" else (8, 18, 10)
    grad = grid(torch.randn(shape, generator=torch.Generator().manual_seed(14)), 0.25)
    calls = counting(monkeypatch)
    results = []
    for dense in (False, True):
        if dense:
            monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
        net.zero_grad()
        hidden, y = [], x
        for layer in net.layers:
            y, _ = layer(y)
            hidden.append(y.detach())
        net(x).backward(grad)
        with torch.no_grad():
            logits = net(x)
        results.append((logits, hidden, {name: p.grad.clone() for name, p in net.named_parameters()}))
    # both hidden layers took the gather-sums (3 calls each: the probe, the forward with gradient, without)
    assert calls == [(144, 128)] * 6
    (logits, hidden, grads), (want_logits, want_hidden, want_grads) = results
    for h, w in zip(hidden, want_hidden):
        assert torch.equal(h, w) and 0.02 < float(h.mean()) < SPIKE_MAX_DENSITY
    assert not any(is_feature_major(h) for h in hidden)  # the currents came row-major
    if onednn_applies(x.reshape(-1, 128), net.layers[0].weight_ih.weight):  # dense: feature-major
        assert all(is_feature_major(w) for w in want_hidden)
    assert torch.equal(logits, want_logits)
    for name in grads:
        assert grads[name].abs().sum() > 0, name
        if decay == 0.0:
            assert torch.equal(grads[name], want_grads[name]), name
        else:
            torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_snu_network_nan_input_error_is_unchanged():
    net = SNUNetwork([128, 128, 10])
    x = torch.bernoulli(torch.full((8, 18, 128), 0.08), generator=torch.Generator().manual_seed(15))
    x[3, 4, 5] = float("nan")
    with pytest.raises(InputValueError, match="^input contains NaN or inf values$"):
        net(x)
