"""Hardware-in-the-loop training (reprogram and mixed precision) on a small digits SNU."""

import pytest
import torch
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from torch.nn import functional as F

from analog_snu import SNUNetwork
from analog_snu.data import load_digits
from analog_snu.data.encoding import rate_encode
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, read_weight
from analog_snu.tiles.crossbar import crossbars
from analog_snu.tiles.pcm_noise import PCMNoiseModel
from analog_snu.tiles.tile_access import named_layer_tiles
from analog_snu.training import GRAPES, Backprop, make_optimizer, train_epoch
from analog_snu.training.hil import HILHook

SIZES = (64, 12, 10)


def _batches(n=4, size=16, seed=0):
    x, y = load_digits()["train"]
    g = torch.Generator().manual_seed(seed)
    return [(rate_encode(x[i * size:(i + 1) * size], steps=6, rate=4.0, generator=g), y[i * size:(i + 1) * size])
            for i in range(n)]


def _analog(device, seed=0):
    torch.manual_seed(seed)
    return SNUNetwork(list(SIZES), rpu_config=device_rpu_config(device, "inference"))


def _digital_copy_of(analog):
    torch.manual_seed(0)
    digital = SNUNetwork(list(SIZES))
    with torch.no_grad():
        digital.layers[0].weight_ih.weight.copy_(read_weight(analog.layers[0].weight_ih))
        weight, bias = analog.readout.get_weights()
        digital.readout.weight.copy_(weight)
        digital.readout.bias.copy_(bias)
    return digital


def _weights(model):
    return [read_weight(model.layers[0].weight_ih), read_weight(model.readout)]


def _train_hil(hil, batches, optimizer="adam", lr=0.02, rule=None, weight_decay=0.0):
    """One epoch of ``hil``'s model over ``batches`` with the chip in the loop."""
    optimizer = make_optimizer(hil.model, optimizer, lr=lr, weight_decay=weight_decay)
    rule = Backprop() if rule is None else rule(hil.model)
    return train_epoch(hil.model, batches, optimizer, F.cross_entropy, rule, hil, progress=False)


def _train_digital(digital, batches, grapes=False, optimizer="adam", lr=0.02, weight_decay=0.0):
    optimizer = make_optimizer(digital, optimizer, lr=lr, weight_decay=weight_decay)
    modulation = GRAPES(digital) if grapes else None
    for x, y in batches:
        optimizer.zero_grad()
        if modulation is not None:
            modulation.begin_batch()
        F.cross_entropy(digital(x), y).backward()
        if modulation is not None:
            modulation.before_step()
        optimizer.step()


@pytest.mark.parametrize("scheme", ["reprogram", "mixed"])
def test_hil_on_the_ideal_preset_trains_to_the_digital_weights(scheme):
    device = preset("ideal")
    if scheme == "mixed":  # ideal SET pulses, vanishing granularity
        device = device.updated({"pulsed": {"dw_min_std": 0.0, "gamma": 0.0, "reset_dtod": 0.0}})
    analog = _analog(device)
    digital = _digital_copy_of(analog)
    batches = _batches()
    _train_digital(digital, batches, grapes=True)
    kwargs = {"granularity": 1e-9, "headroom": 8.0} if scheme == "mixed" else {}
    hil = HILHook(analog, scheme=scheme, seed=0, **kwargs)
    _train_hil(hil, batches, rule=GRAPES)
    for got, want in zip(_weights(analog), _weights(digital)):
        if scheme == "reprogram":
            assert torch.equal(got, want)
        else:
            assert torch.allclose(got, want, rtol=0, atol=1e-5)
    changed = (_weights(analog)[0] - _weights(_analog(device))[0]).abs().max()
    assert changed > 1e-3  # it did train
    summary = hil.summary()
    assert summary["chip_seconds"] == 4.0 and summary["devices"] == 2 * (64 * 12 + 12 * 10)


