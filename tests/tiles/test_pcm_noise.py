"""PCMNoiseModel: statistics on large arrays against the configured formulas."""

import math

import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.models import SNUNetwork
from analog_snu.pcm import PCMDevice, preset
from analog_snu.pcm.physics import STUCK_AT_GMAX, STUCK_AT_ZERO
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.pcm_noise import PCMNoiseModel

ROWS, COLS = 200, 500  # 100,000 weights


def _model(changes=None, name="pcm_joshi2020"):
    return PCMNoiseModel(preset(name).updated(changes or {}))


def _constant_weights(value):
    weights = torch.full((ROWS, COLS), value)
    weights[0, 0] = 1.0  # sets max|W| = 1, so G = value * g_max
    return weights


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_single_pair_mapping_hand_values():
    model = _model()
    g, scale = model.conductance_targets(torch.tensor([[-1.0, 0.5, 1.0, 0.0]]))
    assert scale == pytest.approx(25.0)
    assert g.shape == (1, 2, 1, 4)
    assert g[0, 0, 0].tolist() == pytest.approx([0.0, 12.5, 25.0, 0.0])  # G+
    assert g[0, 1, 0].tolist() == pytest.approx([25.0, 0.0, 0.0, 0.0])  # G-


def test_two_pairs_fill_in_order_and_invert():
    model = _model({"conductance": {"significance": [1.0, 3.0]}})
    weights = torch.tensor([[1.0, 0.5, -0.125]])
    g, scale = model.conductance_targets(weights)
    assert scale == pytest.approx(100.0)  # 25 uS * (1 + 3) per unit weight
    # 0.5 -> 50 uS of weight: pair 0 saturates at 25, pair 1 holds (50 - 25) / 3
    assert g[0, 0, 0, 1].item() == pytest.approx(25.0) and g[1, 0, 0, 1].item() == pytest.approx(25.0 / 3)
    assert g[0, 1, 0, 2].item() == pytest.approx(12.5) and g[1, 1, 0, 2].item() == 0.0
    assert torch.equal(model.weights_from_conductances(g, scale), weights)


def test_programming_noise_std_follows_polynomial():
    model = _model({"drift": {"enabled": False}, "read_noise": {"enabled": False}})
    state = model.program_state(_constant_weights(0.5), _gen())
    delta = (state.g_programmed[0, 0] - state.g_target[0, 0]).flatten()[1:]  # G+ devices at 12.5 uS
    x = 0.5
    expected = 0.26348 + 1.9650 * x - 1.1731 * x**2  # uS, g_max = reference = 25
    assert delta.mean().item() == pytest.approx(0.0, abs=4 * expected / math.sqrt(delta.numel()))
    assert delta.std().item() == pytest.approx(expected, rel=0.02)


def test_programming_noise_scales_with_g_max_and_scale():
    model = _model({"conductance": {"g_max": 10.0}, "programming": {"scale": 2.0}})
    state = model.program_state(_constant_weights(1.0), _gen(1))
    delta = (state.g_programmed[0, 0] - state.g_target[0, 0]).flatten()
    expected = 2.0 * (0.26348 + 1.9650 - 1.1731) * 10.0 / 25.0
    assert delta.std().item() == pytest.approx(expected, rel=0.02)


def test_mean_drift_matches_power_law():
    model = _model({"programming": {"enabled": False}, "read_noise": {"enabled": False}})
    state = model.program_state(_constant_weights(1.0), _gen(2))
    nu = state.nu[0, 0].flatten()
    assert nu.mean().item() == pytest.approx(0.049, rel=0.01)  # mu_nu at G = g_max (clipped)
    assert nu.std().item() == pytest.approx(0.008, rel=0.03)
    t, t0 = 86_400.0, 20.0
    model.drift_state(state, t, _gen(3))
    ratio = (state.g_now[0, 0] / state.g_programmed[0, 0]).flatten()
    log_t = math.log((t + t0) / t0)
    # nu ~ N(0.049, 0.008): E[((t+t0)/t0)^-nu] = exp(-mu L + sigma^2 L^2 / 2) (log-normal mean)
    expected = math.exp(-0.049 * log_t + 0.008**2 * log_t**2 / 2)
    assert ratio.mean().item() == pytest.approx(expected, rel=0.005)
    assert state.t_now == t
    assert torch.equal(state.g_now[0, 1], torch.zeros_like(state.g_now[0, 1]))  # G- of positive weights stays 0


