"""The digital linear map on oneDNN against ``F.linear`` (values and gradients)."""

import pytest
import torch
from torch.nn import functional as F

from analog_snu.functional import linear as linear_module
from analog_snu.functional.linear import (
    ONEDNN_MIN_ROWS,
    ONEDNN_MIN_WORK,
    TORCH_GEMM_ENV,
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