@pytest.mark.parametrize("scheme", ["reprogram", "mixed"])
@pytest.mark.parametrize("optimizer,lr", [("adam", 0.02), ("sgd", 0.5)])
@pytest.mark.parametrize("simulator", ["torch", "cpp"])
def test_digital_weight_scaling_does_not_change_what_hil_learns(scheme, optimizer, lr, simulator):
    # The ablation that found the HIL gap: with every nonideality off, a tile that stores W / s
    # (weight_scaling_omega = 1, s = max|W|) must learn what the digital network learns. When
    # Adam stepped on W / s, its steps on W were s times too small (s ~ 0.1-0.3 here).
    device = preset("ideal").updated({"periphery": {"weight_scaling_omega": 1.0}, "simulator": simulator})
    if scheme == "mixed":  # ideal SET pulses, vanishing granularity
        device = device.updated({"pulsed": {"dw_min_std": 0.0, "gamma": 0.0, "reset_dtod": 0.0}})
    analog = _analog(device)
    scales = [tile.get_mapping_scales() for _, _, tile in named_layer_tiles(analog)]
    assert all(s is not None and not torch.allclose(s, torch.ones_like(s), atol=0.05) for s in scales)
    digital = _digital_copy_of(analog)
    batches = _batches()
    _train_digital(digital, batches, optimizer=optimizer, lr=lr)
    kwargs = {"granularity": 1e-9, "headroom": 8.0} if scheme == "mixed" else {}
    hil = HILHook(analog, scheme=scheme, seed=0, **kwargs)
    _train_hil(hil, batches, optimizer, lr)
    start = _weights(_digital_copy_of(_analog(device)))
    for got, want, before in zip(_weights(analog), _weights(digital), start):
        change = (want - before).abs().max()
        assert change > 1e-2  # it did train
        # float rounding of W * s / s only (Adam amplifies it where its second moment is tiny);
        # stepping in tile units missed the digital change by (1 - s) ~ 80 %
        assert (got - want).abs().max() < 0.01 * change


@pytest.mark.parametrize("scheme", ["reprogram", "mixed"])
@pytest.mark.parametrize("optimizer,lr,grapes", [("sgd", 0.5, False), ("adam", 0.02, True)])
def test_weight_decay_reaches_the_chip_as_it_reaches_a_digital_network(scheme, optimizer, lr, grapes):
    # torch's coupled decay acts where the optimizer steps: on W in network units (the tiles store
    # W / s, s != 1 here), then onto the chip by reprogramming or as SET pulses (mixed)
    device = preset("ideal").updated({"periphery": {"weight_scaling_omega": 1.0}})
    if scheme == "mixed":  # ideal SET pulses, vanishing granularity
        device = device.updated({"pulsed": {"dw_min_std": 0.0, "gamma": 0.0, "reset_dtod": 0.0}})
    batches = _batches()
    undecayed = _digital_copy_of(_analog(device))
    _train_digital(undecayed, batches, grapes=grapes, optimizer=optimizer, lr=lr)
    analog = _analog(device)
    digital = _digital_copy_of(analog)
    _train_digital(digital, batches, grapes=grapes, optimizer=optimizer, lr=lr, weight_decay=0.3)
    kwargs = {"granularity": 1e-9, "headroom": 8.0} if scheme == "mixed" else {}
    hil = HILHook(analog, scheme=scheme, seed=0, **kwargs)
    _train_hil(hil, batches, optimizer, lr, rule=GRAPES if grapes else None, weight_decay=0.3)
    for got, want, plain in zip(_weights(analog), _weights(digital), _weights(undecayed)):
        assert want.norm() < 0.9 * plain.norm()  # the decay shrank the digital weights
        assert (got - want).abs().max() < 0.01 * (want - plain).abs().max()


