"""Which path each call of the spike tile takes, decided once per forward.

Paths: the compiled spike path (``fused_spike_forward``), the compiled general path
(``fused_general_forward``), the torch-operation spike path (``_ScaledSpikeRows``, with
``ANALOG_SNU_TORCH_PERIPHERY=1``) and aihwkit's own forward. The expected path of each case is
stated from the rules in :mod:`analog_snu.tiles.spike_tile`'s docstring. A call left to aihwkit is
also checked against aihwkit's ``TorchInferenceTile`` over the same simulator tile, noise on:
the same outputs, gradients and random draws (the generator's state after the call), bit for bit.
"""

import dataclasses
import os

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

from analog_snu.functional import periphery_loops, spike_linear, spike_linear_loops
from analog_snu.functional.linear import TORCH_GEMM_ENV
from analog_snu.functional.spike_linear import DENSE_SPIKES_ENV
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config, spike_tile
from analog_snu.tiles.fused_periphery import TORCH_PERIPHERY_ENV
from analog_snu.tiles.spike_tile import SpikeTorchInferenceTile

F_IN, F_OUT, ROWS = 40, 12, 30


def hwa_config(tile_class=SpikeTorchInferenceTile, **forward_change):
    rpu = device_rpu_config(preset("pcm_joshi2020"), "hwa")  # weight and output noise on
    rpu.tile_class = tile_class
    rpu.forward = dataclasses.replace(rpu.forward, **forward_change)
    return rpu


def make_input(kind):
    gen = torch.Generator().manual_seed(5)
    spikes = torch.bernoulli(torch.full((ROWS, F_IN), 0.3), generator=gen)
    if kind == "spike":
        return spikes
    if kind == "sparse":  # sparse enough for the gather-sums' index lists
        return torch.bernoulli(torch.full((ROWS, F_IN), 0.1), generator=gen)
    if kind == "soft":
        return torch.rand(ROWS, F_IN, generator=gen) * 2 - 1
    if kind == "soft_last":  # 0/1 until the last entry: the 0/1 check reads it all
        spikes[-1, -1] = 0.5
        return spikes
    assert kind == "zero"
    return torch.zeros(ROWS, F_IN)


def run_layer(tile_class, x, change, mode, input_grad):
    """Output, gradients (input, weight, learned output scales) and the generator's state after the forward
    and after the backward (and right after seeding), of one AnalogLinear call; ``mode``: train, eval, eval_drift or no_grad."""
    torch.manual_seed(0)
    layer = AnalogLinear(F_IN, F_OUT, bias=False, rpu_config=hwa_config(tile_class, **change))
    gen = torch.Generator().manual_seed(3)
    layer.set_weights((torch.rand(F_OUT, F_IN, generator=gen) * 2 - 1) * 0.5)
    tile = next(layer.analog_tiles())
    with torch.no_grad():
        tile.out_scaling_alpha.copy_(0.5 + torch.rand(tile.out_scaling_alpha.shape, generator=gen))
    if mode == "eval_drift":
        tile.alpha = torch.tensor([0.8125])  # a drift-compensation factor, as drift_analog_weights sets it
    layer.train(mode == "train")
    x = x.clone().requires_grad_(input_grad)
    torch.manual_seed(1)
    seeded = torch.get_rng_state()
    with torch.set_grad_enabled(mode != "no_grad"):
        out = layer(x)
    after_forward = torch.get_rng_state()
    if out.requires_grad:
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grads = [x.grad, tile.tile.weight.grad, tile.out_scaling_alpha.grad]
    return out.detach(), grads, after_forward, torch.get_rng_state(), seeded


def spy_paths(monkeypatch):
    """The paths entered, in order, as labels."""
    entered = []
    for owner, name, label in [(spike_tile, "fused_spike_forward", "spike"),
                               (spike_tile, "fused_general_forward", "general"),
                               (spike_tile._ScaledSpikeRows, "apply", "torch_spike"),
                               (TorchInferenceTile, "forward", "aihwkit")]:
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=original, _l=label, **k: entered.append(_l) or _o(*a, **k))
    return entered


NM_NONE = {"noise_management": NoiseManagementType.NONE}
NM_MAX = {"noise_management": NoiseManagementType.MAX}
BM_NONE = {"bound_management": BoundManagementType.NONE}

