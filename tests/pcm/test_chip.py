"""The simulated HIL chip: programming events, mixed-precision pulses and refresh, working-device
drift compensation, state export/restore."""

import math

import pytest
import torch

from analog_snu import SNUNetwork, drift, program
from analog_snu.errors import CheckpointError, ConfigError, InputValueError
from analog_snu.pcm import preset
from analog_snu.pcm.chip import SimulatedChip
from analog_snu.pcm.mixed_precision import mixed_precision_transfer, refresh_mask, set_pulses
from analog_snu.pcm.physics import STUCK_AT_GMAX, STUCK_NONE
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.tile_access import named_layer_tiles, tile_noise_model

SHAPES = {"a": (4, 5), "b": (3, 4)}


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()}


def _ideal_pulses():
    return preset("ideal").updated({"pulsed": {"dw_min_std": 0.0, "gamma": 0.0, "reset_dtod": 0.0}})


def test_forced_rounds_of_an_unchanged_w_count_k_events_unforced_ones_count_only_the_first():
    w = _weights()
    forced = SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=0)
    plain = SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=0)
    k = 4
    for _ in range(k):
        for name in SHAPES:
            forced.program(name, w[name], force=True)
            plain.program(name, w[name])
        forced.advance(10.0), plain.advance(10.0)
    for name in SHAPES:
        assert torch.equal(forced.arrays[name].programming_events, torch.full_like(forced.arrays[name].programming_events, k))
        assert torch.equal(plain.arrays[name].programming_events, torch.ones_like(plain.arrays[name].programming_events))


def test_only_devices_whose_target_changed_are_programmed():
    chip = SimulatedChip(preset("ideal"), {"a": (2, 3)}, seed=0, headroom=2.0)
    w = torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.5, -1.0]])
    assert chip.program("a", w) == 12  # first programming: every device
    w2 = w.clone()
    w2[0, 0] = 0.9  # G+ of (0, 0) changes; its G- stays at 0
    w2[1, 2] = 0.5  # sign flip: both devices change
    assert chip.program("a", w2) == 3
    events = chip.arrays["a"].programming_events[0]  # (2, F_out, F_in)
    assert events[0, 0, 0] == 2 and events[1, 0, 0] == 1
    assert events[0, 1, 2] == 2 and events[1, 1, 2] == 2
    assert int(events.sum()) == 12 + 3
    assert torch.equal(chip.nominal_weights("a"), w2)  # ideal device: exact
    # beyond the range (headroom 2 x max|W| = 2) every target changes: the scale is re-chosen
    assert chip.program("a", w2 * 3) == 12


def test_reads_drift_from_each_devices_own_programming_time():
    dev = preset("pcm_joshi2020").updated({"read_noise": {"enabled": False}, "programming": {"enabled": False},
                                          "periphery": {"drift_compensation": "none"}})
    chip = SimulatedChip(dev, {"a": (1, 2)}, seed=0, headroom=1.0)
    w = torch.tensor([[1.0, 0.5]])
    chip.program("a", w)
    chip.advance(100.0)
    chip.program("a", torch.tensor([[1.0, 0.4]]))  # only (0, 1)'s G+ is rewritten, at t = 100 s
    chip.advance(1000.0)
    read, alpha = chip.read("a")
    arr, t0 = chip.arrays["a"], dev.drift.t0
    nu = arr.nu[0, 0, 0]
    expected0 = 1.0 * ((1100.0 + t0) / t0) ** (-float(nu[0]))
    expected1 = 0.4 * ((1000.0 + t0) / t0) ** (-float(nu[1]))
    assert read[0, 0].item() == pytest.approx(expected0, rel=1e-6)
    assert read[0, 1].item() == pytest.approx(expected1, rel=1e-6)
    assert alpha.tolist() == [1.0]


def test_mixed_transfer_rule_matches_aihwkit_truncation():
    chi = torch.tensor([0.35, -0.35, 0.09, -0.09, 0.3], dtype=torch.float64)
    n, rest = mixed_precision_transfer(chi, 0.1)
    assert n.tolist() == [3, -3, 0, 0, 2] or n.tolist() == [3, -3, 0, 0, 3]  # 0.3/0.1 may round either way
    assert torch.allclose(n.to(torch.float64) * 0.1 + rest, chi, atol=1e-15)
    assert bool((rest.abs() < 0.1).all())