def test_program_every_3_over_9_batches_gives_3_events_per_device():
    device = preset("pcm_joshi2020")
    for program_all, expected_min in ((True, 3), (False, 1)):
        analog = _analog(device)
        hil = HILHook(analog, program_every=3, program_all=program_all, seed=0)
        _train_hil(hil, _batches(9, 8), "sgd", 0.05)
        summary = hil.summary()
        assert set(summary) == {"scheme", "chip_seconds", "devices", "programming_events"}
        events = torch.cat([w["programming_events"].flatten() for w in hil.wear_maps().values()])
        assert int(events.max()) == 3 and int(events.min()) == expected_min
        assert summary["programming_events"]["max"] == 3
        if program_all:
            assert summary["programming_events"]["mean"] == 3.0
        else:
            # the devices of a weight's other sign stay at 0 µS: their target never changes
            assert 1.0 < summary["programming_events"]["mean"] < 3.0
        assert summary["chip_seconds"] == 9.0


def test_mixed_summary_and_conservation_during_training():
    device = preset("pcm_joshi2020")
    analog = _analog(device)
    hil = HILHook(analog, scheme="mixed", seed=0, chip_seconds_per_batch=2.0)
    start = {name: tile.read_weights() for name, tile in hil.tiles}
    _train_hil(hil, _batches(3, 16), "sgd", 0.2)
    summary = hil.summary()
    assert set(summary) == {"scheme", "chip_seconds", "devices", "set_pulses", "refreshes"}
    assert summary["scheme"] == "mixed" and summary["chip_seconds"] == 6.0
    assert summary["set_pulses"]["max"] > 0 and summary["refreshes"]["total"] >= 0
    for name, _ in hil.tiles:
        # requested sum (what the optimizer asked for) = start + sum of requests
        requested = hil.requested[name].to(torch.float64) - start[name].to(torch.float64)
        pulses = hil.chip.arrays[name].set_pulses[0].to(torch.float64)
        applied = (pulses[0] - pulses[1]) * hil.chip.granularity_weight(name)
        assert torch.allclose(applied + hil.chi[name], requested, atol=1e-5)


def _fresh(device, scheme):
    analog = _analog(device)
    optimizer = make_optimizer(analog, "adam", lr=0.02)
    return analog, optimizer, HILHook(analog, scheme=scheme, seed=3, program_every=1)


def _epoch(model, optimizer, hil, batches):
    train_epoch(model, batches, optimizer, F.cross_entropy, hardware=hil, progress=False)


@pytest.mark.parametrize("scheme", ["reprogram", "mixed"])
def test_resume_continues_bit_identically(scheme):
    device = preset("pcm_joshi2020")
    batches = _batches(4, 8)
    torch.manual_seed(11)
    model_a, opt_a, hil_a = _fresh(device, scheme)
    torch.manual_seed(11)
    _epoch(model_a, opt_a, hil_a, batches)

    model_b, opt_b, hil_b = _fresh(device, scheme)
    torch.manual_seed(11)
    _epoch(model_b, opt_b, hil_b, batches[:2])
    state = hil_b.state_dict()
    opt_state, rng = opt_b.state_dict(), torch.get_rng_state()
    model_state = model_b.state_dict()

    model_c, opt_c, hil_c = _fresh(device, scheme)
    model_c.load_state_dict(model_state)
    opt_c.load_state_dict(opt_state)
    hil_c.load_state_dict(state)
    torch.set_rng_state(rng)
    _epoch(model_c, opt_c, hil_c, batches[2:])
    for got, want in zip(_weights(model_c), _weights(model_a)):
        assert torch.equal(got, want)
    a, c = _tensors(hil_a.state_dict()), _tensors(hil_c.state_dict())
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    assert hil_c.summary() == hil_a.summary()


def _tensors(state):
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}


