"""program / drift / device_count on whole networks, inference and pulsed tiles."""

import pytest
import torch

from analog_snu import SNUNetwork, device_count, drift, program
from analog_snu.errors import ConfigError
from analog_snu.hardware import programmed_states
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, make_linear


def _net(name="pcm_joshi2020", mode="inference", sizes=(8, 6, 3), **kw):
    torch.manual_seed(0)
    return SNUNetwork(list(sizes), rpu_config=device_rpu_config(preset(name), mode), **kw)


def _x():
    return torch.bernoulli(torch.full((5, 4, 8), 0.4), generator=torch.Generator().manual_seed(1))


def _tile_weights(net):
    return [tile.tile.get_weights().clone() for tile in net.analog_tiles()]


def test_device_count_of_the_paper_network_is_52800():
    net = SNUNetwork([88, 150, 88], output="sequence", rpu_config=device_rpu_config(preset("pcm_joshi2020"), "inference"))
    counts = device_count(net)
    assert counts == {"layers.0.weight_ih": 2 * 88 * 150, "readout": 2 * 150 * 88, "total": 52_800}
    two_pairs = preset("pcm_joshi2020").updated({"conductance": {"significance": [1.0, 2.0]}})
    net2 = SNUNetwork([88, 150, 88], rpu_config=device_rpu_config(two_pairs, "inference"))
    assert device_count(net2)["total"] == 105_600


@pytest.mark.parametrize("mode", ["inference", "hwa"])
def test_ideal_preset_equals_digital_exactly(mode):
    torch.manual_seed(0)
    digital = SNUNetwork([8, 6, 3])
    analog = _net("ideal", mode)
    analog.layers[0].weight_ih.set_weights(digital.layers[0].weight_ih.weight.detach())
    analog.readout.set_weights(digital.readout.weight.detach(), digital.readout.bias.detach())
    digital.eval(), analog.eval()
    x = _x()
    assert torch.equal(digital(x), analog(x))
    program(analog, seed=3)
    drift(analog, 3.0e8)
    assert torch.equal(digital(x), analog(x))


def test_program_and_drift_are_reproducible_from_the_seed():
    net = _net()
    program(net, seed=5)
    drift(net, 86_400.0)
    first = _tile_weights(net)
    program(net, seed=5)  # starts again from the trained (reference) weights
    drift(net, 86_400.0)
    assert all(torch.equal(a, b) for a, b in zip(first, _tile_weights(net)))
    program(net, seed=6)
    drift(net, 86_400.0)
    assert not torch.equal(first[0], _tile_weights(net)[0])
    drift(net, 86_400.0, seed=11)  # explicit seed: another read-noise draw, same devices
    assert not torch.equal(first[0], _tile_weights(net)[0])


def test_states_record_seed_and_time():
    net = _net()
    program(net, seed=4)
    states = drift(net, 3600.0)
    assert set(states) == {"layers.0.weight_ih.analog_module", "readout.analog_module"}
    for state in programmed_states(net).values():
        assert state.program_seed == 4 and state.t_now == 3600.0 and state.drift_seed is not None


def test_drift_works_on_pulsed_tiles_unlike_aihwkit():
    net = _net(mode="pulsed")
    net.eval()
    trained = _tile_weights(net)
    net.drift_analog_weights(86_400.0)  # aihwkit skips pulsed tiles silently
    assert all(torch.equal(a, b) for a, b in zip(trained, _tile_weights(net)))
    program(net, seed=1)
    programmed = _tile_weights(net)
    drift(net, 86_400.0)
    drifted = _tile_weights(net)
    assert not torch.equal(programmed[0], drifted[0])
    # drift shrinks conductances: |W| goes down on average (before compensation, which is digital)
    assert drifted[0].abs().mean() < 0.99 * programmed[0].abs().mean()


def test_stock_pulsed_config_needs_a_device():
    torch.manual_seed(0)
    from aihwkit.simulator.presets import PCMPreset  # aihwkit's own config: no device model of ours

    net = SNUNetwork([8, 6, 3], rpu_config=PCMPreset())
    with pytest.raises(ConfigError, match=r"has no PCM device model .* pass device= a PCMDevice or one of the presets"):
        program(net)
    program(net, seed=0, device="pcm_joshi2020")
    drift(net, 3600.0)
    assert device_count(net)["total"] == 2 * (8 * 6 + 6 * 3)


def _mean_abs_output(layer, x):
    torch.manual_seed(0)
    return layer(x).abs().mean().item()


def test_global_compensation_restores_the_mean_output():
    quiet = {"programming": {"enabled": False}, "read_noise": {"enabled": False},
             "periphery": {"out_noise": 0.0, "adc_bits": 0, "dac_bits": 0}}
    results = {}
    for scheme in ("global", "none"):
        device = preset("pcm_joshi2020").updated({**quiet, "periphery": {**quiet["periphery"], "drift_compensation": scheme}})
        torch.manual_seed(0)
        layer = make_linear(64, 32, device_rpu_config(device, "inference"))
        layer.eval()
        eye, x = torch.eye(64), torch.rand(256, 64)
        before = _mean_abs_output(layer, eye), _mean_abs_output(layer, x)
        program(layer, seed=0)
        drift(layer, 31_536_000.0)  # one year
        results[scheme] = _mean_abs_output(layer, eye) / before[0], _mean_abs_output(layer, x) / before[1]
    # aihwkit's read-out is the identity: its mean |output| is restored; random inputs nearly so
    assert results["global"][0] == pytest.approx(1.0, abs=0.005)
    assert results["global"][1] == pytest.approx(1.0, abs=0.06)
    # drift alone: about ((t + t0) / t0) ** -nu, nu ~ 0.05-0.1
    assert results["none"][0] < 0.6 and results["none"][1] < 0.6


def test_errors():
    net = _net()
    with pytest.raises(ConfigError, match="is not programmed; call analog_snu.program"):
        drift(net, 10.0)
    with pytest.raises(ConfigError, match="t_seconds must be a finite time >= 0"):
        drift(net, -1.0)
    with pytest.raises(ConfigError, match="seed must be a non-negative int or None"):
        program(net, seed=-3)
    for seed in (2**32, 2**63, 2**64):  # beyond what the derived streams fit into torch's 64-bit seeds
        with pytest.raises(ConfigError, match=r"seed must be a non-negative int or None, got \d+ \(seeds are ints in"):
            program(net, seed=seed)
    program(net, seed=2**32 - 1)  # the largest seed works
    with pytest.raises(ConfigError, match="the model has no analog tiles"):
        program(SNUNetwork([4, 3, 2]))
    with pytest.raises(ConfigError, match=r"device 'nope' is neither a preset nor a device file \(\.toml or \.json\); valid presets"):
        program(net, device="nope")
    with pytest.raises(ConfigError, match="device must be a PCMDevice, a preset name"):
        program(net, device=3)