def test_set_pulses_follow_the_closed_form_and_saturate():
    g = torch.tensor([0.0, 5.0, 24.0], dtype=torch.float64)
    g_max = torch.full_like(g, 25.0)
    n = torch.tensor([3, 2, 10])
    flat = set_pulses(g, n, g_max, step=0.5, gamma=0.0, std=0.0, draw=torch.zeros_like(g))
    assert flat.tolist() == [1.5, 6.0, 25.0]
    curved = set_pulses(g, n, g_max, step=0.5, gamma=2.0, std=0.0, draw=torch.zeros_like(g))
    expected = 25.0 / 2.0 * math.log(math.exp(2.0 * 5.0 / 25.0) + 2.0 * 0.5 * 2 / 25.0)
    assert curved[1].item() == pytest.approx(expected, rel=1e-12)
    assert curved[0].item() < 1.5  # the step shrinks as the device fills
    noisy = set_pulses(g, torch.zeros_like(n), g_max, 0.5, 2.0, 0.6, torch.randn(3, dtype=torch.float64))
    assert torch.equal(noisy, g)  # no pulse, no change


def test_refresh_criterion():
    plus = torch.tensor([20.0, 20.0, 10.0])
    minus = torch.tensor([7.0, 5.0, 7.0])
    g_max = torch.full((3,), 25.0)
    mask = refresh_mask(plus, minus, g_max, g_max, torch.tensor([True, True, True]), 0.75, 0.25)
    assert mask.tolist() == [True, False, False]
    assert not refresh_mask(plus, minus, g_max, g_max, torch.tensor([False] * 3), 0.75, 0.25).any()


def test_mixed_conservation_pulses_times_granularity_plus_chi_is_the_requested_sum():
    dev = preset("pcm_joshi2020")
    chip = SimulatedChip(dev, SHAPES, seed=1, granularity=0.004)
    w = _weights(1)
    requested_sum = {}
    chi = {}
    signed = {}
    for name in SHAPES:
        chip.program(name, w[name], force=True)
        chi[name] = torch.zeros(SHAPES[name], dtype=torch.float64)
        requested_sum[name] = torch.zeros(SHAPES[name], dtype=torch.float64)
        signed[name] = torch.zeros(SHAPES[name], dtype=torch.int64)
    g = torch.Generator().manual_seed(2)
    for _ in range(30):
        chip.advance(1.0)
        for name in SHAPES:
            update = 0.05 * torch.randn(SHAPES[name], generator=g, dtype=torch.float64)
            requested_sum[name] += update
            n, chi[name] = chip.apply_update(name, chi[name] + update)
            signed[name] += n
    for name in SHAPES:
        eps = chip.granularity_weight(name)
        applied = signed[name].to(torch.float64) * eps
        assert torch.allclose(applied + chi[name], requested_sum[name], atol=1e-9)
        assert bool((chi[name].abs() < eps).all())
        pulses = chip.arrays[name].set_pulses[0]
        # G+ got the positive pulses, G- the negative ones (net count = signed sum when no sign
        # alternates within a batch: both counts only grow)
        assert int((pulses[0] - pulses[1]).sum()) == int(signed[name].sum())
        assert int(pulses.sum()) >= int(signed[name].abs().sum())


def test_refresh_happens_when_a_device_saturates():
    dev = _ideal_pulses()
    g_max = dev.conductance.g_max
    chip = SimulatedChip(dev, {"a": (1, 2)}, seed=0, headroom=4.0, granularity=1 / 64)
    chip.program("a", torch.tensor([[1.0, -1.0]]))  # |W| = 1 -> g_max / 4
    arr = chip.arrays["a"]
    assert chip.granularity_weight("a") == 0.0625  # (1/64) g_max / (g_max / 4)
    # 19 pulses to G- of (0, 0): 19/64 g_max, above the lower threshold; no refresh yet
    n, rest = chip.apply_update("a", torch.tensor([[-1.2, 0.0]], dtype=torch.float64))
    assert n.tolist() == [[-19, 0]] and rest[0, 0].item() == pytest.approx(-0.0125)
    assert arr.g_base[0, 1, 0, 0].item() == pytest.approx(19 / 64 * g_max, rel=1e-12)
    assert int(arr.refreshes.sum()) == 0
    # 35 pulses to G+: 1/4 + 35/64 = 51/64 g_max > 0.75 g_max: the pair is refreshed
    n, _ = chip.apply_update("a", torch.tensor([[2.2, 0.0]], dtype=torch.float64))
    assert n.tolist() == [[35, 0]]
    assert arr.refreshes.tolist() == [[[1, 0]]]
    assert arr.set_pulses[0, :, 0, 0].tolist() == [35, 19]
    reset = dev.pulsed.reset * g_max
    # both RESET, the difference (51 - 19)/64 g_max = g_max / 2 rewritten onto G+
    assert arr.g_base[0, 1, 0, 0].item() == pytest.approx(reset, rel=1e-12)
    assert arr.g_base[0, 0, 0, 0].item() == pytest.approx(reset + 0.5 * g_max, rel=1e-12)
    assert chip.nominal_weights("a")[0, 0].item() == pytest.approx(2.0, rel=1e-6)
    assert arr.programming_events[0, :, 0, 0].tolist() == [2, 1]  # G+ rewritten by the refresh


