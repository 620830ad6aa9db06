"""Learning-rate schedules: closed-form lr per epoch, plateau behaviour, impossible values refused."""

import math

import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.training.schedules import SCHEDULES, make_scheduler, scheduler_step


def sgd(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def lrs(optimizer, scheduler, epochs, metrics=None):
    out = []
    for epoch in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler_step(scheduler, None if metrics is None else metrics[epoch])
    return out


def test_none_is_constant():
    optimizer = sgd()
    assert make_scheduler(optimizer, "none") is None
    assert lrs(optimizer, None, 3) == [0.1, 0.1, 0.1]


def test_step_closed_form():
    optimizer = sgd(0.2)
    got = lrs(optimizer, make_scheduler(optimizer, "step", step_size=3, gamma=0.5), 8)
    expected = [0.2 * 0.5 ** (e // 3) for e in range(8)]
    assert got == pytest.approx(expected)


def test_cosine_closed_form():
    optimizer = sgd(0.1)
    got = lrs(optimizer, make_scheduler(optimizer, "cosine", t_max=4, eta_min=0.01), 5)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert got == pytest.approx(expected)


def test_plateau_cuts_after_patience_and_respects_min_lr():
    optimizer = sgd(1.0)
    scheduler = make_scheduler(optimizer, "plateau", factor=0.5, patience=1, min_lr=0.3)
    # improving, then flat: the 2nd epoch without improvement beyond patience 1 cuts the lr
    got = lrs(optimizer, scheduler, 7, metrics=[5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    assert got == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.3])
    maximise = sgd(1.0)
    scheduler = make_scheduler(maximise, "plateau", mode="max", factor=0.1, patience=0)
    assert lrs(maximise, scheduler, 3, metrics=[0.5, 0.6, 0.6]) == pytest.approx([1.0, 1.0, 1.0])
    assert maximise.param_groups[0]["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("exp", {}, r"schedule kind must be one of \['none', 'step', 'cosine', 'plateau'\], got 'exp'"),
        ("step", {}, r"step schedule: missing required parameter\(s\) \['step_size'\]"),
        ("step", {"step_size": 0}, "step_size must be an int >= 1, got 0"),
        ("step", {"step_size": 2.5}, "step_size must be an int >= 1, got 2.5"),
        ("step", {"step_size": 2, "gamma": 0.0}, r"gamma must be a number in \(0.0, 1.0\], got 0.0"),
        ("step", {"step_size": 2, "gamma": 1.5}, "gamma must be a number in"),
        ("step", {"step_size": 2, "patience": 3}, r"unknown parameter\(s\) \['patience'\]; valid: \['gamma', 'step_size'\]"),
        ("cosine", {"t_max": 0}, "t_max must be an int >= 1, got 0"),
        ("cosine", {"t_max": 5, "eta_min": 0.1}, r"eta_min must be a number in \[0.0, 0.1\), got 0.1"),
        ("cosine", {"t_max": 5, "eta_min": float("nan")}, "eta_min must be a number"),
        ("plateau", {"mode": "up"}, "mode must be 'min' or 'max', got 'up'"),
        ("plateau", {"factor": 1.0}, r"factor must be a number in \(0.0, 1.0\), got 1.0"),
        ("plateau", {"patience": -1}, "patience must be an int >= 0, got -1"),
        ("plateau", {"threshold": -0.1}, "threshold must be a number in"),
        ("plateau", {"min_lr": 0.5}, "min_lr=0.5 is above the optimizer's lr=0.1"),
        ("plateau", {"cooldown": True}, "cooldown must be an int >= 0, got True"),
        ("none", {"gamma": 0.5}, r"none schedule: unknown parameter\(s\) \['gamma'\]"),
    ],
)
def test_impossible_values(kind, params, match):
    with pytest.raises(ConfigError, match=match):
        make_scheduler(sgd(0.1), kind, **params)


def test_bad_optimizer_and_plateau_metric():
    with pytest.raises(ConfigError, match="optimizer must be a torch.optim.Optimizer, got list"):
        make_scheduler([], "none")
    scheduler = make_scheduler(sgd(), "plateau")
    with pytest.raises(ConfigError, match="plateau schedule needs the epoch's finite validation metric, got None"):
        scheduler_step(scheduler)
    with pytest.raises(ConfigError, match="got nan"):
        scheduler_step(scheduler, float("nan"))


def test_registry_lists_every_kind():
    assert list(SCHEDULES) == ["none", "step", "cosine", "plateau"]