def test_read_noise_std_follows_one_over_f():
    model = _model({"programming": {"enabled": False}, "drift": {"enabled": False}})
    state = model.program_state(_constant_weights(1.0), _gen(4))
    t = 3600.0
    model.drift_state(state, t, _gen(5))
    rel = (state.g_now[0, 0] / state.g_programmed[0, 0] - 1).flatten()
    expected = 0.0088 * math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    assert rel.std().item() == pytest.approx(expected, rel=0.02)


def test_stuck_fractions_and_values():
    model = _model({"stuck": {"fraction_at_gmax": 0.02, "fraction_at_zero": 0.05}})
    state = model.program_state(_constant_weights(0.5), _gen(6))
    n = state.stuck.numel()
    for flag, p in ((STUCK_AT_GMAX, 0.02), (STUCK_AT_ZERO, 0.05)):
        frac = (state.stuck == flag).double().mean().item()
        assert frac == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))
    at_gmax, at_zero = state.stuck == STUCK_AT_GMAX, state.stuck == STUCK_AT_ZERO
    assert torch.equal(state.g_programmed[at_gmax], state.g_max_device[at_gmax])
    assert (state.g_programmed[at_zero] == 0).all()
    assert (state.nu[at_gmax | at_zero] == 0).all()


def test_g_max_spread_and_cut():
    model = _model({"conductance": {"g_max_spread": 0.1}, "programming": {"enabled": False}})
    state = model.program_state(_constant_weights(1.0), _gen(7))
    rel = state.g_max_device.flatten() / 25.0
    assert rel.mean().item() == pytest.approx(1.0, abs=0.002)
    assert rel.std().item() == pytest.approx(0.1, rel=0.02)
    assert (state.g_target <= state.g_max_device).all()  # targets above a device's own g_max are cut


def test_ideal_device_programs_exactly():
    model = PCMNoiseModel(preset("ideal"))
    weights = torch.randn(50, 40)
    state = model.program_state(weights, _gen())
    assert torch.equal(state.weights_programmed, weights)
    model.drift_state(state, 3.0e8, _gen())
    assert torch.equal(state.weights_now, weights)


def test_same_seed_same_state_other_seed_differs():
    model = _model({"stuck": {"fraction_at_zero": 0.1}})
    weights = torch.randn(20, 30)
    a, b, c = (model.program_state(weights, _gen(s)) for s in (1, 1, 2))
    assert torch.equal(a.g_programmed, b.g_programmed) and torch.equal(a.nu, b.nu) and torch.equal(a.stuck, b.stuck)
    assert not torch.equal(a.g_programmed, c.g_programmed)


def test_switching_one_nonideality_off_keeps_the_others_realisation():
    weights = torch.randn(20, 30)
    full = _model().program_state(weights, _gen(9))
    no_prog = _model({"programming": {"enabled": False}}).program_state(weights, _gen(9))
    assert torch.equal(full.nu, no_prog.nu)


def test_aihwkit_program_and_drift_fill_the_state():
    net = SNUNetwork([6, 5, 3], rpu_config=device_rpu_config(preset("pcm_joshi2020"), "inference"))
    net.eval()
    net.program_analog_weights()
    net.drift_analog_weights(100.0)
    tiles = list(net.analog_tiles())
    states = [tile.rpu_config.noise_model.state for tile in tiles]
    assert states[0] is not states[1]  # every tile owns its model
    assert states[0].g_now.shape == (1, 2, 5, 6) and states[0].t_now == 100.0
    assert torch.equal(tiles[0].tile.get_weights(), states[0].weights_now)


def test_errors():
    model = _model()
    state = model.program_state(torch.randn(3, 4), _gen())
    with pytest.raises(ConfigError, match="t_seconds must be a finite number >= 0"):
        model.drift_state(state, -1.0)
    with pytest.raises(ConfigError, match="device must be a PCMDevice, got dict"):
        PCMNoiseModel({})
    with pytest.raises(ConfigError, match="mode 'pulsed' supports one G\\+/G- pair per weight"):
        device_rpu_config(PCMDevice().updated({"conductance": {"significance": [1.0, 2.0]}}), "pulsed")


@pytest.mark.parametrize("mode", ["inference", "hwa", "pulsed"])
def test_rpu_configs_build_trainable_layers(mode):
    net = SNUNetwork([6, 5, 3], rpu_config=device_rpu_config(preset("pcm_aged_lowyield"), mode))
    out = net(torch.bernoulli(torch.full((4, 2, 6), 0.5)))
    out.sum().backward()
    assert out.shape == (2, 3)
