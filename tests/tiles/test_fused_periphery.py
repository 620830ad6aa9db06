"""The compiled periphery of the spike tile simulates what aihwkit's tile does: exactly with the noise off, in distribution with it on.

References: aihwkit's own ``TorchInferenceTile`` (over the per-vector simulator tile, or fully
stock where per-vector and batch-wide bound management agree), aihwkit's ``AnalogMVM`` on one
vector at a time, and the exact distribution of a quantised normal (hand formula below). The
torch-operation periphery (``ANALOG_SNU_TORCH_PERIPHERY=1``, aihwkit's own operations and draws)
runs through the same distribution tests, so both paths are checked against the same numbers.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.configs import WeightModifierType
from aihwkit.simulator.tiles.analog_mvm import AnalogMVM
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile

from analog_snu.functional import periphery_loops
from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, spike_tile
from analog_snu.tiles.fused_periphery import (
    TORCH_PERIPHERY_ENV,
    fused_general_forward,
    fused_periphery_applies,
    noisy_weight,
    round_tables,
)
from analog_snu.tiles.spike_mvm import SpikeAnalogMVM, adc_step
from analog_snu.tiles.spike_tile import SpikeTorchInferenceTile


def hwa_config(tile_class=SpikeTorchInferenceTile, columnwise=False, weight_noise=True, stock_mvm=False,
               **forward_change):
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    rpu.tile_class = tile_class
    if stock_mvm:
        rpu.simulator_tile_class = TorchSimulatorTile
    rpu.mapping.weight_scaling_columnwise = rpu.mapping.out_scaling_columnwise = columnwise
    rpu.forward = dataclasses.replace(rpu.forward, **forward_change)
    if not weight_noise:
        rpu.modifier.type = WeightModifierType.NONE
    return rpu


def spikes(rows, cols, rate, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((rows, cols), rate, dtype=dtype), generator=gen)


def make_layer(rpu, weight, alpha=None, train=True, dtype=torch.float32):
    torch.manual_seed(0)
    layer = AnalogLinear(weight.shape[1], weight.shape[0], bias=False, rpu_config=rpu).to(dtype)
    layer.set_weights(weight)
    tile = next(layer.analog_tiles())
    if alpha is not None:
        with torch.no_grad():
            tile.out_scaling_alpha.copy_(alpha[: tile.out_scaling_alpha.numel()])
    layer.train(train)
    return layer, tile


def run_layer(rpu, x, weight, alpha, input_grad, train=True):
    """Output and the gradients of input, weight and learned output scales of one AnalogLinear call."""
    layer, tile = make_layer(rpu, weight, alpha, train, x.dtype)
    x = x.clone().requires_grad_(input_grad)
    torch.manual_seed(1)
    out = layer(x)
    grad_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * grad_out).sum().backward()
    alpha_grad = None if tile.out_scaling_alpha is None else tile.out_scaling_alpha.grad
    return out.detach(), x.grad, tile.tile.weight.grad, alpha_grad


def saturating_case(f_in=80, f_out=24, dtype=torch.float32):
    """Weights whose output 0 saturates on dense rows (bound-management rounds up to the limit)."""
    gen = torch.Generator().manual_seed(3)
    weight = ((torch.rand(f_out, f_in, generator=gen) * 2 - 1) * 0.5).to(dtype)
    weight[0] = 0.5
    alpha = (0.5 + torch.rand(f_out, generator=gen)).to(dtype)
    x = torch.cat([spikes(150, f_in, 0.1, seed=1, dtype=dtype), spikes(150, f_in, 0.9, seed=2, dtype=dtype)])
    return weight, alpha, x


def test_the_compiled_path_is_the_default_and_the_variable_selects_torch(monkeypatch):
    x = torch.zeros(2, 3)
    assert fused_periphery_applies(x) and fused_periphery_applies(x.double())
    assert not fused_periphery_applies(x.half())
    monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    assert not fused_periphery_applies(x)


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("shape", [(300,), (10, 30)])  # (T*N, F) and time-major (T, N, F) inputs
@pytest.mark.parametrize("columnwise", [False, True])
def test_noise_off_equals_aihwkits_tile_module(input_grad, shape, columnwise):
    """No output or weight noise: outputs and weight gradients bit for bit, the other gradients to float rounding.

    (The input gradient's noise-management term and the learned scale's gradient are sums
    formed in another order.)"""
    weight, alpha, x = saturating_case()
    x = x.reshape(*shape, x.shape[-1])
    config = {"columnwise": columnwise, "weight_noise": False, "out_noise": 0.0}
    expected = run_layer(hwa_config(TorchInferenceTile, **config), x, weight, alpha, input_grad)
    got = run_layer(hwa_config(**config), x, weight, alpha, input_grad)
    assert float(expected[0].abs().max()) > 12.0  # some vectors needed rounds
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[2], expected[2])
    torch.testing.assert_close(got[3], expected[3], rtol=1e-5, atol=0)
    if input_grad:
        torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5 * float(expected[1].abs().max()))
    else:
        assert got[1] is None


def test_layer_split_over_tiles_equals_aihwkits_tile_modules():
    """600 inputs: aihwkit maps the layer onto two tiles, each converting its share of every input vector
    (a strided view of the input, taken as it is)."""
    weight, alpha, _ = saturating_case(f_in=600)
    x = spikes(200, 600, 0.05, seed=4)
    config = {"weight_noise": False, "out_noise": 0.0}
    expected = run_layer(hwa_config(TorchInferenceTile, **config), x, weight, alpha, True)
    got = run_layer(hwa_config(**config), x, weight, alpha, True)
    assert float(expected[0].abs().max()) > 0
    assert torch.equal(got[0], expected[0]) and torch.equal(got[2], expected[2])
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5 * float(expected[1].abs().max()))


@pytest.mark.parametrize("omega", [1.0, 0.0])  # mapping scale or none
def test_inference_config_without_learned_scales_equals_aihwkits_tile_module(omega):
    weight, _, x = saturating_case()
    outs = []
    for tile_class in (TorchInferenceTile, SpikeTorchInferenceTile):
        rpu = device_rpu_config(preset("pcm_joshi2020"), "inference")
        rpu.tile_class = tile_class
        rpu.forward.out_noise = 0.0
        rpu.mapping.weight_scaling_omega = omega
        layer, tile = make_layer(rpu, weight)
        assert tile.out_scaling_alpha is None and (tile.get_mapping_scales() is None) == (omega == 0.0)
        outs.append(run_layer(rpu, x, weight, None, True))
    assert torch.equal(outs[1][0], outs[0][0]) and torch.equal(outs[1][2], outs[0][2])
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-5, atol=1e-5 * float(outs[0][1].abs().max()))


def test_float64_noise_off_equals_aihwkits_tile_module():
    weight, alpha, x = saturating_case(dtype=torch.float64)
    config = {"weight_noise": False, "out_noise": 0.0}
    expected = run_layer(hwa_config(TorchInferenceTile, **config), x, weight, alpha, True)
    got = run_layer(hwa_config(**config), x, weight, alpha, True)
    assert got[0].dtype == torch.float64 and torch.equal(got[0], expected[0]) and torch.equal(got[2], expected[2])
    torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=1e-12)


def record_rounds(monkeypatch):
    """The last bound-management round of every vector, per call of the compiled loop."""
    calls = []
    original = periphery_loops.spike_rounds

    def recording(*args):
        original(*args)
        calls.append(torch.from_numpy(args[-3].copy()))  # the ``rounds`` argument

    monkeypatch.setattr(periphery_loops, "spike_rounds", recording)
    return calls


def test_rounds_and_outputs_per_vector_equal_aihwkit_on_each_vector_alone(monkeypatch):
    """Noise off and no DAC (a spike at input scale 1/f is then exactly 1/f, so the product's order does
    not matter): every vector's output and number of rounds are those of aihwkit's stock torch tile
    converting that vector alone (``AnalogMVM.matmul``, one ``_finalize_output`` call per round)."""
    io_change = {"out_noise": 0.0, "inp_res": -1.0}
    gen = torch.Generator().manual_seed(5)
    weight = (torch.rand(8, 100, generator=gen) * 2 - 1) * 0.3
    weight[0] = 0.9  # k spikes give about 0.9 k: f = 2^ceil(log2(0.9 k / 12)) rounds
    counts = torch.tensor([0, 5, 13, 20, 27, 40, 55, 80, 100, 100])
    x = (torch.arange(100)[None, :] < counts[:, None]).float()
    layer, tile = make_layer(hwa_config(weight_noise=False, **io_change), weight)
    rounds = record_rounds(monkeypatch)
    with torch.no_grad():
        out = layer(x)
    assert len(rounds) == 1
    stock_io = dataclasses.replace(tile.tile._f_io)
    mapped = tile.tile.weight.detach()
    mapping, alpha = tile.get_mapping_scales().view(1, -1), tile.out_scaling_alpha.detach().view(1, -1)
    finalize_calls = []
    original = AnalogMVM._finalize_output.__func__
    monkeypatch.setattr(AnalogMVM, "_finalize_output",
                        classmethod(lambda cls, *a, **k: finalize_calls.append(1) or original(cls, *a, **k)))
    for row in range(x.shape[0]):
        finalize_calls.clear()
        alone = AnalogMVM.matmul(mapped, x[row : row + 1], stock_io)
        assert torch.equal(out[row : row + 1], alone * mapping * alpha)  # aihwkit's post-MVM scalings, in order
        if counts[row] > 0:  # aihwkit's all-zero shortcut converts nothing
            assert len(finalize_calls) == int(rounds[0][row]) + 1
    assert set(rounds[0].tolist()) >= {0, 1, 2, 3}


def quantised_normal_moments(v, sigma, step):
    """Exact mean, variance and fourth central moment of ``step * rint((v + sigma xi) / step)``, xi ~ N(0, 1)."""
    v, sigma = torch.as_tensor(v, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
    centre = torch.round(v / step)
    span = int(math.ceil(12 * float(sigma.max()) / step)) + 2
    codes = centre[None, :] + torch.arange(-span, span + 1, dtype=torch.float64)[:, None]  # (K, F)
    upper = torch.special.ndtr(((codes + 0.5) * step - v) / sigma)
    lower = torch.special.ndtr(((codes - 0.5) * step - v) / sigma)
    prob = upper - lower
    values = codes * step
    mean = (prob * values).sum(0)
    var = (prob * (values - mean) ** 2).sum(0)
    m4 = (prob * (values - mean) ** 4).sum(0)
    return mean, var, m4


def noisy_codes(rows, per_column_noise, torch_path, monkeypatch, seed=7):
    """ADC outputs (in output units, before the digital scalings) of ``rows`` conversions of one all-ones vector."""
    if torch_path:
        monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    weight = torch.tensor([[0.0] * 6, [0.01] * 6, [0.023] * 6, [0.21] * 6, [-0.4517] * 6, [1.0] * 6]) / 6
    change = {"out_noise_std": 0.5} if per_column_noise else {}
    layer, tile = make_layer(hwa_config(weight_noise=False, **change), weight)
    x = torch.ones(rows, 6)
    torch.manual_seed(seed)
    out = layer(x)  # gradient enabled, training mode: the path of a training step
    io = tile.tile._f_io
    scales = (tile.get_mapping_scales() * tile.out_scaling_alpha).detach()
    sigma = tile.tile.out_noise_values if per_column_noise else torch.full((6,), io.out_noise)
    q = float(round_tables(io, torch.float32)[0][0])
    v = (x[:1] @ tile.tile.weight.detach().T)[0].double() * q  # the noise-free converted value per column
    return out.detach().double() / scales.double(), v, sigma.double(), adc_step(io)


def assert_quantised_normal(outputs, v, sigma, step, mean_slack):
    """Every output (rows, F) is an ADC level, and per column the sample mean and variance are those of
    the normal N(v, sigma^2) quantised at ``step``, within 5 standard errors; returns that variance."""
    rows = outputs.shape[0]
    codes = outputs / step
    assert torch.allclose(codes, codes.round(), atol=1e-3)  # every output is an ADC level
    mean, var, m4 = quantised_normal_moments(v, sigma, step)
    got_mean, got_var = outputs.mean(0), outputs.var(0)
    assert ((got_mean - mean).abs() <= 5 * (var / rows).sqrt() + mean_slack).all()
    # the sample variance's standard error, plus its second-order term (which dominates where the
    # first vanishes, e.g. for an output half-way between two levels: a two-point distribution)
    var_se = ((m4 - var**2) / rows).sqrt()
    assert ((got_var - var).abs() <= 5 * var_se + 25 * var / rows).all()
    return var


@pytest.mark.parametrize("torch_path", [False, True], ids=["compiled", "torch"])
@pytest.mark.parametrize("per_column_noise", [False, True], ids=["out_noise", "out_noise_values"])
def test_output_noise_and_adc_levels_have_the_exact_distribution(torch_path, per_column_noise, monkeypatch):
    rows = 20000
    outputs, v, sigma, step = noisy_codes(rows, per_column_noise, torch_path, monkeypatch)
    var = assert_quantised_normal(outputs, v, sigma, step, mean_slack=1e-9)
    assert (var > 0).all() and (sigma < step).any()  # coarse ADC: a quantised, not a plain normal, distribution


def test_draws_are_independent_across_outputs_and_conversions(monkeypatch):
    """Neighbouring outputs and conversions are uncorrelated (a generator reused across rows would show)."""
    outputs, *_ = noisy_codes(20000, False, False, monkeypatch)
    centred = outputs - outputs.mean(0)
    rows = centred.shape[0]
    corr_rows = (centred[1:] * centred[:-1]).mean(0) / centred.var(0)
    corr_cols = (centred[:, 1:] * centred[:, :-1]).mean(0) / (centred[:, 1:].std(0) * centred[:, :-1].std(0))
    assert (corr_rows.abs() < 5 / math.sqrt(rows)).all()
    assert (corr_cols.abs() < 5 / math.sqrt(rows)).all()


@pytest.mark.parametrize("torch_path", [False, True], ids=["compiled", "torch"])
def test_vectors_saturate_with_the_exact_probability_and_are_converted_again(torch_path, monkeypatch):
    """One output sits so close to the bound that noise pushes it past with probability p: such a vector
    is converted again at f = 2 (where it fits), every other vector once."""
    rounds = []
    if torch_path:
        monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
        original = SpikeAnalogMVM._spike_rounds.__func__

        def recording(cls, *args, **kwargs):
            result = original(cls, *args, **kwargs)
            rounds.append(torch.log2(result[4].reshape(-1)).round())  # f = 2^round of each vector
            return result

        monkeypatch.setattr(SpikeAnalogMVM, "_spike_rounds", classmethod(recording))
    else:
        rounds = record_rounds(monkeypatch)
    io = hwa_config().forward
    step, sigma = np.float32(adc_step(io)), io.out_noise
    codes = np.arange(200, 300, dtype=np.float32)
    top = float(codes[codes * step <= np.float32(io.out_bound)].max())  # the largest code that passes (float32)
    target = (top + 0.5) * float(step) - 0.4 * sigma  # P(code > top) = 1 - Phi(0.4)
    p_fail = 1 - 0.5 * (1 + math.erf(0.4 / math.sqrt(2)))
    weight = torch.zeros(3, 10)
    weight[1] = 0.3
    layer, tile = make_layer(hwa_config(weight_noise=False), weight)
    with torch.no_grad():
        tile.tile.weight[0] = target / 10  # the converted value of ten spikes: target (a spike enters as 1)
    assert float(round_tables(io, torch.float32)[0][0]) == 1.0
    rows = 10000
    torch.manual_seed(3)
    layer(torch.ones(rows, 10))
    (per_vector,) = rounds
    assert set(per_vector.tolist()) == {0, 1}
    fraction = float((per_vector == 1).double().mean())
    assert abs(fraction - p_fail) <= 5 * math.sqrt(p_fail * (1 - p_fail) / rows)


@pytest.mark.parametrize("relative", [True, False])
def test_weight_noise_is_normal_with_aihwkits_scale(relative):
    gen = torch.Generator().manual_seed(2)
    weight = (torch.rand(300, 400, generator=gen) * 2 - 1).requires_grad_()
    modifier = hwa_config().modifier  # additive normal, std_dev relative to max |W| ...
    if not relative:  # ... or to an assumed w_max
        modifier = dataclasses.replace(modifier, rel_to_actual_wmax=False, assumed_wmax=2.5)
    w_max = float(weight.detach().abs().max()) if relative else 2.5
    torch.manual_seed(0)
    noisy = noisy_weight(weight, modifier)
    noise = (noisy - weight).detach().double().flatten() / (modifier.std_dev * w_max)
    n = noise.numel()
    assert abs(float(noise.mean())) < 5 / math.sqrt(n)
    assert abs(float(noise.var()) - 1) < 5 * math.sqrt(2 / n)
    ordered = noise.sort().values
    cdf = torch.special.ndtr(ordered)
    ks = float(torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max())
    assert ks < 1.95 / math.sqrt(n)  # Kolmogorov-Smirnov at the 0.1 % level
    assert abs(float((noise**4).mean()) - 3) < 5 * math.sqrt(96 / n)  # normal kurtosis (tails)
    (noisy * 2).sum().backward()
    assert torch.equal(weight.grad, torch.full_like(weight, 2.0))  # the gradient passes unchanged


def test_generator_follows_torch_seed():
    weight = torch.rand(20, 30)
    modifier = hwa_config().modifier
    torch.manual_seed(4)
    first = noisy_weight(weight, modifier)
    torch.manual_seed(4)
    assert torch.equal(noisy_weight(weight, modifier), first)
    assert not torch.equal(noisy_weight(weight, modifier), first)


def test_eval_mode_applies_drift_compensation_as_aihwkit():
    weight, alpha, x = saturating_case()
    config = {"weight_noise": False, "out_noise": 0.0}
    outs = []
    for tile_class in (TorchInferenceTile, SpikeTorchInferenceTile):
        layer, tile = make_layer(hwa_config(tile_class, **config), weight, alpha, train=False)
        tile.alpha = torch.tensor([0.8125])  # a drift-compensation factor, as drift_analog_weights sets it
        with torch.no_grad():
            outs.append(layer(x))
        outs.append(layer(x).detach())  # gradient enabled in eval mode
    assert torch.equal(outs[2], outs[0]) and torch.equal(outs[3], outs[1]) and torch.equal(outs[0], outs[1])


def saved_by_layer(rpu, x, weight, input_grad):
    """``(bytes, dtype, numel)`` of every storage the layer's forward saves for the backward."""
    layer, _ = make_layer(rpu, weight)
    x = x.clone().requires_grad_(input_grad)
    layer(x[:2])  # set-up (cached per settings) is not the call's memory
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = (tensor.untyped_storage().nbytes(), tensor.dtype, tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(x)
    return list(saved.values())


@pytest.mark.parametrize("input_grad", [False, True])
def test_saves_int16_codes_and_no_output_sized_floats(input_grad, monkeypatch):
    rows, f_in, f_out = 2000, 40, 64
    weight = (torch.rand(f_out, f_in, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 0.5
    x = spikes(rows, f_in, 0.3)
    ours = saved_by_layer(hwa_config(), x, weight, input_grad)
    assert not [dtype for _, dtype, numel in ours if dtype.is_floating_point and numel >= rows * f_out]
    assert [dtype for _, dtype, numel in ours if numel == rows * f_out] == [torch.int16]
    monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    torch_path = saved_by_layer(hwa_config(), x, weight, input_grad)
    assert sum(b for b, *_ in ours) <= sum(b for b, *_ in torch_path)


def test_other_inputs_and_settings_take_aihwkits_path(monkeypatch):
    calls = []
    original = periphery_loops.spike_rounds
    monkeypatch.setattr(periphery_loops, "spike_rounds", lambda *a: calls.append(1) or original(*a))
    weight = torch.rand(6, 10) - 0.5
    x = spikes(8, 10, 0.4)
    run_layer(hwa_config(), x, weight, torch.ones(6), False)
    with torch.no_grad():  # no gradient: the compiled forward as well
        make_layer(hwa_config(), weight)[0](x)
    assert calls == [1, 1]
    for inp, change in [(x * 0.5, {}), (x, {"out_sto_round": True}), (x, {"out_res": -1.0}),
                        (x, {"out_asymmetry": 0.1}), (torch.zeros_like(x), {})]:
        run_layer(hwa_config(**change), inp, weight, torch.ones(6), False)
    monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    torch_calls = []
    torch_original = spike_tile._ScaledSpikeRows.apply
    monkeypatch.setattr(spike_tile._ScaledSpikeRows, "apply", lambda *a: torch_calls.append(1) or torch_original(*a))
    run_layer(hwa_config(), x, weight, torch.ones(6), False)
    assert calls == [1, 1] and torch_calls == [1]


def binary_state_of(x):
    return periphery_loops.binary_state(x.reshape(-1), x.shape[0], x.shape[1], x.shape[1], np.empty(0, np.int64))


def test_binary_state():
    assert binary_state_of(np.zeros((3, 4), np.float32)) == periphery_loops.ALL_ZERO
    assert binary_state_of(np.eye(3, dtype=np.float64)) == periphery_loops.BINARY
    for odd in (0.5, -1.0, 2.0, np.nan, np.inf):
        x = np.eye(3, dtype=np.float32)
        x[2, 1] = odd
        assert binary_state_of(x) == periphery_loops.NOT_BINARY


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spike_input_state_reads_column_slices_and_other_layouts_in_place(dtype):
    """Against plain torch: a tile's column share of a wider input, a transposed and an expanded input."""
    from analog_snu.tiles.fused_periphery import spike_input_state

    def expected(x):  # (0/1 only, 0/1 with some 1)
        binary = bool(((x == 0) | (x == 1)).all())
        return binary, binary and bool((x == 1).any())

    wide = spikes(7, 11, 0.3, dtype=dtype)
    silent = torch.zeros(7, 11, dtype=dtype)
    dense = spikes(40, 300, 0.5, seed=3, dtype=dtype)  # many 1s a row: torch's vectorised max still picks the first
    cases = [wide, wide[:, :5], wide[:, 5:], wide[:, 3:4], wide.t(), wide[2:3].expand(4, 11), silent[:, 4:], dense,
             dense[:, 17:260]]
    for odd in (0.5, -1.0, 2.0, float("nan"), float("inf")):
        for row, col in ((0, 6), (6, 10), (3, 5)):
            bad = wide.clone()
            bad[row, col] = odd
            cases += [bad, bad[:, 5:], bad[:, :6], bad.t()]
    for x in cases:
        assert spike_input_state(x) == expected(x), x
        if expected(x)[0]:  # where torch's max over each row takes its value: the first 1 (0 for a silent row)
            first = torch.empty(x.shape[0], dtype=torch.int64)
            spike_input_state(x, first)
            silent = ~(x == 1).any(1)
            assert torch.equal(first[silent], torch.full_like(first[silent], -1))
            assert torch.equal(first[~silent], x.max(1).indices[~silent])


def test_preset_network_trains_through_the_compiled_periphery():
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")
    torch.manual_seed(0)
    net = SNUNetwork([30, 16, 16, 4], threshold=0.3, rpu_config=rpu)
    x = spikes(5 * 3, 30, 0.4).reshape(5, 3, 30)
    net(x).square().sum().backward()
    for tile in net.analog_tiles():
        for grad in (tile.tile.weight.grad, tile.out_scaling_alpha.grad):
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(layer.threshold.grad.abs().sum() > 0 for layer in net.layers)


def test_round_tables_follow_aihwkits_stop_rule():
    io = hwa_config().forward  # 7-bit DAC (step 1/63), max_bm_res 0.25: last round f = 16 > 15.75
    q, dq, reduction, out_factor = round_tables(io, torch.float32)
    assert reduction.tolist() == [1, 2, 4, 8, 16] and torch.equal(out_factor, reduction)
    assert ((q - 1 / reduction).abs() <= 0.5 / 63 + 1e-6).all()  # 1 / f on the DAC's grid (steps of 1/63)
    assert ((q * 63 - (q * 63).round()).abs() < 1e-4).all()
    for f, q_f in zip(reduction.tolist(), q.tolist()):
        assert q_f == float(SpikeAnalogMVM._input_factor(1.0 / f, io, q)[0])
    no_bm = dataclasses.replace(io, bound_management=type(io.bound_management).NONE)
    assert round_tables(no_bm, torch.float32)[2].tolist() == [1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("nm_thres", [0.0, 1.0, 2.0])
def test_noise_management_gradient_given_directly_equals_autograds_max(monkeypatch, dtype, nm_thres):
    """The input gradient through the noise-management scale, added at each row's first 1 by the compiled
    backward, is autograd's through aihwkit's row maximum (and masked assignment, and clamp at nm_thres),
    bit for bit, signs of zero included; silent rows and noise on."""
    weight, alpha, x = saturating_case(dtype=dtype)
    x[::7] = 0.0  # silent rows
    rpu = hwa_config(nm_thres=nm_thres)
    direct = run_layer(rpu, x, weight, alpha, True)
    # the previous mechanism: the scale built by autograd (SpikeAnalogMVM._spike_row_scale), no columns given
    original = spike_tile.SpikeTorchInferenceTile._choose_path
    monkeypatch.setattr(spike_tile.SpikeTorchInferenceTile, "_choose_path",
                        lambda self, *a: original(self, *a)._replace(scale_grad_at=None))
    through_autograd = run_layer(rpu, x, weight, alpha, True)
    for a, b in zip(direct, through_autograd):
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert torch.equal(torch.signbit(a), torch.signbit(b))
    assert direct[1].abs().sum() > 0


# -- soft (non-spike) inputs: the compiled general path ----------------------------------------------
# Reference: the torch-operation path (ANALOG_SNU_TORCH_PERIPHERY=1: aihwkit's tile forward over
# SpikeAnalogMVM._per_vector_rounds, itself tested against aihwkit in test_bound_management.py).


def soft_case(f_in=80, f_out=24, rows=300, dtype=torch.float32):
    """Soft inputs of both signs (silent rows included) on weights whose output 0 saturates on dense rows."""
    weight, alpha, x = saturating_case(f_in, f_out, dtype)
    gen = torch.Generator().manual_seed(11)
    x = (x * torch.rand(x.shape, generator=gen, dtype=dtype))[:rows]
    x[1::4] = torch.rand(x[1::4].shape, generator=gen, dtype=dtype) * 2 - 1  # both signs, no saturation bias
    x[::9] = 0.0
    return weight, alpha, x


def close_gradients(got, expected, rtol=1e-5):
    """Input and weight gradients of two :func:`run_layer` results equal to float rounding."""
    for a, b in zip(got[1:3], expected[1:3]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))


def record_general_rounds(monkeypatch):
    """``(k, number of vectors converted)`` per call of the general output stage's loop."""
    calls = []
    original = periphery_loops.general_output_round

    def recording(product, rows, k, *args):
        calls.append((k, rows.shape[0]))
        return original(product, rows, k, *args)

    monkeypatch.setattr(periphery_loops, "general_output_round", recording)
    return calls


def run_both(monkeypatch, rpu_of, x, weight, alpha, input_grad=True, train=True):
    """(compiled, torch-operation) results of :func:`run_layer`; ``rpu_of()`` makes a fresh config for each."""
    rounds = record_general_rounds(monkeypatch)
    entered = []
    original = periphery_loops.general_inputs
    monkeypatch.setattr(periphery_loops, "general_inputs", lambda *a: entered.append(1) or original(*a))
    got = run_layer(rpu_of(), x, weight, alpha, input_grad, train)
    assert entered, "the compiled general path did not run"
    calls = len(entered)
    with monkeypatch.context() as patch:
        patch.setenv(TORCH_PERIPHERY_ENV, "1")
        expected = run_layer(rpu_of(), x, weight, alpha, input_grad, train)
    assert len(entered) == calls  # the variable selects the torch path
    return got, expected, rounds


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("shape", [(300,), (10, 30)])
@pytest.mark.parametrize("columnwise", [False, True])
def test_soft_inputs_noise_off_equal_the_torch_path(monkeypatch, input_grad, shape, columnwise):
    """Outputs bit for bit (the same DAC levels, products and ADC codes); gradients to float rounding (the
    torch path sums the weight gradient per bound-management round, the noise-management term in
    another order)."""
    weight, alpha, x = soft_case()
    x = x.reshape(*shape, x.shape[-1])
    config = {"columnwise": columnwise, "weight_noise": False, "out_noise": 0.0}
    got, expected, rounds = run_both(monkeypatch, lambda: hwa_config(**config), x, weight, alpha, input_grad)
    assert max(k for k, _ in rounds) >= 2 and rounds[0][1] == 300  # some vectors needed reruns, only they
    assert sum(n for k, n in rounds if k > 0) < 300
    assert torch.equal(got[0], expected[0])
    torch.testing.assert_close(got[2], expected[2], rtol=1e-5, atol=1e-6 * float(expected[2].abs().max()))
    torch.testing.assert_close(got[3], expected[3], rtol=1e-5, atol=0)
    if input_grad:
        assert float(got[1].abs().max()) > 0
        close_gradients(got, expected)
    else:
        assert got[1] is None


def test_soft_inputs_float64_and_split_layer_equal_the_torch_path(monkeypatch):
    weight, alpha, x = soft_case(dtype=torch.float64)
    config = {"weight_noise": False, "out_noise": 0.0}
    got, expected, _ = run_both(monkeypatch, lambda: hwa_config(**config), x, weight, alpha)
    assert got[0].dtype == torch.float64 and torch.equal(got[0], expected[0])
    close_gradients(got, expected, 1e-12)
    weight, alpha, _ = saturating_case(f_in=600)  # two tiles, each reading its column share of the input
    x = torch.rand(200, 600, generator=torch.Generator().manual_seed(4)) * 0.2
    got, expected, _ = run_both(monkeypatch, lambda: hwa_config(**config), x, weight, alpha)
    assert torch.equal(got[0], expected[0])
    close_gradients(got, expected)


def test_soft_inputs_saturating_at_the_limit_keep_their_clipped_last_round(monkeypatch):
    """300 inputs near 1 on a row of equal weights: about 300 at input scale 1, still past the bound 12 at
    f = 16 (the preset's last round), so those vectors keep that round's clipped output."""
    weight, alpha, _ = saturating_case(f_in=300)
    weight[0] = 0.5
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(40, 300, generator=gen) * (torch.rand(40, 300, generator=gen) < 0.05)  # sparse: fits
    x[::5] = 0.9 + 0.1 * torch.rand(8, 300, generator=gen)
    config = {"weight_noise": False, "out_noise": 0.0}
    got, expected, rounds = run_both(monkeypatch, lambda: hwa_config(**config), x, weight, alpha)
    last = len(round_tables(hwa_config().forward, torch.float32)[2]) - 1
    assert max(k for k, _ in rounds) == last and [n for k, n in rounds if k == last] == [8]
    assert torch.equal(got[0], expected[0])
    close_gradients(got, expected)


@pytest.mark.parametrize("omega", [1.0, 0.0])  # mapping scale or none; no learned output scales
def test_soft_inputs_inference_config_equal_the_torch_path(monkeypatch, omega):
    weight, _, x = soft_case()

    def rpu_of():
        rpu = device_rpu_config(preset("pcm_joshi2020"), "inference")
        rpu.forward.out_noise = 0.0
        rpu.mapping.weight_scaling_omega = omega
        return rpu

    got, expected, _ = run_both(monkeypatch, rpu_of, x, weight, None)
    assert got[3] is None and torch.equal(got[0], expected[0])
    close_gradients(got, expected)


def test_soft_inputs_eval_mode_applies_drift_compensation_as_the_torch_path(monkeypatch):
    weight, alpha, x = soft_case()
    outs = []
    for torch_path in (False, True):
        with monkeypatch.context() as patch:
            if torch_path:
                patch.setenv(TORCH_PERIPHERY_ENV, "1")
            layer, tile = make_layer(hwa_config(weight_noise=False, out_noise=0.0), weight, alpha, train=False)
            tile.alpha = torch.tensor([0.8125])  # a drift-compensation factor, as drift_analog_weights sets it
            with torch.no_grad():
                outs.append(layer(x))
            outs.append(layer(x).detach())  # gradient enabled in eval mode
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[3]) and torch.equal(outs[0], outs[1])
    assert float(outs[0].abs().max()) > 0


def test_all_zero_input_stays_aihwkits_and_the_compiled_general_path_gives_the_same(monkeypatch):
    """aihwkit's shortcut: zeros, the weight out of the graph, a zero gradient for the learned scales. The tile
    leaves an all-zero input to aihwkit; :func:`fused_general_forward` called on one gives the same."""
    weight, alpha, _ = soft_case()
    entered = []
    original = periphery_loops.general_inputs
    monkeypatch.setattr(periphery_loops, "general_inputs", lambda *a: entered.append(1) or original(*a))
    out, x_grad, w_grad, a_grad = run_layer(hwa_config(), torch.zeros(20, 80), weight, alpha, True)
    assert not entered and torch.equal(out, torch.zeros(20, 24)) and w_grad is None
    assert x_grad is None or not x_grad.any()  # (aihwkit's input-range node passes zeros)
    assert torch.equal(a_grad, torch.zeros_like(a_grad))
    x = torch.zeros(20, 80, requires_grad=True)
    w = weight.clone().requires_grad_()
    a = alpha.clone().requires_grad_()
    fused = fused_general_forward(x, w, [torch.tensor([0.5])], a, hwa_config().forward, None, 900)
    (fused * 2).sum().backward()
    assert entered and torch.equal(fused, torch.zeros(20, 24))
    assert x.grad is None and w.grad is None and torch.equal(a.grad, torch.zeros_like(alpha))


def soft_outputs(rows, per_column_noise, torch_path, monkeypatch, seed=7):
    """ADC outputs (output units, before the final rescaling and digital scalings) of ``rows`` conversions of
    one soft vector, the noise-free converted values and the noise per column."""
    if torch_path:
        monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    weight = torch.tensor([[0.0] * 6, [0.01] * 6, [0.023] * 6, [0.21] * 6, [-0.4517] * 6, [1.0] * 6]) / 6
    weight[:, 1] *= -0.5
    change = {"out_noise_std": 0.5} if per_column_noise else {}
    layer, tile = make_layer(hwa_config(weight_noise=False, **change), weight)
    row = torch.tensor([0.9, -0.43, 0.277, 0.6, 0.051, -0.9])  # abs-max 0.9: scale 1/0.9
    x = row.expand(rows, 6).clone()
    torch.manual_seed(seed)
    out = layer(x)
    io = tile.tile._f_io
    scales = (tile.get_mapping_scales() * tile.out_scaling_alpha).detach().double() * 0.9
    sigma = tile.tile.out_noise_values if per_column_noise else torch.full((6,), io.out_noise)
    res = io.inp_res * (2 * io.inp_bound)  # the DAC step (7 bits)
    dac = torch.round((row[None, :] * (1 / torch.tensor(0.9))) / res) * res  # aihwkit's float32 operations
    v = (dac.double() @ tile.tile.weight.detach().double().T)[0]
    return out.detach().double() / scales, v, sigma.double(), adc_step(io)


@pytest.mark.parametrize("torch_path", [False, True], ids=["compiled", "torch"])
@pytest.mark.parametrize("per_column_noise", [False, True], ids=["out_noise", "out_noise_values"])
def test_soft_input_output_noise_and_adc_levels_have_the_exact_distribution(torch_path, per_column_noise,
                                                                             monkeypatch):
    rows = 20000
    outputs, v, sigma, step = soft_outputs(rows, per_column_noise, torch_path, monkeypatch)
    var = assert_quantised_normal(outputs, v, sigma, step, mean_slack=1e-6)
    assert (var > 1e-6).sum() >= 4 and (sigma < step).any()


@pytest.mark.parametrize("torch_path", [False, True], ids=["compiled", "torch"])
def test_soft_vectors_saturate_with_the_exact_probability_and_only_they_are_converted_again(torch_path,
                                                                                         monkeypatch):
    """One output sits so close to the bound that noise pushes it past with probability p: such a vector
    is converted again at f = 2 (where it fits), every other vector once."""
    sizes = []
    if torch_path:
        monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
        original = SpikeAnalogMVM._output_stage.__func__
        monkeypatch.setattr(SpikeAnalogMVM, "_output_stage", classmethod(
            lambda cls, values, *a, **k: sizes.append(values.shape[0]) or original(cls, values, *a, **k)))
    else:
        sizes = record_general_rounds(monkeypatch)
    io = hwa_config().forward
    step, sigma = np.float32(adc_step(io)), io.out_noise
    codes = np.arange(200, 300, dtype=np.float32)
    top = float(codes[codes * step <= np.float32(io.out_bound)].max())
    target = (top + 0.5) * float(step) - 0.4 * sigma  # P(code > top) = 1 - Phi(0.4)
    p_fail = 1 - 0.5 * (1 + math.erf(0.4 / math.sqrt(2)))
    row = torch.tensor([1.0, 0.3] * 5)  # abs-max 1; DAC levels 1 and 19/63
    weight = torch.zeros(3, 10)
    weight[1] = 0.3
    layer, tile = make_layer(hwa_config(weight_noise=False), weight)
    res = io.inp_res * (2 * io.inp_bound)
    dac = torch.round(row / res) * res  # aihwkit's float32 operations
    with torch.no_grad():
        tile.tile.weight[0] = target / float(dac.sum())
    rows = 10000
    torch.manual_seed(3)
    layer(row.expand(rows, 10).clone())
    counts = [n for _, n in sizes] if not torch_path else sizes
    assert len(counts) == 2 and counts[0] == rows
    fraction = counts[1] / rows
    assert abs(fraction - p_fail) <= 5 * math.sqrt(p_fail * (1 - p_fail) / rows)


def test_soft_input_generator_follows_torch_seed():
    weight, alpha, x = soft_case()
    first = run_layer(hwa_config(), x, weight, alpha, True)  # run_layer seeds torch before the call
    again = run_layer(hwa_config(), x, weight, alpha, True)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_soft_input_saves_int16_codes_and_no_output_sized_floats():
    rows, f_in, f_out = 2000, 40, 64
    weight = (torch.rand(f_out, f_in, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 0.5
    x = torch.rand(rows, f_in, generator=torch.Generator().manual_seed(5))
    saved = saved_by_layer(hwa_config(), x, weight, True)
    assert not [dtype for _, dtype, numel in saved if dtype.is_floating_point and numel >= rows * f_out]
    assert [dtype for _, dtype, numel in saved if numel == rows * f_out] == [torch.int16]


@pytest.mark.parametrize("change", [{"inp_noise": 0.01}, {"inp_sto_round": True}, {"inp_asymmetry": 0.1},
                                    {"inp_res": -1.0}, {"nm_thres": 0.5}, {"out_sto_round": True},
                                    {"out_asymmetry": 0.1}, {"out_res": -1.0}, {"noise_management": "MAX"},
                                    {"noise_management": "NONE"}, {"bound_management": "ITERATIVE_WORST_CASE"}])
def test_other_soft_input_settings_take_the_torch_path(monkeypatch, change):
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    enums = {"noise_management": NoiseManagementType, "bound_management": BoundManagementType}
    change = {k: enums[k][v] if k in enums else v for k, v in change.items()}
    rounds = record_general_rounds(monkeypatch)
    weight, alpha, x = soft_case()
    out = run_layer(hwa_config(**change), x, weight, alpha, True)
    assert rounds == [] and torch.isfinite(out[0]).all()
    run_layer(hwa_config(), x, weight, alpha, True)
    assert rounds and rounds[0][0] == 0  # the preset's own settings do take it