def test_corrupt_or_mismatched_hil_state_is_refused():
    device = preset("pcm_joshi2020")
    model, optimizer, hil = _fresh(device, "mixed")
    _epoch(model, optimizer, hil, _batches(1, 8))
    state = hil.state_dict()
    _, _, other = _fresh(device, "mixed")
    before = _tensors(other.state_dict())
    with pytest.raises(CheckpointError, match="scheme is 'mixed' in the checkpoint, 'reprogram' here"):
        _fresh(device, "reprogram")[2].load_state_dict(state)
    with pytest.raises(CheckpointError, match="lacks tensor 'chi/layers.0.weight_ih"):
        other.load_state_dict({k: v for k, v in state.items() if not k.startswith("chi/")})
    bad = dict(state)
    key = next(k for k in state if k.startswith("requested/"))
    bad[key] = torch.full_like(state[key], float("inf"))
    with pytest.raises(CheckpointError, match="holds NaN or inf"):
        other.load_state_dict(bad)
    with pytest.raises(CheckpointError, match="batch counter must be an int >= 0"):
        other.load_state_dict({**state, "batches": -1})
    with pytest.raises(CheckpointError, match="HIL state version must be 2, got 3"):
        other.load_state_dict({**state, "version": 3})
    with pytest.raises(CheckpointError, match="version must be 2, got 1 .*train the run again with --force"):
        other.load_state_dict({**state, "version": 1})
    with pytest.raises(CheckpointError, match="HIL state version must be 2, got None"):
        other.load_state_dict({})  # e.g. a checkpoint of a run without the chip
    with pytest.raises(CheckpointError, match="HIL state version must be 2, got 'list'"):
        other.load_state_dict([])
    with pytest.raises(CheckpointError, match="lacks the chip's settings"):
        other.load_state_dict({k: v for k, v in state.items() if k != "chip"})
    with pytest.raises(CheckpointError, match="chip_seconds_per_batch is 1.0 in the checkpoint, 2.0 here"):
        HILHook(_analog(device), scheme="mixed", seed=3, chip_seconds_per_batch=2.0).load_state_dict(state)
    key = next(k for k in state if k.startswith("chip/readout") and k.endswith("/g_base"))
    bad = dict(state, **{key: state[key][..., :-1].contiguous()})
    with pytest.raises(CheckpointError, match=f"'{key}' is"):
        other.load_state_dict(bad)
    after = _tensors(other.state_dict())
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert other.batches == 0


def test_bad_arguments_raise_named_errors():
    device = preset("pcm_joshi2020")
    analog = _analog(device)
    with pytest.raises(ConfigError, match=r"takes the chip's device from the model's tiles.*got str 'pcm_joshi2020'"):
        HILHook(analog, "pcm_joshi2020")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"takes the chip's device from the model's tiles.*got PCMDevice 'pcm_joshi"):
        HILHook(analog, device)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"scheme: Input should be 'reprogram' or 'mixed' \(got 'pulsed'\)"):
        HILHook(analog, scheme="pulsed")
    with pytest.raises(ConfigError, match=r"program_every: Input should be greater than 0 \(got 0\)"):
        HILHook(analog, program_every=0)
    with pytest.raises(ConfigError, match="--program-every applies to --hil-scheme reprogram, not mixed"):
        HILHook(analog, scheme="mixed", program_every=2)
    with pytest.raises(ConfigError, match=r"granularity: Input should be greater than 0 \(got 0.0\)"):
        HILHook(analog, scheme="mixed", granularity=0.0)
    with pytest.raises(ConfigError, match=r"granularity: Input should be greater than 0 \(got -1\)"):
        HILHook(analog, scheme="mixed", granularity=-1)
    with pytest.raises(ConfigError, match="--granularity applies to --hil-scheme mixed only"):
        HILHook(analog, granularity=0.01)
    with pytest.raises(ConfigError, match="chip_seconds_per_batch: Input should be greater than or equal to 0"):
        HILHook(analog, chip_seconds_per_batch=-1.0)
    with pytest.raises(ConfigError, match="program_all: Input should be a valid boolean"):
        HILHook(analog, program_all=1)
    digital = SNUNetwork(list(SIZES))
    with pytest.raises(ConfigError, match="the model is digital"):
        HILHook(digital)
    hwa = SNUNetwork(list(SIZES), rpu_config=device_rpu_config(device, "hwa"))
    with pytest.raises(ConfigError, match="injects hardware-aware training noise"):
        HILHook(hwa)
    pulsed = SNUNetwork([4, 3, 2], rpu_config=device_rpu_config(device, "pulsed"))
    with pytest.raises(ConfigError, match="is not an inference tile"):
        HILHook(pulsed)
    mixed_devices = _analog(device)
    crossbars(mixed_devices)[1].attach_noise_model(PCMNoiseModel(preset("pcm_aged_lowyield")))
    with pytest.raises(ConfigError, match=r"'readout.*' were built for different devices \('pcm_joshi2020', "
                                          r"'pcm_aged_lowyield'\); one chip holds one device"):
        HILHook(mixed_devices)
    plain = TorchInferenceRPUConfig()  # an inference tile of aihwkit's own, without a PCM device
    plain.forward.out_noise = 0.0
    plain.modifier.type, plain.clip.type = plain.modifier.type.NONE, plain.clip.type.NONE
    with pytest.raises(ConfigError, match="carries no PCM device"):
        HILHook(SNUNetwork([4, 3, 2], rpu_config=plain))
    two = device.updated({"conductance": {"significance": [1.0, 2.0]}})
    with pytest.raises(ConfigError, match="mixed scheme supports one G\\+/G- pair"):
        HILHook(_analog(two), scheme="mixed")


