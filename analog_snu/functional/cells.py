"""The registry of neuron cells: a name -> its parameters, state, step and (optional) fused sequence.

A cell is the element-wise dynamics of one layer of neurons given the input current
``W x_t + H y_{t-1}``; the layer shell (:class:`analog_snu.layers.SNU`) owns the weights, the
per-neuron ``threshold`` and ``decay`` tensors and the loop over time, and looks the cell up
here by name. Adding a neuron model is one functional file plus one :func:`register_cell`
line at the bottom of this module. The contract of a :class:`CellDef`:

- ``parameters``: a frozen dataclass of plain values (str/bool/int/float), validated in its
  ``__post_init__``; each field is a keyword argument of ``step`` (and of ``sequence``).
- ``state``: a NamedTuple of (N, F) tensors with a field ``y`` (the output, fed back through
  ``H``); every field is zero at t = 0.
- ``step(current, state, threshold, decay, **parameters) -> (y_t, new_state)``: one time step
  under autograd. current: (N, F); threshold: (F,); decay: () or (F,).
- ``sequence(current, state, threshold, decay, **parameters) -> (y, final_state)``: optional,
  the whole recurrence over precomputed currents (T, N, F) as one autograd node (it must give
  the gradients of ``step`` unrolled). Without it :func:`cell_sequence` loops over ``step``.
- ``fixed``: parameter values the name pins (``"ssnu"`` is ``"snu"`` with ``soft=True``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from analog_snu.errors import ConfigError
from analog_snu.functional.snu import SNUParameters, SNUState, snu_sequence, snu_step
from analog_snu.functional.snu_li import snu_li_step

__all__ = ["CellDef", "NEURON_CELLS", "cell_sequence", "neuron_cell", "neuron_cell_names", "register_cell"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CellDef:
    """One registered neuron cell (see the module docstring for the contract of each field)."""

    name: str
    """Registry key: lowercase letters, digits and ``_``, starting with a letter."""
    parameters: type
    """Frozen dataclass of the cell's fixed choices; its fields are keywords of ``step``."""
    state: type
    """NamedTuple of (N, F) tensors, with the output in field ``y``."""
    step: Callable[..., tuple[Tensor, Any]]
    """``step(current, state, threshold, decay, **parameters) -> (y_t, state_t)``."""
    sequence: Callable[..., tuple[Tensor, Any]] | None = None
    """Fused recurrence over (T, N, F) currents, or ``None`` to loop over ``step``."""
    fixed: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()
    """Parameter values that this name pins; a conflicting argument is refused. Given as a mapping,
    stored by :func:`register_cell` as sorted ``(name, value)`` pairs (so a cell deep-copies and pickles)."""
    summary: str = ""
    """One line for listings and ``--help``."""

    def make_parameters(self, **given: Any) -> Any:
        """The cell's parameters from keyword arguments (defaults for the rest, ``fixed`` applied).

        Raises:
            ConfigError: an argument the cell does not take, or one that contradicts ``fixed``.
        """
        valid = [f.name for f in dataclasses.fields(self.parameters)]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ConfigError(
                f"cell {self.name!r} takes no parameter {', '.join(map(repr, unknown))}; its parameters are {valid}"
            )
        fixed = dict(self.fixed)
        for key, value in fixed.items():
            if key in given and given[key] != value:
                raise ConfigError(
                    f"cell {self.name!r} fixes {key}={value!r}, got {key}={given[key]!r}; "
                    f"choose another cell (one of {list(neuron_cell_names())}) instead"
                )
        return self.parameters(**{**given, **fixed})


#: name -> cell; fill it with :func:`register_cell`, read it with :func:`neuron_cell`
NEURON_CELLS: dict[str, CellDef] = {}