def test_stuck_devices_ignore_writes():
    dev = preset("pcm_joshi2020").updated({"stuck": {"fraction_at_gmax": 0.3, "fraction_at_zero": 0.3}})
    chip = SimulatedChip(dev, {"a": (6, 8)}, seed=3)
    chip.program("a", torch.randn(6, 8))
    arr = chip.arrays["a"]
    assert bool((arr.stuck != STUCK_NONE).any())
    at_gmax = arr.stuck == STUCK_AT_GMAX
    assert torch.equal(arr.g_base[at_gmax], arr.g_max_device[at_gmax])
    assert bool((arr.g_base[arr.stuck == 2] == 0).all())
    assert bool((arr.nu[arr.stuck != STUCK_NONE] == 0).all())
    chip.apply_update("a", torch.full((6, 8), 0.3, dtype=torch.float64))
    assert torch.equal(arr.g_base[at_gmax], arr.g_max_device[at_gmax])


def _scale_after(net, t_seconds, estimate="tile"):
    """Mean |compensated weight| over weights whose devices all work, at ``t_seconds`` relative to
    1 s. ``estimate``: ``"tile"`` the tile's alpha, ``"readout"`` aihwkit's global identity
    read-out over every weight (stuck ones included), ``"none"`` no compensation."""
    out = []
    for t in (1.0, t_seconds):
        drift(net, t)
        values = []
        for _, _, tile in named_layer_tiles(net):
            state = tile_noise_model(tile).state
            ok = (state.stuck == 0).all(0).all(0)  # (F_out, F_in)
            if estimate == "tile":
                alpha = torch.as_tensor(tile.alpha).reshape(-1, 1)
            elif estimate == "readout":
                alpha = state.weights_programmed.abs().mean() / state.weights_now.abs().mean()
            else:
                alpha = torch.ones(1, 1)
            values.append((state.weights_now * alpha)[ok].abs())
        out.append(torch.cat(values).mean().item())
    return out[1] / out[0]


@pytest.mark.parametrize("scheme", ["global", "per_column"])
def test_working_device_compensation_is_not_fooled_by_stuck_devices(scheme):
    dev = preset("pcm_aged_lowyield").updated({"periphery": {"drift_compensation": scheme}})
    torch.manual_seed(0)
    net = SNUNetwork([64, 48, 10], rpu_config=device_rpu_config(dev, "inference"))
    program(net, seed=0)
    year = 31_536_000.0
    assert 0.97 <= _scale_after(net, year) <= 1.03
    # what a read-out over every device (stuck at g_max included) gives, and no compensation
    assert _scale_after(net, year, "readout") < 0.95  # measured 0.925 (global)
    assert _scale_after(net, year, "none") < 0.8


def test_chip_read_compensation_restores_the_scale_on_the_aged_preset():
    dev = preset("pcm_aged_lowyield").updated({"periphery": {"drift_compensation": "global"}})
    chip = SimulatedChip(dev, {"a": (48, 64)}, seed=0, headroom=1.0)
    w = torch.randn(48, 64, generator=torch.Generator().manual_seed(0))
    chip.program("a", w)
    ok = (chip.arrays["a"].stuck == 0).all(0).all(0)
    chip.advance(1.0)
    w1, a1 = chip.read("a")
    chip.advance(31_536_000.0 - 1.0)
    wy, ay = chip.read("a")
    ratio = (wy * ay)[ok].abs().mean() / (w1 * a1)[ok].abs().mean()
    assert 0.97 <= ratio.item() <= 1.03
    assert ay.item() > 1.2  # a year of drift is being compensated


