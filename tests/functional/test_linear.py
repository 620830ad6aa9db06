"""The digital linear map on oneDNN against ``F.linear`` (values and gradients)."""

import pytest
import torch
from torch.nn import functional as F

from analog_snu.functional import linear as linear_module
from analog_snu.functional.linear import (
    ONEDNN_MIN_ROWS,
    ONEDNN_MIN_WORK,
    TORCH_GEMM_ENV,
    feature_rows,
    is_feature_major,
    linear,
    onednn_applies,
    product_t,
)

needs_onednn = pytest.mark.skipif(
    linear_module._ONEDNN_LINEAR is None or not torch.backends.mkldnn.is_available(),
    reason="torch built without oneDNN",
)

# float32 products over K <= 256 terms of O(1) values: the two backends sum in different orders,
# each term rounded to 2^-24 relative; 1e-5 absolute / relative bounds that with margin.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def _operands(rows, f_in, f_out, bias, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, f_in, generator=generator, requires_grad=True)
    weight = torch.randn(f_out, f_in, generator=generator, requires_grad=True)
    b = torch.randn(f_out, generator=generator, requires_grad=True) if bias else None
    return x, weight, b


def _value_and_grads(fn, x, weight, bias, grad_out):
    out = fn(x, weight, bias)
    out.backward(grad_out)
    grads = [t.grad.clone() if t is not None and t.grad is not None else None for t in (x, weight, bias)]
    for t in (x, weight, bias):
        if t is not None:
            t.grad = None
    return out.detach(), grads


@needs_onednn
@pytest.mark.parametrize("bias", [False, True])
def test_onednn_products_equal_f_linear(bias):
    x, weight, b = _operands(144, 128, 120, bias)
    assert onednn_applies(x, weight)
    grad_out = torch.randn(144, 120, generator=torch.Generator().manual_seed(1))
    got, got_grads = _value_and_grads(linear, x, weight, b, grad_out)
    want, want_grads = _value_and_grads(F.linear, x, weight, b, grad_out)
    torch.testing.assert_close(got, want, **TOLERANCE)
    for g, w in zip(got_grads, want_grads):
        if w is None:
            assert g is None
        else:
            torch.testing.assert_close(g, w, **TOLERANCE)


