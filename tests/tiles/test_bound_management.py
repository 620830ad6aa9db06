"""Iterative bound management per input vector (analog_snu.tiles.spike_mvm), against the rule and aihwkit.

The reference below is written from the rule (aihwkit's C++ ``forwardVector``, one vector at a
time): convert the vector at input scale 1/f for f = 1, 2, 4, ...; stop at the first f whose
outputs all lie within +-out_bound after the ADC, or when f passes the limit (f > max_bm_factor
or f > max_bm_res / DAC step), keeping that last, clipped conversion; the result is it times f.
"""

import dataclasses

import pytest
import torch
from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
from aihwkit.simulator.tiles.analog_mvm import AnalogMVM

from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.spike_mvm import SpikeAnalogMVM, per_vector_bound_management_applies

F64 = torch.float64


def preset_io(**change):
    """pcm_joshi2020's HWA forward IO (7-bit DAC, 9-bit ADC, bound 12, abs-max NM, iterative BM), changed."""
    return dataclasses.replace(device_rpu_config(preset("pcm_joshi2020"), "hwa").forward, **change)


def spikes(rows, cols, rate, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((rows, cols), rate, dtype=F64), generator=gen)


def first_k(counts, cols):
    """0/1 rows whose first ``k`` entries are 1, one row per k. Shape: (len(counts), cols)."""
    return (torch.arange(cols)[None, :] < torch.tensor(counts)[:, None]).to(F64)


def record_rounds(monkeypatch):
    """Number of vectors entering the output stage in each bound-management round of SpikeAnalogMVM."""
    sizes = []
    original = SpikeAnalogMVM._output_stage.__func__

    def recording(klass, values, *args, **kwargs):
        sizes.append(values.shape[0])
        return original(klass, values, *args, **kwargs)

    monkeypatch.setattr(SpikeAnalogMVM, "_output_stage", classmethod(recording))
    return sizes


def _step(res, bound):
    return (1 / res if res > 1 else res) * 2 * bound


def dac(v, io):
    return torch.clamp(torch.round(v / _step(io.inp_res, io.inp_bound)) * _step(io.inp_res, io.inp_bound),
                       -io.inp_bound, io.inp_bound)


def adc(v, io):
    return torch.round(v / _step(io.out_res, io.out_bound)) * _step(io.out_res, io.out_bound)


def reference_row(weight, x, io):
    """One vector by the rule, noise off, abs-max or no noise management. Returns (output, f, pre-clip u)."""
    nm = float(x.abs().max()) if io.noise_management == NoiseManagementType.ABS_MAX else 1.0
    nm = nm if nm > 0 else 1.0
    f = 1.0
    while True:
        u = adc(weight @ dac(x * ((1.0 / nm) / f), io), io)
        limit = f > io.max_bm_factor or f > io.max_bm_res / _step(io.inp_res, io.inp_bound)
        if bool((u.abs() <= io.out_bound).all()) or limit:
            return torch.clamp(u, -io.out_bound, io.out_bound) * (nm * f), f, u
        f *= 2.0


def test_hand_computed_rounds_per_vector(monkeypatch):
    # one output, weight 0.6; k spikes give 0.6 k. A spike enters the 7-bit DAC at 1/f as
    # round(63 / f) / 63: 1, 32/63, 16/63, 8/63. Bound 12:
    #   k = 10: 6                          -> f = 1 (1 round)
    #   k = 34: 20.4 -> 20.4*32/63 = 10.36  -> f = 2
    #   k = 70: 42 = 3.5 x bound -> 21.3 -> 10.67 -> f = 4 (2 halvings)
    #   k = 100: 60 -> 30.5 -> 15.2 -> 7.62 -> f = 8
    io = preset_io(out_noise=0.0)
    weight = torch.full((1, 100), 0.6, dtype=F64)
    x = first_k([10, 34, 70, 100], 100)
    sizes = record_rounds(monkeypatch)
    out = SpikeAnalogMVM.matmul(weight, x, io)
    assert sizes == [4, 3, 2, 1]  # every vector leaves as soon as its own outputs fit
    for row, (k, f) in enumerate([(10, 1), (34, 2), (70, 4), (100, 8)]):
        q = round(63 / f) / 63
        assert float(out[row, 0]) == pytest.approx(f * float(adc(torch.tensor(0.6 * k * q, dtype=F64), io)), abs=1e-9)
        assert float(out[row, 0]) == pytest.approx(0.6 * k, rel=0.05)
        _, f_ref, _ = reference_row(weight, x[row], io)
        assert f_ref == f