def test_state_round_trip_and_refusals():
    chip = SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=4)
    for name, w in _weights().items():
        chip.program(name, w)
        chip.apply_update(name, torch.full(SHAPES[name], 0.2, dtype=torch.float64))
    chip.advance(5.0)
    meta, tensors = chip.state_meta(), chip.state_tensors()
    other = SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=4)
    other.load_state(meta, tensors)
    a, b = chip.read("a"), other.read("a")  # same generator state and devices: identical reads
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert other.time == chip.time == 5.0

    fresh = SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=4)
    before = fresh.state_tensors()
    bad = dict(tensors)
    bad["chip/a/g_base"] = tensors["chip/a/g_base"].clone()
    bad["chip/a/g_base"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="'chip/a/g_base' holds NaN or inf"):
        fresh.load_state(meta, bad)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_tensors().items())  # unchanged
    with pytest.raises(CheckpointError, match="lacks tensor 'chip/b/set_pulses'"):
        fresh.load_state(meta, {k: v for k, v in tensors.items() if k != "chip/b/set_pulses"})
    bad = dict(tensors, **{"chip/a/stuck": torch.full_like(tensors["chip/a/stuck"], 7)})
    with pytest.raises(CheckpointError, match="stuck flags other than 0, 1, 2"):
        fresh.load_state(meta, bad)
    bad = dict(tensors, **{"chip/a/set_pulses": -tensors["chip/a/set_pulses"] - 1})
    with pytest.raises(CheckpointError, match="negative set_pulses counts"):
        fresh.load_state(meta, bad)
    with pytest.raises(CheckpointError, match=r"'chip/a/nu' is \(1, 2, 5, 4\)"):
        fresh.load_state(meta, dict(tensors, **{"chip/a/nu": tensors["chip/a/nu"].transpose(2, 3).contiguous()}))
    with pytest.raises(CheckpointError, match="seed is 4 in the checkpoint, 5 here"):
        SimulatedChip(preset("pcm_joshi2020"), SHAPES, seed=5).load_state(meta, tensors)
    with pytest.raises(CheckpointError, match="device is"):
        SimulatedChip(preset("pcm_aged_lowyield"), SHAPES, seed=4).load_state(meta, tensors)
    with pytest.raises(CheckpointError, match="holds tiles"):
        SimulatedChip(preset("pcm_joshi2020"), {"a": (4, 5)}, seed=4).load_state(meta, tensors)
    with pytest.raises(CheckpointError, match="version must be 1"):
        fresh.load_state({**meta, "version": 9}, tensors)
    with pytest.raises(CheckpointError, match="clock must be a finite number >= 0"):
        fresh.load_state({**meta, "time": -1.0}, tensors)
    with pytest.raises(CheckpointError, match="generator state is corrupt"):
        fresh.load_state(meta, dict(tensors, **{"chip/generator": torch.zeros_like(tensors["chip/generator"])}))


def test_bad_chip_arguments():
    dev = preset("pcm_joshi2020")
    with pytest.raises(ConfigError, match=r"granularity must be a number in \(0, 1\).*got 0"):
        SimulatedChip(dev, SHAPES, granularity=0)
    with pytest.raises(ConfigError, match=r"granularity must be a number in \(0, 1\).*got -0.1"):
        SimulatedChip(dev, SHAPES, granularity=-0.1)
    with pytest.raises(ConfigError, match="headroom must be a finite number >= 1"):
        SimulatedChip(dev, SHAPES, headroom=0.5)
    with pytest.raises(ConfigError, match="device must be a PCMDevice"):
        SimulatedChip("digital", SHAPES)
    with pytest.raises(ConfigError, match="seed must be a non-negative int"):
        SimulatedChip(dev, SHAPES, seed=-1)
    with pytest.raises(ConfigError, match="refresh thresholds must satisfy"):
        SimulatedChip(dev, SHAPES, refresh_upper=0.2, refresh_lower=0.5)
    with pytest.raises(ConfigError, match="shapes must name at least one tile"):
        SimulatedChip(dev, {})
    chip = SimulatedChip(dev, SHAPES)
    with pytest.raises(ConfigError, match="unknown tile 'z'"):
        chip.program("z", torch.zeros(1, 1))
    with pytest.raises(ConfigError, match=r"must have shape \(4, 5\), got \(5, 4\)"):
        chip.program("a", torch.zeros(5, 4))
    with pytest.raises(InputValueError, match="hold NaN or inf"):
        chip.program("a", torch.full((4, 5), float("nan")))
    with pytest.raises(ConfigError, match="is not programmed yet"):
        chip.apply_update("a", torch.zeros(4, 5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="seconds must be a finite number >= 0"):
        chip.advance(-1.0)
    two = SimulatedChip(dev.updated({"conductance": {"significance": [1.0, 2.0]}}), SHAPES)
    two.program("a", torch.randn(4, 5))
    with pytest.raises(ConfigError, match="one G\\+/G- pair per weight"):
        two.apply_update("a", torch.zeros(4, 5, dtype=torch.float64))
