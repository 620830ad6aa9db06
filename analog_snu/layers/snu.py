"""The layer shell over any registered neuron cell (dynamics in :mod:`analog_snu.functional`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import InputValueError, ShapeError
from analog_snu.functional.cells import cell_sequence, neuron_cell
from analog_snu.functional.linear import feature_rows, linear
from analog_snu.functional.snu import snu_feature_major_applies, snu_sequence
from analog_snu.layers.checks import check_finite_float, check_sequence, check_size, check_unit_interval
from analog_snu.layers.precision import ExactInitialValues
from analog_snu.tiles import AnalogContainerBase, DigitalLinear, make_linear

__all__ = ["SNU"]


class SNU(ExactInitialValues, AnalogContainerBase, nn.Module):
    r"""A layer of spiking neural units run over a sequence (``torch.nn.RNN``-style), for any registered cell.

    The update equations live with each cell: :func:`analog_snu.functional.snu.snu_step`
    (``"snu"``, ``"ssnu"``), :func:`analog_snu.functional.snu_li.snu_li_step` (``"snu_li"``);
    :func:`analog_snu.functional.neuron_cell_names` lists them all.

    Args:
        input_size: F_in.
        hidden_size: F_out, the number of neurons.
        cell: registered neuron cell name (``"snu"``, ``"ssnu"``, ``"snu_li"``, ...).
        soft: ``True`` for a sigmoid output (exact gradient) instead of Heaviside spikes;
            ``None`` keeps the cell's default (``"ssnu"`` is ``"snu"`` with ``soft=True``).
        recurrent: add recurrent weights ``H`` (``weight_hh``).
        decay: membrane decay in [0, 1].
        g: ``"relu"``, ``"leaky_relu"`` or ``"identity"``; ``None``: the cell's default (``"relu"``).
        threshold: initial firing threshold; trainable per neuron.
        surrogate: pseudo-derivative of the step, see :data:`analog_snu.functional.SURROGATES`;
            ``None``: the cell's default (``"tanh"``).
        rpu_config: ``None`` for digital ``nn.Linear`` maps, or any aihwkit RPU config to run
            the products on analog tiles.
        learn_decay: make ``decay`` a trainable per-neuron parameter (clamped to [0, 1]).
        batch_first: inputs and outputs are (N, T, F) instead of (T, N, F).
        **cell_options: further fields of the cell's parameters dataclass (cell-specific).

    Shape:
        - x: (T, N, F_in), or (N, T, F_in) when ``batch_first``; T, N >= 1; the dtype of the
          layer's parameters (float32 unless converted with ``.double()``).
        - state: optional, the cell's state tuple (``(s, y)`` for the SNU cells), each (N, F_out),
          finite, in the layer's dtype
        - output: ``y`` (T, N, F_out) (or (N, T, F_out)) and the final state tuple

    When ``recurrent=False`` the input products ``W x_t`` of all steps are one matrix
    product over the (T*N, F_in) block (one analog call, so pulsed training still sees
    every (x, d) pair); only the element-wise recurrence loops over time, fused into one
    autograd node for cells that register a ``sequence``.

    Layout: a digital, non-recurrent spiking layer (``cell="snu"``, ``soft=False``) on the CPU
    compiled loops returns ``y`` stored feature-major where oneDNN computes its currents: a
    (T, N, F_out) tensor (as always) whose memory is (F_out, T, N), strides (N, 1, T*N)
    (:func:`analog_snu.functional.linear.is_feature_major`; ``y.contiguous()`` gives the usual
    layout). Its products then run without copies (see :mod:`analog_snu.functional.linear`). A
    sparse spike input takes gather-sums instead (:mod:`analog_snu.functional.spike_linear`), and
    ``y`` is then row-major. Such a layer takes either layout as input, as does every layer
    (other layers copy a feature-major input once).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        cell: str = "snu",
        soft: bool | None = None,
        recurrent: bool = False,
        decay: float = 0.8,
        g: str | None = None,
        threshold: float = 1.0,
        surrogate: str | None = None,
        rpu_config: Any = None,
        learn_decay: bool = False,
        batch_first: bool = False,
        **cell_options: Any,
    ) -> None:
        nn.Module.__init__(self)
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self._cell = neuron_cell(cell)
        given = {"g": g, "soft": soft, "surrogate": surrogate, **cell_options}
        self.cell_parameters = self._cell.make_parameters(**{k: v for k, v in given.items() if v is not None})
        # the keywords of the cell's step/sequence, computed once (the parameters are frozen)
        self._cell_kwargs = {f.name: getattr(self.cell_parameters, f.name)
                             for f in dataclasses.fields(self.cell_parameters)}
        self.recurrent = bool(recurrent)
        self.batch_first = bool(batch_first)
        decay = check_unit_interval("decay", decay)
        threshold = check_finite_float("threshold", threshold)

        self.weight_ih = make_linear(input_size, hidden_size, rpu_config)
        self.weight_hh = make_linear(hidden_size, hidden_size, rpu_config) if recurrent else None
        self.threshold = nn.Parameter(torch.full((hidden_size,), threshold))
        if learn_decay:
            self.decay = nn.Parameter(torch.full((hidden_size,), decay))
        else:
            self.register_buffer("decay", torch.tensor(decay))
        self._remember_exact(decay=decay, threshold=threshold)  # .double() keeps 0.8 as 0.8

    @property
    def cell(self) -> str:
        """The registered name of the neuron cell."""
        return self._cell.name

    @property
    def soft(self) -> bool:
        """Sigmoid output (``True``) or Heaviside spikes (``False``); ``None`` for a cell without the choice."""
        return self._cell_kwargs.get("soft")

    @property
    def g(self) -> str:
        """The membrane non-linearity's name."""
        return self._cell_kwargs.get("g")

    @property
    def surrogate(self) -> str:
        """The surrogate gradient's name."""
        return self._cell_kwargs.get("surrogate")

    def extra_repr(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self._cell_kwargs.items())
        return f"{self.input_size}, {self.hidden_size}, cell={self.cell!r}, recurrent={self.recurrent}, {options}"

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        """Zero state of the cell for a batch of ``batch`` sequences, dtype/device of ``like``."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return self._cell.state(*(zeros for _ in self._cell.state._fields))

    def _check_state(self, state: Any, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        fields = self._cell.state._fields
        expected = (batch, self.hidden_size)
        layout = f"a tuple ({', '.join(fields)}) of {len(fields)} tensors of shape {expected}"
        if not isinstance(state, (tuple, list)):
            raise TypeError(f"state must be {layout}, got {type(state).__name__}")
        if len(state) != len(fields):
            raise ShapeError(f"state must be {layout}, got {len(state)} item(s)")
        for name, tensor in zip(fields, state):
            if not isinstance(tensor, Tensor):
                raise TypeError(f"state {name} must be a torch.Tensor of shape {expected}, got {type(tensor).__name__}")
            if tuple(tensor.shape) != expected:
                raise ShapeError(f"state {name} must have shape {expected}, got {tuple(tensor.shape)}")
            if tensor.dtype != like.dtype:
                raise ShapeError(f"state {name} must have dtype {like.dtype} (that of the input), got {tensor.dtype}")
            low, high = torch.aminmax(tensor)
            if not (torch.isfinite(low) and torch.isfinite(high)):
                raise InputValueError(f"state {name} contains NaN or inf values; a state must be finite")
        return self._cell.state(*state)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        x = check_sequence(x, self.input_size, self.batch_first, dtype=self.threshold.dtype)
        if self.batch_first:
            x = x.transpose(0, 1)
        steps, batch, _ = x.shape
        start = self.initial_state(batch, x) if state is None else self._check_state(state, batch, x)
        decay = self.decay.clamp(0.0, 1.0) if isinstance(self.decay, nn.Parameter) else self.decay
        # W x_t for every t in one product: it does not depend on the state.
        digital = self._feature_major_map(x)
        if digital is not None:  # (T, N, F_out) over (F_out, T, N) memory where oneDNN serves; row-major for sparse spikes
            current = linear(x, digital.weight, feature_major=True)
        else:
            rows = feature_rows(x) if isinstance(self.weight_ih, DigitalLinear) else x.reshape(steps * batch, -1)
            current = self.weight_ih(rows).reshape(steps, batch, self.hidden_size)

        if self.weight_hh is None:
            y, final = cell_sequence(self._cell, current, start, self.threshold, decay, self._cell_kwargs)
        else:
            y, final = self._run_recurrent(current, start, decay, zero_start=state is None)
        if self.batch_first:
            y = y.transpose(0, 1)
        return y, tuple(final)

    def _feature_major_map(self, x: Tensor) -> DigitalLinear | None:
        """The input map if the currents go feature-major: a digital, bias-free, non-recurrent map before
        the spiking cell's compiled recurrence (which then reads them without a copy); else ``None``."""
        digital = self.weight_ih
        if (
            self.weight_hh is None
            and isinstance(digital, DigitalLinear)
            and digital.bias is None
            and self._cell.sequence is snu_sequence
            and snu_feature_major_applies(x, bool(self.soft))
        ):
            return digital
        return None

    def _run_recurrent(self, current: Tensor, state: Any, decay: Tensor, zero_start: bool):
        outputs = []
        step, kwargs = self._cell.step, self._cell_kwargs
        for t in range(current.shape[0]):
            step_current = current[t]
            if not (t == 0 and zero_start):  # H y_{-1} = 0 exactly for a fresh sequence
                step_current = step_current + self.weight_hh(state.y)
            y, state = step(step_current, state, self.threshold, decay, **kwargs)
            outputs.append(y)
        return torch.stack(outputs), state