# (input, forward-setting changes, mode, torch periphery, expected path)
CASES = [
    ("spike", {}, "train", False, "spike"),
    ("spike", {}, "no_grad", False, "spike"),
    ("spike", {}, "eval_drift", False, "spike"),  # the compiled loops apply drift compensation
    ("soft", {}, "train", False, "general"),
    ("soft", {}, "no_grad", False, "general"),
    ("soft", {}, "eval_drift", False, "general"),
    ("soft_last", {}, "train", False, "general"),
    ("zero", {}, "train", False, "aihwkit"),  # aihwkit's all-zero shortcut under abs-max noise management
    ("zero", {}, "no_grad", False, "aihwkit"),
    ("zero", NM_MAX, "train", False, "aihwkit"),
    ("zero", NM_NONE, "train", False, "spike"),  # no shortcut without noise management: 0/1 rows
    ("spike", NM_NONE, "train", False, "spike"),
    ("soft", NM_NONE, "train", False, "aihwkit"),  # the general path needs abs-max noise management
    ("spike", NM_MAX, "train", False, "spike"),
    ("soft", NM_MAX, "train", False, "aihwkit"),
    ("spike", BM_NONE, "train", False, "spike"),
    ("soft", BM_NONE, "train", False, "general"),
    ("spike", {"nm_thres": 2.0}, "train", False, "spike"),
    ("soft", {"nm_thres": 2.0}, "train", False, "aihwkit"),
    ("spike", {"nm_thres": 0.5}, "train", False, "aihwkit"),  # a 0/1 row is no longer a multiple of itself
    ("soft", {"nm_thres": 0.5}, "train", False, "aihwkit"),
    ("spike", {"out_asymmetry": 0.1}, "train", False, "aihwkit"),
    ("soft", {"out_asymmetry": 0.1}, "train", False, "aihwkit"),
    ("spike", {"inp_noise": 0.01}, "train", False, "aihwkit"),
    ("spike", {"out_sto_round": True}, "train", False, "aihwkit"),
    ("soft", {"out_sto_round": True}, "train", False, "aihwkit"),
    ("spike", {}, "train", True, "torch_spike"),
    ("spike", {}, "eval", True, "aihwkit"),  # the torch-operation path does not apply drift compensation,
    ("spike", {}, "eval_drift", True, "aihwkit"),  # which the preset's config asks for in eval mode
    ("spike", {}, "no_grad", True, "aihwkit"),  # nothing to save: aihwkit's
    ("soft", {}, "train", True, "aihwkit"),
    ("zero", {}, "train", True, "aihwkit"),
    ("zero", NM_NONE, "train", True, "torch_spike"),
]


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize(("kind", "change", "mode", "torch_periphery", "path"), CASES)
def test_each_call_takes_its_path_and_aihwkits_calls_equal_aihwkits_tile(monkeypatch, kind, change, mode,
                                                                         torch_periphery, path, input_grad):
    if torch_periphery:
        monkeypatch.setenv(TORCH_PERIPHERY_ENV, "1")
    x = make_input(kind)
    entered = spy_paths(monkeypatch)
    got = run_layer(SpikeTorchInferenceTile, x, change, mode, input_grad)
    assert entered == [path]
    assert torch.isfinite(got[0]).all()
    if path != "aihwkit":
        return
    expected = run_layer(TorchInferenceTile, x, change, mode, input_grad)
    assert torch.equal(got[0], expected[0])
    for a, b in zip(got[1], expected[1]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])  # the same draws
    drawn = not torch.equal(got[2], got[4])  # training's weight noise, output noise (none after aihwkit's
    assert drawn == (kind != "zero" or mode == "train")  # all-zero shortcut): the draws compared are real


def spy_scans(monkeypatch):
    """The compiled scans of a tile's input, in order: ("lists", what the index lists' scan reported) and
    ("check",) for the 0/1 check."""
    scans = []
    lists_scan, check = spike_linear_loops.active_inputs, periphery_loops.binary_state
    monkeypatch.setattr(spike_linear_loops, "active_inputs",
                        lambda *a: (lambda got: scans.append(("lists", got)) or got)(lists_scan(*a)))
    monkeypatch.setattr(periphery_loops, "binary_state", lambda *a: scans.append(("check",)) or check(*a))
    return scans


LISTS = ("lists", spike_linear_loops.ACTIVE)
SOFT = ("lists", spike_linear_loops.NOT_BINARY)
TOO_DENSE = ("lists", spike_linear_loops.TOO_DENSE)
CHECK = ("check",)


# (input, the gather-sums' minimum work lifted, environment, the scans of each forward, the path)
SCAN_CASES = [
    ("sparse", True, {}, [LISTS], "spike"),  # the lists serve: they are the one scan
    ("zero", True, {}, [LISTS], "aihwkit"),  # empty lists: aihwkit's all-zero shortcut, decided from them
    ("spike", True, {}, [TOO_DENSE, CHECK], "spike"),  # 30 % ones: the lists' scan stops past 20 %
    ("soft", True, {}, [SOFT, CHECK], "general"),  # both stop at the first row
    ("soft_last", True, {}, [TOO_DENSE, CHECK], "general"),  # 30 % ones: the lists stop past 20 %, the check at the end
    ("sparse", False, {}, [CHECK], "spike"),  # too little work for the lists: no scan of theirs
    ("sparse", True, {DENSE_SPIKES_ENV: "1"}, [CHECK], "spike"),
    ("sparse", True, {TORCH_GEMM_ENV: "1"}, [CHECK], "spike"),
    ("zero", False, {}, [CHECK], "aihwkit"),
]