def _keywords(fn: Callable[..., Any]) -> set[str] | None:
    """Names ``fn`` accepts by keyword, or ``None`` when it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def register_cell(cell: CellDef) -> CellDef:
    """Add ``cell`` to :data:`NEURON_CELLS` after checking it follows the contract; returns it.

    Raises:
        ConfigError: a bad or taken name, parameters that are not a frozen dataclass, a state
            without ``y``, a step/sequence that does not take every parameter by keyword, or a
            ``fixed`` key that is not a parameter.
    """
    if not isinstance(cell, CellDef):
        raise ConfigError(f"register_cell takes a CellDef, got {type(cell).__name__}")
    if not isinstance(cell.name, str) or not _NAME.match(cell.name):
        raise ConfigError(f"cell name must be lowercase letters, digits and '_' (e.g. 'snu_li'), got {cell.name!r}")
    if cell.name in NEURON_CELLS:
        raise ConfigError(f"cell {cell.name!r} is registered already; registered: {list(neuron_cell_names())}")
    if not (dataclasses.is_dataclass(cell.parameters) and isinstance(cell.parameters, type)
            and getattr(cell.parameters, "__dataclass_params__").frozen):
        raise ConfigError(f"cell {cell.name!r}: parameters must be a frozen dataclass, got {cell.parameters!r}")
    fields = getattr(cell.state, "_fields", None)
    if not isinstance(cell.state, type) or not issubclass(cell.state, tuple) or not fields or "y" not in fields:
        raise ConfigError(f"cell {cell.name!r}: state must be a NamedTuple with an output field 'y', got {cell.state!r}")
    names = {f.name for f in dataclasses.fields(cell.parameters)}
    for role, fn in (("step", cell.step), ("sequence", cell.sequence)):
        if fn is None and role == "sequence":
            continue
        if not callable(fn):
            raise ConfigError(f"cell {cell.name!r}: {role} must be callable, got {fn!r}")
        accepted = _keywords(fn)
        missing = sorted(names - accepted) if accepted is not None else []
        if missing:
            raise ConfigError(f"cell {cell.name!r}: {role} {fn.__name__} does not take parameter(s) {missing} by keyword")
    fixed = dict(cell.fixed)
    extra = sorted(set(fixed) - names)
    if extra:
        raise ConfigError(f"cell {cell.name!r}: fixed names {extra} are not parameters; parameters are {sorted(names)}")
    NEURON_CELLS[cell.name] = dataclasses.replace(cell, fixed=tuple(sorted(fixed.items())))
    return NEURON_CELLS[cell.name]


def neuron_cell_names() -> tuple[str, ...]:
    """The registered cell names, in registration order."""
    return tuple(NEURON_CELLS)


def neuron_cell(name: str) -> CellDef:
    """The registered cell called ``name``; a ConfigError lists the valid names otherwise."""
    cell = NEURON_CELLS.get(name) if isinstance(name, str) else None
    if cell is None:
        raise ConfigError(f"cell must be one of {list(neuron_cell_names())}, got {name!r}")
    return cell


def cell_sequence(
    cell: CellDef, current: Tensor, state: Any, threshold: Tensor, decay: Tensor, parameters: Mapping[str, Any]
) -> tuple[Tensor, Any]:
    """Run ``cell`` over precomputed currents: its fused ``sequence`` if it has one, else ``step`` per t.

    Shape:
        current: (T, N, F); state: the cell's state of (N, F) tensors; threshold: (F,);
        decay: () or (F,). Returns ``y`` (T, N, F) and the final state.
    """
    if cell.sequence is not None:
        return cell.sequence(current, state, threshold, decay, **parameters)
    outputs = []
    for t in range(current.shape[0]):
        y, state = cell.step(current[t], state, threshold, decay, **parameters)
        outputs.append(y)
    return torch.stack(outputs), state


# --- the registered cells: one line per neuron model ---------------------------------------------
register_cell(CellDef("snu", SNUParameters, SNUState, snu_step, snu_sequence,
                      summary="SNU: Heaviside spikes (surrogate gradient), reset by the neuron's own spike"))
register_cell(CellDef("ssnu", SNUParameters, SNUState, snu_step, snu_sequence, fixed={"soft": True},
                      summary="soft SNU: sigmoid output, proportional reset"))
register_cell(CellDef("snu_li", SNUParameters, SNUState, snu_li_step,
                      summary="lateral-inhibition SNU: any spike of the layer resets every neuron (per sample)"))