def test_vector_still_saturating_at_the_limit_keeps_its_clipped_last_round(monkeypatch):
    # DAC step 1/63, max_bm_res 0.25: the last round is f = 16 (16 > 0.25 * 63 = 15.75). 100 spikes
    # into weight 3 give 300; at f = 16 a spike is round(63 / 16) / 63 = 4/63: 19.05 > 12, still
    # clipped, so the output is 12 * 16 = 192. The other vector (6) is converted once.
    io = preset_io(out_noise=0.0)
    weight = torch.full((1, 100), 3.0, dtype=F64)
    x = first_k([100, 2], 100)
    sizes = record_rounds(monkeypatch)
    out = SpikeAnalogMVM.matmul(weight, x, io)
    assert sizes == [2, 1, 1, 1, 1]  # f = 1 for both, then 2, 4, 8, 16 for the saturating one
    assert float(out[0, 0]) == 192.0
    assert float(out[1, 0]) == pytest.approx(float(adc(torch.tensor(6.0, dtype=F64), io)), abs=1e-12)


@pytest.mark.parametrize("kind", ["spikes", "analog"])
def test_every_vector_equals_the_rule_and_aihwkit_on_that_vector_alone(kind):
    """A batch of vectors needing 1 to 5 rounds (noise off): each row is its own conversion."""
    io = preset_io(out_noise=0.0)
    gen = torch.Generator().manual_seed(4)
    weight = (torch.rand(24, 120, generator=gen, dtype=F64) * 2 - 1) * 0.9
    weight[0] = 0.9  # an output that grows with the spike count: saturation from about 14 spikes
    if kind == "spikes":
        x = torch.cat([spikes(30, 120, 0.05, seed=1), spikes(30, 120, 0.15, seed=2), spikes(30, 120, 0.4, seed=3)])
    else:  # sparse analog rows, denser row after row (abs-max noise management scales each row to max 1)
        density = torch.linspace(0.02, 0.6, 90, dtype=F64)[:, None]
        x = torch.rand(90, 120, generator=gen, dtype=F64) * (torch.rand(90, 120, generator=gen, dtype=F64) < density)
    w = weight.clone().requires_grad_()
    inp = x.clone().requires_grad_()
    out = SpikeAnalogMVM.matmul(w, inp, io)
    grad_out = torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape)
    (out * grad_out).sum().backward()
    factors = []
    grad_w = torch.zeros_like(weight)
    for row in range(x.shape[0]):
        expected, f, _ = reference_row(weight, x[row], io)
        factors.append(f)
        torch.testing.assert_close(out[row].detach(), expected, rtol=0, atol=1e-9)
        w1 = weight.clone().requires_grad_()
        x1 = x[row : row + 1].clone().requires_grad_()
        alone = AnalogMVM.matmul(w1, x1, io)  # aihwkit's torch tile, batch of one vector
        torch.testing.assert_close(out[row : row + 1].detach(), alone.detach(), rtol=0, atol=1e-9)
        (alone * grad_out[row : row + 1]).sum().backward()
        torch.testing.assert_close(inp.grad[row : row + 1], x1.grad, rtol=1e-9, atol=1e-9)
        grad_w += w1.grad
    torch.testing.assert_close(w.grad, grad_w, rtol=1e-9, atol=1e-9)
    assert {1.0, 2.0, 4.0} <= set(factors)  # the batch really mixes vectors with different rounds