@needs_onednn
def test_gradients_by_hand_and_no_input_gradient_for_data():
    # x is data (no gradient): the backward computes only dL/dW = g^T x, here against the formula
    x = torch.randn(128, 160, generator=torch.Generator().manual_seed(2))
    weight = torch.randn(128, 160, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert onednn_applies(x, weight)
    grad_out = torch.randn(128, 128, generator=torch.Generator().manual_seed(4))
    out = linear(x, weight)
    out.backward(grad_out)
    torch.testing.assert_close(out, (x.double() @ weight.double().T).float(), **TOLERANCE)
    torch.testing.assert_close(weight.grad, (grad_out.double().T @ x.double()).float(), **TOLERANCE)
    assert x.grad is None


@needs_onednn
def test_sequence_input_keeps_its_leading_dimensions():
    x = torch.randn(4, 32, 128, generator=torch.Generator().manual_seed(5))
    weight = torch.randn(128, 128, generator=torch.Generator().manual_seed(6))
    assert onednn_applies(x.reshape(-1, 128), weight)
    out = linear(x, weight)
    assert out.shape == (4, 32, 128)
    torch.testing.assert_close(out, F.linear(x, weight), **TOLERANCE)


def test_which_products_take_onednn(monkeypatch):
    weight = torch.zeros(64, 128)
    rows = ONEDNN_MIN_WORK // (64 * 128)
    big = torch.zeros(rows, 128)
    assert onednn_applies(big, weight) == (linear_module._ONEDNN_LINEAR is not None
                                           and torch.backends.mkldnn.is_available())
    assert not onednn_applies(torch.zeros(rows - 1, 128), weight)  # too small: F.linear is faster
    wide = torch.zeros(ONEDNN_MIN_WORK, 1)  # enough work, too few rows: a matrix-vector product
    assert not onednn_applies(torch.zeros(ONEDNN_MIN_ROWS - 1, 1), wide)
    assert not onednn_applies(big.double(), weight.double())  # oneDNN has no float64 products
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # the user's switch for torch's oneDNN
    try:
        assert not onednn_applies(big, weight)
    finally:
        torch.backends.mkldnn.enabled = before
    monkeypatch.setenv(TORCH_GEMM_ENV, "1")
    assert not onednn_applies(big, weight)


def test_float64_and_small_products_are_f_linear_exactly():
    x, weight, b = _operands(8, 12, 10, True)
    assert torch.equal(linear(x, weight, b), F.linear(x, weight, b))
    x64, w64 = x.detach().double().repeat(200, 1), weight.detach().double()
    assert torch.equal(linear(x64, w64), F.linear(x64, w64))


@needs_onednn
@pytest.mark.parametrize("layout", ["expanded", "every_other_column", "transposed", "every_other_row"])
def test_strided_inputs_and_a_broadcast_gradient(layout):
    # views as autograd and callers hand them over; out.sum() sends a stride-0 gradient back
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(300, 320, generator=generator)
    x = {"expanded": torch.randn(1, 160, generator=generator).expand(128, 160),
         "every_other_column": base[:128, ::2],
         "transposed": torch.randn(160, 128, generator=generator).t(),
         "every_other_row": base[::2, :160]}[layout].detach().requires_grad_()
    weight = torch.randn(128, 160, generator=generator, requires_grad=True)
    bias = torch.randn(128, generator=generator, requires_grad=True)
    assert onednn_applies(x, weight)
    out, want = linear(x, weight, bias), F.linear(x, weight, bias)
    torch.testing.assert_close(out, want, **TOLERANCE)
    # the sums over 128-150 rows of O(10) values: 1e-4 absolute
    for got, expected in zip(torch.autograd.grad(out.sum(), (x, weight, bias)),
                             torch.autograd.grad(want.sum(), (x, weight, bias))):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_operands_with_other_strides_reach_onednn_as_contiguous_copies(monkeypatch):
    # a tile's column slice (rows 784 apart, 392 wide) took oneDNN's slow reference path in the
    # weight gradient; contiguous tensors and transposed views go in as they are
    x = torch.randn(1280, 784)
    dense = linear_module._dense
    assert dense(x) is x and dense(x.t()).data_ptr() == x.data_ptr()
    sliced = x[:, :392]
    copy = dense(sliced.t())
    assert copy.is_contiguous() and copy.data_ptr() != x.data_ptr()
    torch.testing.assert_close(copy, sliced.t(), rtol=0, atol=0)
    seen = []
    monkeypatch.setattr(linear_module, "_ONEDNN_LINEAR", lambda a, b, *rest: seen.append((a, b)) or a @ b.T)
    grad = torch.randn(1280, 256)
    product_t(grad.t(), sliced.t())
    assert all(t.is_contiguous() or t.t().is_contiguous() for t in seen[0])


def test_product_t_is_a_times_b_transposed():
    generator = torch.Generator().manual_seed(3)
    a, b = torch.randn(300, 100, generator=generator), torch.randn(120, 100, generator=generator)
    torch.testing.assert_close(product_t(a, b), a @ b.T, rtol=1e-5, atol=1e-4)  # oneDNN: 3.6M MACs
    small = a[:4, :10], b[:5, :10]  # below the bar: plain torch, bit for bit
    assert torch.equal(product_t(*small), small[0] @ small[1].T)


# -- feature-major outputs: a (T, N, F) tensor over (F, T, N) memory ------------------------------

def _feature_major(t):
    return t.movedim(-1, 0).contiguous().movedim(0, -1)


def test_feature_major_and_feature_rows():
    x = torch.randn(4, 3, 5)
    fm = _feature_major(x)
    assert not is_feature_major(x) and is_feature_major(fm)
    assert fm.stride() == (3, 1, 12)
    assert not is_feature_major(x.transpose(0, 1))  # neither layout
    for t in (x, fm):  # views of the same memory
        rows = feature_rows(t)
        assert rows.shape == (12, 5) and rows.data_ptr() == t.data_ptr()
        assert torch.equal(rows, x.reshape(12, 5))
    other = x.transpose(0, 1)
    assert torch.equal(feature_rows(other), other.reshape(12, 5)) and feature_rows(other).is_contiguous()


@needs_onednn
@pytest.mark.parametrize("input_layout", ["row_major", "feature_major"])
@pytest.mark.parametrize("grad_layout", ["row_major", "feature_major"])
def test_feature_major_output_equals_f_linear_with_its_gradients(input_layout, grad_layout):
    """``feature_major=True``: F.linear's values in (F_out, T, N) memory; the gradients of any
    layout; the input gradient feature-major when the input or the output gradient is."""
    generator = torch.Generator().manual_seed(8)
    base = torch.randn(6, 24, 128, generator=generator)
    weight = torch.randn(120, 128, generator=generator, requires_grad=True)
    grad = torch.randn(6, 24, 120, generator=generator)
    assert onednn_applies(base.reshape(-1, 128), weight)
    results = []
    for fm_out in (True, False):
        leaf = base.clone().requires_grad_()
        x = _feature_major(leaf) if input_layout == "feature_major" else leaf * 1.0
        seen = []
        x.register_hook(lambda g: seen.append(is_feature_major(g)))
        out = linear(x, weight, feature_major=True) if fm_out else F.linear(x, weight)
        assert out.shape == (6, 24, 120) and is_feature_major(out) == fm_out
        g = _feature_major(grad) if grad_layout == "feature_major" else grad
        grad_x, grad_w = torch.autograd.grad(out, (x, weight), g)
        results.append((out.detach(), grad_x, grad_w))
        if fm_out:
            assert seen == [input_layout == "feature_major" or grad_layout == "feature_major"]
    (out, grad_x, grad_w), (want, want_x, want_w) = results
    torch.testing.assert_close(out, want, **TOLERANCE)
    torch.testing.assert_close(grad_x, want_x, rtol=1e-5, atol=1e-4)  # sums over 120 terms
    torch.testing.assert_close(grad_w, want_w, rtol=1e-5, atol=1e-3)  # sums over 144 terms of O(10)



@needs_onednn
def test_feature_major_products_read_their_operands_without_copies(monkeypatch):
    """Forward ``W x^T``, backward ``grad^T x`` and ``W^T grad^T``: oneDNN receives contiguous first
    operands (it copies any other), the second contiguous or transposed."""
    seen = []
    onednn = linear_module._ONEDNN_LINEAR
    monkeypatch.setattr(linear_module, "_ONEDNN_LINEAR", lambda a, b, *rest: seen.append((a, b)) or onednn(a, b, *rest))
    generator = torch.Generator().manual_seed(9)
    x = _feature_major(torch.randn(6, 24, 128, generator=generator)).requires_grad_()
    weight = torch.randn(120, 128, generator=generator, requires_grad=True)
    out = linear(x, weight, feature_major=True)
    out.backward(_feature_major(torch.randn(6, 24, 120, generator=generator)))
    assert len(seen) == 3
    assert all(a.is_contiguous() and (b.is_contiguous() or b.t().is_contiguous()) for a, b in seen)
    assert seen[0][1].data_ptr() == x.data_ptr()  # the input read in place


@pytest.mark.parametrize("case", ["bias", "small", "float64", "torch_gemm"])
def test_feature_major_falls_back_to_a_row_major_f_linear(case, monkeypatch):
    generator = torch.Generator().manual_seed(10)
    rows = 4 if case == "small" else 144
    dtype = torch.float64 if case == "float64" else torch.float32
    x = torch.randn(rows, 128, generator=generator, dtype=dtype)
    weight = torch.randn(120, 128, generator=generator, dtype=dtype)
    bias = torch.randn(120, generator=generator, dtype=dtype) if case == "bias" else None
    if case == "torch_gemm":
        monkeypatch.setenv(TORCH_GEMM_ENV, "1")
    out = linear(x, weight, bias, feature_major=True)
    assert out.is_contiguous()
    if case != "bias":
        assert torch.equal(out, F.linear(x, weight, bias))
