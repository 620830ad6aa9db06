"""The spike tile's compiled spike path takes its crossbar product and weight gradient as gather-sums
over the input's 1s (:mod:`analog_snu.functional.spike_linear`) where the input is sparse enough.

Reference: the same layer with ``ANALOG_SNU_DENSE_SPIKES=1`` (the dense GEMMs, as before). With
tile weights on a power-of-two grid, 0/1 inputs, output gradients on a 1/8 grid, power-of-two
scalings and no noise, every sum of either path is exact, so the two agree bit for bit; with the
noise on, the weights are arbitrary floats and the sums differ by float rounding. (An ADC code
could then in principle differ where a product lies within a rounding of a code boundary: about
1e-6 per output at these sizes; the cases are seeded.) The random draws do not depend on the path.
"""

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.configs import WeightModifierType

from analog_snu.functional.spike_linear import DENSE_SPIKES_ENV, SPIKE_MIN_WORK
from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import analog_optimizer, device_rpu_config, fused_periphery


def rpu_config(mode, noise):
    rpu = device_rpu_config(preset("pcm_joshi2020"), mode)
    if not noise:
        rpu.forward.out_noise = 0.0
        rpu.modifier.type = WeightModifierType.NONE
    return rpu


def spikes(rows, cols, rate, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((rows, cols), rate, dtype=dtype), generator=gen)