def test_vectors_that_do_not_saturate_are_the_product_quantised_once():
    io = preset_io(out_noise=0.0)
    weight = (torch.rand(16, 80, generator=torch.Generator().manual_seed(2), dtype=F64) * 2 - 1) * 0.5
    weight[3] = 1.0  # saturates for rows with more than 12 spikes
    x = torch.cat([spikes(30, 80, 0.05, seed=5), spikes(5, 80, 0.5, seed=6)])
    out = SpikeAnalogMVM.matmul(weight, x, io)
    product = x @ weight.T
    fits = (adc(product, io).abs() <= io.out_bound).all(1)
    assert 0 < int(fits.sum()) < x.shape[0]
    torch.testing.assert_close(out[fits], adc(product[fits], io), rtol=0, atol=1e-12)
    # aihwkit's torch tile reruns the whole batch, so its non-saturating rows come out at f > 1
    torch.manual_seed(0)
    batch_wide = AnalogMVM.matmul(weight, x, io)
    assert (batch_wide[fits] - out[fits]).abs().max() > 0.01


@pytest.mark.parametrize("kind", ["spikes", "analog"])
def test_batch_of_one_equals_aihwkit_torch_tile_with_noise(kind):
    """Output noise on, same seed: the same draws in the same order, so the same output and gradients."""
    io = preset_io()
    gen = torch.Generator().manual_seed(7)
    rounds_seen = set()
    for trial in range(12):
        weight = (torch.rand(20, 60, generator=gen, dtype=F64) * 2 - 1) * (0.3 + 0.3 * trial)
        x = spikes(1, 60, 0.3, seed=trial) if kind == "spikes" else torch.rand(1, 60, generator=gen, dtype=F64)
        results = []
        for cls in (AnalogMVM, SpikeAnalogMVM):
            w, inp = weight.clone().requires_grad_(), x.clone().requires_grad_()
            torch.manual_seed(trial)
            out = cls.matmul(w, inp, io)
            (out * torch.linspace(-1, 1, out.numel(), dtype=F64)).sum().backward()
            results.append((out.detach(), inp.grad, w.grad, torch.get_rng_state()))
        (out_a, gx_a, gw_a, rng_a), (out_b, gx_b, gw_b, rng_b) = results
        assert torch.equal(rng_a, rng_b)  # as many draws
        if kind == "analog":
            assert torch.equal(out_b, out_a)  # aihwkit's own input stage and product: bit for bit
        torch.testing.assert_close(out_b, out_a, rtol=0, atol=1e-9)
        torch.testing.assert_close(gx_b, gx_a, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(gw_b, gw_a, rtol=1e-9, atol=1e-9)
        step = _step(io.out_res, io.out_bound)
        rounds_seen.add(round(float(out_a.abs().max()) / 12 + 0.5) if float(out_a.abs().max()) > 12 + step else 0)
    assert len(rounds_seen) > 1  # both saturating and non-saturating vectors were compared


def test_only_saturating_vectors_get_new_noise_draws(monkeypatch):
    io = preset_io()
    weight = torch.full((8, 100), 0.6, dtype=F64)
    x = first_k([5, 10, 70, 15, 100, 1], 100)  # 3, 6, 42, 9, 60, 0.6: rows 2 and 4 saturate
    sizes = record_rounds(monkeypatch)
    torch.manual_seed(11)
    out = SpikeAnalogMVM.matmul(weight, x, io)
    after = torch.get_rng_state()
    torch.manual_seed(11)
    noise = torch.randn(6, 8, dtype=F64)  # round 1: every vector
    for size in sizes[1:]:
        torch.randn(size, 8, dtype=F64)  # later rounds: the saturating vectors only
    assert sizes == [6, 2, 2, 1] and torch.equal(torch.get_rng_state(), after)
    fits = torch.tensor([True, True, False, True, False, True])
    expected = adc(x[fits] @ weight.T + io.out_noise * noise[fits], io)
    torch.testing.assert_close(out[fits], expected, rtol=0, atol=1e-12)


def test_straight_through_gradients_per_vector_with_its_own_factor():
    """Gradients against the formula: d/dW = sum_n f_n q_n (m_n * g_n) x_n^T, d/dx_n = f_n dq_n W^T (m_n * g_n).

    m_n masks the outputs clipped in the vector's last round; q_n = round(63/f_n)/63 and
    dq_n = 1/f_n (the DAC's straight-through slope at input scale 1/f_n). No noise management,
    so nothing else depends on x.
    """
    io = preset_io(out_noise=0.0, noise_management=NoiseManagementType.NONE)
    weight = torch.full((3, 100), 0.6, dtype=F64)
    weight[1] = -0.25
    weight[2, :50] = 4.0
    # outputs (0.6 k, -0.25 k, 4 min(k, 50)): k = 2 fits at f = 1; k = 12: 48 -> 24.4 -> 12.2 -> 6.1,
    # f = 8; k = 34: 136 fits at f = 16 (136 * 4/63 = 8.6); k = 100: 200 * 4/63 = 12.7 is still
    # clipped at the last round f = 16 (its mask is 0 there)
    x = first_k([2, 12, 34, 100], 100)
    w, inp = weight.clone().requires_grad_(), x.clone().requires_grad_()
    out = SpikeAnalogMVM.matmul(w, inp, io)
    grad_out = torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [-1.5, 0.7, 2.0], [2.0, 1.0, 1.0]], dtype=F64)
    (out * grad_out).sum().backward()
    expected_w = torch.zeros_like(weight)
    expected_x = torch.zeros_like(x)
    factors = []
    for row in range(x.shape[0]):
        _, f, u = reference_row(weight, x[row], io)
        factors.append(f)
        mask = (u.abs() <= io.out_bound).to(F64)
        g = grad_out[row] * mask * f
        expected_w += torch.outer(g * round(63 / f) / 63, x[row])
        expected_x[row] = (g / f) @ weight
    assert factors == [1.0, 8.0, 16.0, 16.0]
    torch.testing.assert_close(w.grad, expected_w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inp.grad, expected_x, rtol=1e-12, atol=1e-12)