@pytest.mark.parametrize("name", ["pcm_joshi2020", "pcm_aged_lowyield"])
def test_the_chip_is_made_of_the_device_the_tiles_were_built_for(name):
    device = preset(name).updated({"drift": {"scale": 1.7}})
    hil = HILHook(_analog(device), seed=0)
    assert hil.device == device and hil.device != preset(name)
    assert all(tile.noise_model.device == device for _, tile in hil.tiles)


def test_drift_compensation_does_not_accumulate_in_the_tile_scales():
    # The compensation factor of each read applies to that batch only: the tiles' output scales
    # after training equal those before (they compounded batch after batch before this was fixed,
    # which made HIL diverge on long JSB epochs).
    device = preset("pcm_joshi2020")
    assert device.periphery.drift_compensation != "none"
    analog = _analog(device)
    tiles = [tile for _, _, tile in named_layer_tiles(analog)]
    before = [tile.get_mapping_scales().clone() for tile in tiles]
    hil = HILHook(analog, chip_seconds_per_batch=1e4, seed=0)
    _train_hil(hil, _batches(12, 8), "sgd", 1e-6)
    after = [tile.get_mapping_scales() for tile in tiles]
    for got, want in zip(after, before):
        # the scale follows max|W| (re-mapped every programming round); at lr 1e-6 that moves by
        # far less than 1e-3, where one compounded compensation factor after 1e4 s is ~1.3
        assert torch.allclose(got, want, rtol=1e-3, atol=0)


def test_a_forward_pass_that_fails_leaves_the_weights_the_optimizer_steps_on_in_the_tiles():
    device = preset("pcm_joshi2020")
    hil = HILHook(_analog(device), scheme="mixed", seed=0)
    hil.begin_batch()  # the weights move onto the chip
    scales = [tile.output_scales() for _, tile in hil.tiles]
    with pytest.raises(RuntimeError, match="forward failed"):
        with hil.forward_pass():
            raise RuntimeError("forward failed")
    for (name, tile), resting in zip(hil.tiles, scales):
        # mixed: the requested weights W_0 + sum dW (here W_0), not the chip's
        assert torch.equal(tile.read_weights(), hil.requested[name])
        assert not torch.equal(hil.requested[name], hil.chip.nominal_weights(name))
        assert torch.equal(tile.output_scales(), resting)  # no drift compensation left behind
    assert hil.batches == 0