@pytest.mark.parametrize(("kind", "lists", "env", "expected", "path"), SCAN_CASES)
@pytest.mark.parametrize("input_grad", [False, True])
def test_the_input_is_scanned_once_where_the_lists_serve(monkeypatch, kind, lists, env, expected, path, input_grad):
    """Per forward: where the gather-sums' index lists are made they are the only pass over the input
    (0/1, any 1 and each row's first 1 come from them); otherwise one 0/1 check follows the lists'
    scan, which stopped early (too dense, a soft entry) or was not made (too little work, the switches)."""
    if lists:
        monkeypatch.setattr(spike_linear, "SPIKE_MIN_WORK", 0)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    scans = spy_scans(monkeypatch)
    entered = spy_paths(monkeypatch)
    for mode in ("train", "no_grad"):
        run_layer(SpikeTorchInferenceTile, make_input(kind), {}, mode, input_grad)
        assert scans == expected and entered == [path], mode
        scans.clear()
        entered.clear()


def first_ones_reference(x):
    """Each row's first 1 (torch's argmax takes the first maximum), -1 for a row without one."""
    return torch.where((x == 1).any(1), (x == 1).to(torch.int8).argmax(1), -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_first_ones_from_the_lists_are_those_of_the_check(monkeypatch, dtype):
    """``scale_grad_at`` from the index lists equals :func:`spike_input_state`'s and a torch reference:
    silent rows, 1s in the first and last columns, column slices, a column-major input."""
    from analog_snu.tiles.fused_periphery import spike_input_state

    monkeypatch.setattr(spike_linear, "SPIKE_MIN_WORK", 0)
    wide = torch.bernoulli(torch.full((40, 90), 0.08, dtype=dtype), generator=torch.Generator().manual_seed(2))
    wide[::3] = 0.0  # silent rows
    wide[1::4, 0] = 1.0  # 1s in the first column of the whole input
    wide[2::5, 30] = 1.0  # ... and of the slice from column 30
    wide[5, -1] = 1.0
    wide[5, :-1] = 0.0  # a row whose one 1 is its last column
    for x in [wide, wide[:, :30], wide[:, 30:], wide.t().contiguous().t(), wide[:, 30:].t().contiguous().t()]:
        lists = spike_linear.spike_rows(x, torch.zeros(4, x.shape[1], dtype=dtype))
        assert lists is not None
        checked = torch.empty(x.shape[0], dtype=torch.int64)
        assert spike_input_state(x, checked) == (True, True)
        expected = first_ones_reference(x)
        assert (expected == -1).any() and (expected == 0).any()
        assert torch.equal(spike_tile._first_ones(lists), expected)
        assert torch.equal(checked, expected)


def test_a_split_layer_gets_each_slices_first_ones_from_the_lists(monkeypatch):
    """A layer over two tiles: each tile's ``scale_grad_at`` from its share's lists equals the 0/1
    check's (the lists switched off) and the reference over its column slice."""
    monkeypatch.setattr(spike_linear, "SPIKE_MIN_WORK", 0)
    x = torch.bernoulli(torch.full((20, 600), 0.05), generator=torch.Generator().manual_seed(4))
    x[::3] = 0.0
    x[1::4, 0] = 1.0
    x[2::5, 300] = 1.0  # the first column of the second tile's share
    got = {}
    original = spike_tile.fused_spike_forward

    def spy(*args, **kwargs):
        got.setdefault(os.environ.get(DENSE_SPIKES_ENV), []).append((args[8].clone(), args[9]))
        return original(*args, **kwargs)

    monkeypatch.setattr(spike_tile, "fused_spike_forward", spy)
    for dense in ("0", "1"):
        monkeypatch.setenv(DENSE_SPIKES_ENV, dense)
        torch.manual_seed(0)
        layer = AnalogLinear(600, F_OUT, bias=False, rpu_config=hwa_config())
        assert len(list(layer.analog_tiles())) == 2
        layer(x.clone().requires_grad_(True)).sum().backward()
    shares = [x[:, :300], x[:, 300:]]
    assert [first is not None for _, first in got["0"]] == [True, True]  # the lists served
    assert [first is None for _, first in got["1"]] == [True, True]  # the 0/1 check served
    for share, (from_lists, _), (from_check, _) in zip(shares, got["0"], got["1"]):
        expected = first_ones_reference(share)
        assert (expected == -1).any() and (expected == 0).any()
        assert torch.equal(from_lists, expected) and torch.equal(from_check, expected)
