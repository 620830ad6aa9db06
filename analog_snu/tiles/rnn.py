"""aihwkit's analog recurrent baselines (LSTM, GRU) on tiles."""

from __future__ import annotations

from typing import Any

from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.linear import without_placeholders

__all__ = ["ANALOG_RNN_CELLS", "analog_rnn"]

#: our cell name -> aihwkit cell class name
ANALOG_RNN_CELLS = {"lstm": "AnalogLSTMCell", "gru": "AnalogGRUCell"}


def analog_rnn(cell: str, input_size: int, hidden_size: int, rpu_config: Any) -> nn.Module:
    """One ``aihwkit.nn.AnalogRNN`` layer of ``cell`` (``"lstm"`` or ``"gru"``) with biases.

    Shape: forward(x (T, N, F_in)) -> (y (T, N, hidden_size), states).
    """
    if cell not in ANALOG_RNN_CELLS:
        raise ConfigError(f"analog RNN cell must be one of {sorted(ANALOG_RNN_CELLS)}, got {cell!r}")
    aihwkit_nn = aihwkit_module("nn")
    cell_cls = getattr(aihwkit_nn, ANALOG_RNN_CELLS[cell])
    layer = aihwkit_nn.AnalogRNN(cell_cls, input_size, hidden_size, bias=True, rpu_config=rpu_config)
    return without_placeholders(layer)  # a state dict that can be copied (see without_placeholders)
