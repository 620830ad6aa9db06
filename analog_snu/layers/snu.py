"""The SNU / sSNU layer over a whole sequence (dynamics in :mod:`analog_snu.functional.snu`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ShapeError
from analog_snu.functional.snu import SNUState, check_activation, snu_sequence, snu_step
from analog_snu.functional.surrogates import check_surrogate
from analog_snu.layers.checks import check_finite_float, check_sequence, check_size, check_unit_interval
from analog_snu.tiles import AnalogContainerBase, make_linear

__all__ = ["SNU"]


class SNU(AnalogContainerBase, nn.Module):
    r"""A layer of Spiking Neural Units run over a sequence (``torch.nn.RNN``-style).

    See :func:`analog_snu.functional.snu.snu_step` for the update equations.

    Args:
        input_size: F_in.
        hidden_size: F_out, the number of neurons.
        soft: ``False`` for the SNU (Heaviside spikes, surrogate gradient), ``True`` for
            the sSNU (sigmoid output, exact gradient).
        recurrent: add recurrent weights ``H`` (``weight_hh``).
        decay: membrane decay in [0, 1].
        g: ``"relu"``, ``"leaky_relu"`` or ``"identity"``.
        threshold: initial firing threshold; trainable per neuron.
        surrogate: pseudo-derivative of the step, see :data:`analog_snu.functional.SURROGATES`.
        rpu_config: ``None`` for digital ``nn.Linear`` maps, or any aihwkit RPU config to run
            the products on analog tiles.
        learn_decay: make ``decay`` a trainable per-neuron parameter (clamped to [0, 1]).
        batch_first: inputs and outputs are (N, T, F) instead of (T, N, F).

    Shape:
        - x: (T, N, F_in), or (N, T, F_in) when ``batch_first``
        - state: optional ``(s, y)``, each (N, F_out)
        - output: ``y`` (T, N, F_out) (or (N, T, F_out)) and the final ``(s_T, y_T)``

    When ``recurrent=False`` the input products ``W x_t`` of all steps are one matrix
    product over the (T*N, F_in) block (one analog call, so pulsed training still sees
    every (x, d) pair); only the cheap element-wise recurrence loops over time.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        soft: bool = False,
        recurrent: bool = False,
        decay: float = 0.8,
        g: str = "relu",
        threshold: float = 1.0,
        surrogate: str = "tanh",
        rpu_config: Any = None,
        learn_decay: bool = False,
        batch_first: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.soft = bool(soft)
        self.recurrent = bool(recurrent)
        self.g = check_activation(g)
        self.surrogate = check_surrogate(surrogate)
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

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, soft={self.soft}, recurrent={self.recurrent}, "
            f"g={self.g!r}, surrogate={self.surrogate!r}"
        )

    def initial_state(self, batch: int, like: Tensor) -> SNUState:
        """Zero state for a batch of ``batch`` sequences, dtype/device of ``like``."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return SNUState(zeros, zeros)

    def _check_state(self, state: Any, batch: int, like: Tensor) -> SNUState:
        if state is None:
            return self.initial_state(batch, like)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError("state must be a tuple (s, y) of two tensors of shape (N, hidden_size)")
        expected = (batch, self.hidden_size)
        for name, tensor in zip(("s", "y"), state):
            if not isinstance(tensor, Tensor) or tuple(tensor.shape) != expected:
                shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ShapeError(f"state {name} must have shape {expected}, got {shape}")
        return SNUState(state[0].to(like.dtype), state[1].to(like.dtype))

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x = check_sequence(x, self.input_size, self.batch_first)
        if self.batch_first:
            x = x.transpose(0, 1)
        steps, batch, _ = x.shape
        start = self._check_state(state, batch, x)
        decay = self.decay.clamp(0.0, 1.0) if isinstance(self.decay, nn.Parameter) else self.decay
        # W x_t for every t in one product: it does not depend on the state.
        current = self.weight_ih(x.reshape(steps * batch, -1)).reshape(steps, batch, self.hidden_size)

        if self.weight_hh is None:
            y, final = snu_sequence(current, start, self.threshold, decay, self.g, self.soft, self.surrogate)
        else:
            y, final = self._run_recurrent(current, start, decay, zero_start=state is None)
        if self.batch_first:
            y = y.transpose(0, 1)
        return y, (final.s, final.y)

    def _run_recurrent(self, current: Tensor, state: SNUState, decay: Tensor, zero_start: bool):
        outputs = []
        for t in range(current.shape[0]):
            step_current = current[t]
            if not (t == 0 and zero_start):  # H y_{-1} = 0 exactly for a fresh sequence
                step_current = step_current + self.weight_hh(state.y)
            y, state = snu_step(step_current, state, self.threshold, decay, self.g, self.soft, self.surrogate)
            outputs.append(y)
        return torch.stack(outputs), state