def test_output_asymmetry_and_per_output_noise_follow_aihwkit_for_one_vector():
    io = preset_io(out_asymmetry=0.2)
    gen = torch.Generator().manual_seed(9)
    weight = (torch.rand(10, 50, generator=gen, dtype=F64) * 2 - 1) * 5.0
    noise_values = torch.rand(10, generator=gen, dtype=F64) * 0.1
    x = spikes(1, 50, 0.5, seed=3)
    results = []
    for cls in (AnalogMVM, SpikeAnalogMVM):
        w, inp = weight.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(1)
        out = cls.matmul(w, inp, io, out_noise_values=noise_values)
        (out * torch.linspace(-1, 1, 10, dtype=F64)).sum().backward()
        results.append((out.detach(), inp.grad, w.grad))
    assert float(results[0][0].abs().max()) > 12  # it did need bound management
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_leading_dimensions_are_vectors():
    io = preset_io(out_noise=0.0)
    weight = torch.full((2, 100), 0.6, dtype=F64)
    x = first_k([10, 34, 70, 100, 3, 50], 100)
    flat = SpikeAnalogMVM.matmul(weight, x, io)
    shaped = SpikeAnalogMVM.matmul(weight, x.reshape(3, 2, 100), io)
    assert shaped.shape == (3, 2, 2) and torch.equal(shaped.reshape(6, 2), flat)


@pytest.mark.parametrize(
    ("change", "trans"),
    [
        ({"bound_management": BoundManagementType.ITERATIVE_WORST_CASE}, False),
        ({"bound_management": BoundManagementType.NONE}, False),
        ({}, True),  # transposed (backward-direction) product
    ],
)
def test_other_settings_keep_aihwkit_batch_wide_path_bit_for_bit(change, trans):
    io = preset_io(**change)
    weight = torch.randn(30, 20, generator=torch.Generator().manual_seed(0), dtype=F64) * 2.0
    x = torch.rand(12, 20 if not trans else 30, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.manual_seed(4)
    expected = AnalogMVM.matmul(weight, x, io, trans=trans)
    torch.manual_seed(4)
    got = SpikeAnalogMVM.matmul(weight, x, io, trans=trans)
    assert torch.equal(got, expected)


def test_which_settings_get_per_vector_rounds():
    assert per_vector_bound_management_applies(preset_io())
    assert not per_vector_bound_management_applies(preset_io(bound_management=BoundManagementType.NONE))
    assert not per_vector_bound_management_applies(
        preset_io(bound_management=BoundManagementType.ITERATIVE_WORST_CASE))
    assert not per_vector_bound_management_applies(preset_io(is_perfect=True))
    assert not per_vector_bound_management_applies(
        preset_io(noise_management=NoiseManagementType.AVERAGE_ABS_MAX))
