"""The neuron-cell registry: lookup, parameters, the registration contract and a toy cell."""

import dataclasses
from typing import NamedTuple

import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.functional import (
    CellDef,
    SNUParameters,
    SNUState,
    cell_sequence,
    neuron_cell,
    neuron_cell_names,
    register_cell,
    snu_step,
)
from analog_snu.functional import cells as cells_module


@dataclasses.dataclass(frozen=True)
class LeakyParameters:
    gain: float = 1.0


class LeakyState(NamedTuple):
    v: torch.Tensor
    y: torch.Tensor


def leaky_step(current, state, threshold, decay, gain=1.0):
    """A leaky integrator: v_t = decay v_{t-1} + gain current_t; y_t = v_t - threshold."""
    v = decay * state.v + gain * current
    return v - threshold, LeakyState(v, v - threshold)


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so test registrations do not leak."""
    monkeypatch.setattr(cells_module, "NEURON_CELLS", dict(cells_module.NEURON_CELLS))
    return cells_module.NEURON_CELLS


def test_registered_cells_and_lookup():
    assert neuron_cell_names()[:3] == ("snu", "ssnu", "snu_li")
    assert neuron_cell("snu").sequence is not None and neuron_cell("snu_li").sequence is None
    with pytest.raises(ConfigError, match=r"cell must be one of \['snu', 'ssnu', 'snu_li'.*got 'lif'"):
        neuron_cell("lif")
    with pytest.raises(ConfigError, match="cell must be one of .* got 3"):
        neuron_cell(3)


def test_cells_deep_copy_and_pickle():
    """Layers hold their cell: copying or pickling a model must work."""
    import copy
    import pickle

    for name in neuron_cell_names():
        cell = neuron_cell(name)
        assert copy.deepcopy(cell) == cell
        assert pickle.loads(pickle.dumps(cell)) == cell
    assert neuron_cell("ssnu").fixed == (("soft", True),)


def test_make_parameters_defaults_fixed_and_errors():
    assert neuron_cell("snu").make_parameters() == SNUParameters("relu", False, "tanh")
    assert neuron_cell("ssnu").make_parameters(g="identity") == SNUParameters("identity", True, "tanh")
    assert neuron_cell("ssnu").make_parameters(soft=True).soft is True
    with pytest.raises(ConfigError, match=r"cell 'ssnu' fixes soft=True, got soft=False"):
        neuron_cell("ssnu").make_parameters(soft=False)
    with pytest.raises(ConfigError, match=r"cell 'snu_li' takes no parameter 'gain'; its parameters are \['g', 'soft'"):
        neuron_cell("snu_li").make_parameters(gain=2.0)
    with pytest.raises(ConfigError, match="g must be one of"):
        neuron_cell("snu").make_parameters(g="tanh")
    with pytest.raises(ConfigError, match="surrogate must be one of"):
        neuron_cell("snu").make_parameters(surrogate="box")
    with pytest.raises(ConfigError, match=r"soft must be a bool, got 'false' \(str\)"):
        neuron_cell("snu").make_parameters(soft="false")


def test_toy_cell_registers_and_runs_without_a_fused_sequence(registry):
    cell = register_cell(CellDef("leaky", LeakyParameters, LeakyState, leaky_step))
    assert "leaky" in neuron_cell_names() and neuron_cell("leaky") is cell
    params = dataclasses.asdict(cell.make_parameters(gain=2.0))
    current = torch.tensor([[[1.0]], [[0.0]], [[1.0]]])
    zeros = torch.zeros(1, 1)
    y, final = cell_sequence(cell, current, LeakyState(zeros, zeros), torch.zeros(1), torch.tensor(0.5), params)
    # v = 2, 1, 2.5
    assert y.flatten().tolist() == [2.0, 1.0, 2.5] and final.v.item() == 2.5


def test_cell_sequence_uses_the_fused_path_when_registered():
    torch.manual_seed(0)
    current = torch.randn(5, 2, 3, dtype=torch.float64)
    zeros = current.new_zeros(2, 3)
    thr, decay = torch.full((3,), 0.3, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    params = {"g": "relu", "soft": True, "surrogate": "tanh"}
    y, final = cell_sequence(neuron_cell("ssnu"), current, SNUState(zeros, zeros), thr, decay, params)
    state, ys = SNUState(zeros, zeros), []
    for t in range(5):
        y_t, state = snu_step(current[t], state, thr, decay, **params)
        ys.append(y_t)
    torch.testing.assert_close(y, torch.stack(ys))
    torch.testing.assert_close(final.s, state.s)


def _not_frozen():
    @dataclasses.dataclass
    class Loose:
        gain: float = 1.0

    return Loose


class NoOutput(NamedTuple):
    v: torch.Tensor


def _step_without_gain(current, state, threshold, decay):
    return current, state


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: "leaky", "register_cell takes a CellDef, got str"),
        (lambda: CellDef("Leaky", LeakyParameters, LeakyState, leaky_step), "cell name must be lowercase"),
        (lambda: CellDef("snu", LeakyParameters, LeakyState, leaky_step), "cell 'snu' is registered already"),
        (lambda: CellDef("leaky", _not_frozen(), LeakyState, leaky_step), "parameters must be a frozen dataclass"),
        (lambda: CellDef("leaky", dict, LeakyState, leaky_step), "parameters must be a frozen dataclass"),
        (lambda: CellDef("leaky", LeakyParameters, NoOutput, leaky_step), "state must be a NamedTuple with an output"),
        (lambda: CellDef("leaky", LeakyParameters, LeakyState, None), "step must be callable"),
        (lambda: CellDef("leaky", LeakyParameters, LeakyState, _step_without_gain),
         r"step _step_without_gain does not take parameter\(s\) \['gain'\]"),
        (lambda: CellDef("leaky", LeakyParameters, LeakyState, leaky_step, _step_without_gain),
         r"sequence _step_without_gain does not take parameter\(s\) \['gain'\]"),
        (lambda: CellDef("leaky", LeakyParameters, LeakyState, leaky_step, fixed={"soft": True}),
         r"fixed names \['soft'\] are not parameters"),
    ],
)
def test_register_cell_refuses_a_broken_contract(registry, make, match):
    before = dict(registry)
    with pytest.raises(ConfigError, match=match):
        register_cell(make())
    assert registry == before