def grid_weight(f_out, f_in, seed=1, dtype=torch.float32):
    """Multiples of 1/64 in [-0.5, 0.5] with max |w| = 0.5: the tile weights (w / max|w|) are multiples of 1/32."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-32, 33, (f_out, f_in), generator=gen).to(dtype) / 64
    weight[0, 0] = 0.5
    return weight


def spy(monkeypatch):
    """Calls of the gather-sums from the tile: ``{"product": [(R, F_in)...], "weight_gradient": [...]}``."""
    calls = {"product": [], "weight_gradient": []}
    product, weight_gradient = fused_periphery.spike_product, fused_periphery.spike_weight_gradient
    monkeypatch.setattr(fused_periphery, "spike_product",
                        lambda s, w: calls["product"].append(s.shape) or product(s, w))
    monkeypatch.setattr(fused_periphery, "spike_weight_gradient",
                        lambda s, g: calls["weight_gradient"].append(s.shape) or weight_gradient(s, g))
    return calls


def run_layer(monkeypatch, rpu, x, weight, dense, input_grad=True, train=True):
    """Output, gradients of input, tile weights and learned output scales, and torch's random state
    after one forward and backward of an AnalogLinear layer."""
    if dense:
        monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
    else:
        monkeypatch.delenv(DENSE_SPIKES_ENV, raising=False)
    torch.manual_seed(0)
    layer = AnalogLinear(weight.shape[1], weight.shape[0], bias=False, rpu_config=rpu).to(x.dtype)
    layer.set_weights(weight)
    layer.train(train)
    x = x.clone().requires_grad_(input_grad)
    torch.manual_seed(1)
    out = layer(x)
    grad_out = torch.randint(-8, 9, out.shape, generator=torch.Generator().manual_seed(2)).to(out.dtype) / 8
    (out * grad_out).sum().backward()
    tiles = list(layer.analog_tiles())
    weight_grads = [tile.tile.weight.grad for tile in tiles]
    alpha_grads = [tile.out_scaling_alpha.grad for tile in tiles if tile.out_scaling_alpha is not None]
    return out.detach(), x.grad, weight_grads, alpha_grads, torch.get_rng_state()


def assert_same(got, want, exact):
    def check(a, b):
        if a is None or b is None:
            assert a is None and b is None
        elif exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))

    out, grad_x, weight_grads, alpha_grads, rng = got
    want_out, want_grad_x, want_weight_grads, want_alpha_grads, want_rng = want
    check(out, want_out)
    check(grad_x, want_grad_x)
    assert len(weight_grads) == len(want_weight_grads) and len(alpha_grads) == len(want_alpha_grads)
    for a, b in zip(weight_grads + alpha_grads, want_weight_grads + want_alpha_grads):
        check(a, b)
    assert torch.equal(rng, want_rng)  # the same draws, as many


ROWS, F_IN, F_OUT = 128, 512, 40  # 2.6M multiply-accumulates


def test_the_case_passes_the_work_bar():
    assert ROWS * F_IN * F_OUT >= SPIKE_MIN_WORK > ROWS * F_IN * F_OUT // 2


@pytest.mark.parametrize("mode", ["hwa", "inference"])
@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("input_grad", [True, False])
def test_sparse_spikes_take_gather_sums_and_equal_the_dense_path(monkeypatch, mode, noise, input_grad):
    x = spikes(ROWS, F_IN, 0.04)
    weight = grid_weight(F_OUT, F_IN)
    want = run_layer(monkeypatch, rpu_config(mode, noise), x, weight, True, input_grad)
    calls = spy(monkeypatch)
    got = run_layer(monkeypatch, rpu_config(mode, noise), x, weight, False, input_grad)
    assert calls == {"product": [(ROWS, F_IN)], "weight_gradient": [(ROWS, F_IN)]}
    assert float(want[0].abs().max()) > 0 and float(want[2][0].abs().max()) > 0
    assert (len(want[3]) == 1) == (mode == "hwa")  # learned output scales in the HWA config
    assert_same(got, want, exact=not noise)


def test_the_dense_switch_and_eval_mode(monkeypatch):
    """With the switch, no gather-sums; without a gradient (eval mode), the product only."""
    x, weight = spikes(ROWS, F_IN, 0.04), grid_weight(F_OUT, F_IN)
    calls = spy(monkeypatch)
    run_layer(monkeypatch, rpu_config("hwa", True), x, weight, True)
    assert calls == {"product": [], "weight_gradient": []}
    monkeypatch.delenv(DENSE_SPIKES_ENV)
    torch.manual_seed(0)
    layer = AnalogLinear(F_IN, F_OUT, bias=False, rpu_config=rpu_config("hwa", False)).eval()
    layer.set_weights(weight)
    with torch.no_grad():
        out = layer(x)
    monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
    with torch.no_grad():
        assert torch.equal(layer(x), out)
    assert calls == {"product": [(ROWS, F_IN)], "weight_gradient": []}


def test_float64_noise_off_is_exact(monkeypatch):
    x, weight = spikes(ROWS, F_IN, 0.04, dtype=torch.float64), grid_weight(F_OUT, F_IN, dtype=torch.float64)
    want = run_layer(monkeypatch, rpu_config("hwa", False), x, weight, True)
    calls = spy(monkeypatch)
    got = run_layer(monkeypatch, rpu_config("hwa", False), x, weight, False)
    assert len(calls["product"]) == 1 and got[0].dtype == torch.float64
    assert_same(got, want, exact=True)


@pytest.mark.parametrize("case", ["too_dense", "too_little_work"])
def test_dense_or_small_inputs_keep_the_gemms(monkeypatch, case):
    if case == "too_dense":  # 30 % ones: past the density limit
        x, weight = spikes(ROWS, F_IN, 0.3), grid_weight(F_OUT, F_IN)
    else:  # 32 rows: 0.65M multiply-accumulates
        x, weight = spikes(32, F_IN, 0.04), grid_weight(F_OUT, F_IN)
    want = run_layer(monkeypatch, rpu_config("hwa", True), x, weight, True)
    calls = spy(monkeypatch)
    got = run_layer(monkeypatch, rpu_config("hwa", True), x, weight, False)
    assert calls == {"product": [], "weight_gradient": []}
    assert_same(got, want, exact=True)


@pytest.mark.parametrize("noise", [False, True])
def test_a_layer_split_over_two_tiles(monkeypatch, noise):
    """784 inputs: aihwkit gives each of two tiles a 392-column slice of every input vector."""
    x, weight = spikes(ROWS, 784, 0.04, seed=3), grid_weight(48, 784, seed=4)  # 2.4M multiply-accumulates a tile
    want = run_layer(monkeypatch, rpu_config("hwa", noise), x, weight, True)
    calls = spy(monkeypatch)
    got = run_layer(monkeypatch, rpu_config("hwa", noise), x, weight, False)
    assert len(want[2]) == 2
    assert calls == {"product": [(ROWS, 392)] * 2, "weight_gradient": [(ROWS, 392)] * 2}
    assert_same(got, want, exact=not noise)


def network_step(monkeypatch, dense, noise):
    """One training step of a preset HWA SNU network: logits, each layer's spikes, the parameters'
    gradients and values after an SGD step, and torch's random state."""
    if dense:
        monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
    else:
        monkeypatch.delenv(DENSE_SPIKES_ENV, raising=False)
    torch.manual_seed(5)
    net = SNUNetwork([256, 128, 128, 10], threshold=0.3, rpu_config=rpu_config("hwa", noise))
    with torch.no_grad():
        for tile in net.analog_tiles():  # crossbar weights on a 1/64 grid: exact products
            tile.tile.weight.copy_(torch.round(tile.tile.weight * 64) / 64)
    optimizer = analog_optimizer(net, torch.optim.SGD, lr=0.1)
    x = spikes(10 * 16, 256, 0.05, seed=6).reshape(10, 16, 256)
    labels = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(7))
    torch.manual_seed(8)
    hidden, y = [], x
    for layer in net.layers:
        y, _ = layer(y)
        hidden.append(y.detach())
    logits = net.readout(y.mean(0))
    torch.nn.functional.cross_entropy(logits, labels).backward()
    parameters = {name: p for name, p in net.named_parameters() if "analog_ctx" not in name}  # not the placeholders
    grads = {name: p.grad.clone() for name, p in parameters.items()}
    optimizer.step()
    params = {name: p.detach().clone() for name, p in parameters.items()}
    return logits.detach(), hidden, grads, params, torch.get_rng_state()


@pytest.mark.parametrize("noise", [False, True])
def test_snu_network_training_step_equals_the_dense_path(monkeypatch, noise):
    want = network_step(monkeypatch, True, noise)
    calls = spy(monkeypatch)
    got = network_step(monkeypatch, False, noise)
    assert calls["product"] == [(160, 256), (160, 128)] and calls["weight_gradient"] == calls["product"][::-1]
    (logits, hidden, grads, params, rng), (want_logits, want_hidden, want_grads, want_params, want_rng) = got, want
    assert torch.equal(rng, want_rng)
    assert all(0.01 < float(h.mean()) < 0.2 for h in want_hidden)  # sparse hidden spikes (below the density limit)
    if not noise:  # exact products: the same spikes and outputs bit for bit
        assert all(torch.equal(h, w) for h, w in zip(hidden, want_hidden)) and torch.equal(logits, want_logits)
    else:
        torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
    assert grads.keys() == want_grads.keys() and len(grads) == 9
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(params[name], want_params[name], rtol=1e-5, atol=1e-6, msg=name)
