"""The compiled normal draws of the periphery loops: the ziggurat tables from their defining equations, the samples against N(0, 1)."""

import math

import numpy as np
import pytest
import torch

from analog_snu.functional import periphery_loops


def draws(n, seed=0, dtype=np.float64, start=0):
    out = np.empty(n, dtype=dtype)
    key, stream = periphery_loops.new_streams(seed)
    periphery_loops.fill_normals(key, start, out, stream, np.empty(n, dtype=np.uint8))
    return out


def density(x):
    return math.exp(-0.5 * x * x)


def test_ziggurat_layers_have_equal_areas_and_the_acceptance_ratios():
    k, w, f = periphery_loops.ziggurat_tables()
    x = w * 2.0**52  # x_i, the right edge of layer i (x_0: the base layer's width with the tail folded in)
    r, area = x[-1], 4.92867323399e-3
    tail = math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))  # integral of exp(-t^2/2) beyond r
    assert r * density(r) + tail == pytest.approx(area, rel=1e-9)  # the base layer with the tail
    assert x[0] * density(r) == pytest.approx(area, rel=1e-12)  # ... as one rectangle of the same area
    for i in range(2, 256):  # every other layer: the rectangle between f(x_i) and f(x_{i-1}) under x_i
        assert x[i] * (density(x[i - 1]) - density(x[i])) == pytest.approx(area, rel=1e-9)
        assert float(k[i]) / 2.0**52 == pytest.approx(x[i - 1] / x[i], rel=1e-12)
        assert f[i] == pytest.approx(density(x[i]), rel=1e-12)
    assert k[1] == 0 and f[0] == 1.0  # the top layer always takes the wedge test
    assert x[1] * (1.0 - density(x[1])) == pytest.approx(area, rel=1e-6)  # the top layer reaches f = 1


@pytest.fixture(scope="module")
def sample():
    return torch.from_numpy(draws(2_000_000, seed=11))


def test_moments_are_those_of_a_standard_normal(sample):
    n = sample.numel()
    assert abs(float(sample.mean())) < 5 / math.sqrt(n)
    assert abs(float(sample.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float((sample**3).mean())) < 5 * math.sqrt(15 / n)
    assert abs(float((sample**4).mean()) - 3) < 5 * math.sqrt(96 / n)


def test_distribution_passes_kolmogorov_smirnov_and_fine_bins(sample):
    n = sample.numel()
    ordered = sample.sort().values
    cdf = torch.special.ndtr(ordered)
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    ks = float(torch.maximum(steps[1:] - cdf, cdf - steps[:-1]).max())
    assert ks < 1.95 / math.sqrt(n)  # 0.1 % level
    # 400 bins over [-5, 5]: a wrong wedge or layer edge would show in the bins it covers
    edges = torch.linspace(-5, 5, 401, dtype=torch.float64)
    counts = torch.histc(sample, bins=400, min=-5, max=5)
    expected = n * (torch.special.ndtr(edges[1:]) - torch.special.ndtr(edges[:-1]))
    used = expected > 20
    chi2 = float((((counts - expected) ** 2) / expected)[used].sum())
    dof = int(used.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_tail_beyond_the_base_layer_is_the_normal_tail(sample):
    r = 3.6541528853610088
    tail = sample[sample.abs() > r].abs()
    p = math.erfc(r / math.sqrt(2))
    n = sample.numel()
    assert abs(tail.numel() - n * p) < 5 * math.sqrt(n * p)
    # conditional law of |x| beyond r: P(|x| > t | |x| > r) = erfc(t / sqrt 2) / erfc(r / sqrt 2)
    ordered = tail.sort().values.double()
    survival = torch.special.erfc(ordered / math.sqrt(2)) / p
    m = ordered.numel()
    empirical = 1 - torch.arange(1, m + 1, dtype=torch.float64) / m
    assert float((survival - empirical).abs().max()) < 1.95 / math.sqrt(m) + 1 / m
    signs = (sample[sample.abs() > r] > 0).double().mean()
    assert abs(float(signs) - 0.5) < 5 * math.sqrt(0.25 / m)


def test_draws_are_a_function_of_key_and_counter():
    whole = draws(10_000, seed=3)
    key, stream = periphery_loops.new_streams(3)
    parts = np.empty(10_000)
    flags = np.empty(10_000, dtype=np.uint8)
    nxt = periphery_loops.fill_normals(key, 0, parts[:4_000], stream, flags)
    assert int(nxt) == 4_000
    periphery_loops.fill_normals(key, nxt, parts[4_000:], stream, flags)
    assert np.array_equal(parts, whole)  # filled in two calls or one: the same draws
    assert not np.array_equal(draws(10_000, seed=4), whole)
    # from a later counter: the same draws where the fast test accepts (about 99 %; a rejected one takes
    # its further uniforms from the sequential stream, which is then at another place)
    assert (draws(1000, seed=3, start=7) == whole[7:1007]).mean() > 0.95
    single = draws(10_000, seed=3, dtype=np.float32)
    assert single.dtype == np.float32 and np.array_equal(single, whole.astype(np.float32))


@pytest.mark.parametrize("rows", [1, 15, 16, 37])
@pytest.mark.parametrize("with_q", [False, True])
def test_spike_rows_backward_writes_the_same_gradient_transposed(rows, with_q):
    """The (F_out, M) layout for the weight gradient holds the (M, F_out) gradient's values, bit for bit,
    for row counts around the block size; the learned scale's and the final rescaling's gradients agree."""
    gen = np.random.default_rng(rows)
    width, step, bound = 5, np.float32(0.25), np.float32(1.0)
    grad_out = gen.standard_normal((rows, width)).astype(np.float32)
    codes = gen.integers(-6, 7, (rows, width)).astype(np.int16)  # some past the bound (|c step| > 1)
    scale = gen.uniform(0.5, 2, rows).astype(np.float32)
    factors = gen.uniform(0.5, 2, (2, width)).astype(np.float32)
    rounds = gen.integers(0, 3, rows).astype(np.int16)
    out_factor_of_round = np.array([1, 2, 4], np.float32)
    q_of_round = np.array([0.9, 0.45, 0.2], np.float32)
    q_rows = q_of_round[rounds]
    results = []
    for transposed in (False, True):
        grad = np.full((width, rows) if transposed else (rows, width), np.nan, np.float32)
        grad_alpha, grad_final = np.zeros(width), np.zeros(rows, np.float32)
        periphery_loops.spike_rows_backward(grad_out, codes, step, bound, True, scale, factors, True, rounds,
                                            out_factor_of_round, q_of_round, with_q, grad, transposed, grad_alpha,
                                            grad_final)
        results.append((grad.T if transposed else grad, grad_alpha, grad_final))
    (plain, alpha_a, final_a), (transposed_grad, alpha_b, final_b) = results
    assert np.array_equal(plain, transposed_grad) and not np.isnan(plain).any()
    assert np.array_equal(alpha_a, alpha_b) and np.array_equal(final_a, final_b)
    # the plain gradient itself, by hand: grad_out * factors * scale * clip slope (* q)
    inside = np.abs(codes * step) < bound
    expected = grad_out * factors[1] * factors[0] * scale[:, None] * inside
    if with_q:
        expected = expected * q_rows[:, None]
    np.testing.assert_allclose(plain, expected, rtol=1e-6)
    y = np.clip(codes * step, -bound, bound)  # the final rescaling's gradient picks each row's round factor
    expected_final = (grad_out * factors[1] * factors[0] * y).sum(1) * out_factor_of_round[rounds]
    np.testing.assert_allclose(final_a, expected_final, rtol=1e-5, atol=1e-6)
