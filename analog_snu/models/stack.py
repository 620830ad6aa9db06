"""A stack of hidden recurrent layers (SNU/sSNU, or LSTM/GRU digital or on aihwkit tiles)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from analog_snu.functional import check_dropout, variational_dropout
from analog_snu.layers import SNU
from analog_snu.tiles import AnalogContainerBase, analog_rnn

__all__ = ["HiddenStack", "RNN_CELLS"]

#: baseline cells -> the digital torch class
RNN_CELLS: dict[str, type[nn.Module]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class HiddenStack(AnalogContainerBase, nn.Module):
    """Hidden layers stacked in time: the outputs of layer k at step t are the inputs of layer k+1 at step t.

    Args:
        sizes: ``[F_in, hidden_1, ..., hidden_k]``.
        cell: a neuron cell name (``"snu"``, ``"ssnu"``, ...) or ``"lstm"``/``"gru"``.
        rpu_config: aihwkit RPU config of the tiles, ``None`` for digital layers.
        **snu_kwargs: for SNU cells, passed to :class:`~analog_snu.layers.SNU`
            (``recurrent``, ``decay``, ``g``, ``threshold``, ``surrogate``).
        dropout: drop probability in [0, 1) of every layer's output sequence (the input of the
            next layer and of the readout), one mask per sequence
            (:func:`~analog_snu.functional.variational_dropout`); training mode only; 0 = off.

    Shape:
        x: (T, N, F_in) -> (T, N, hidden_k). States start at zero for every call.
    """

    def __init__(self, sizes: Sequence[int], cell: str, rpu_config: Any = None, dropout: float = 0.0,
                 **snu_kwargs: Any) -> None:
        nn.Module.__init__(self)
        self.cell = cell
        self.dropout = check_dropout(dropout)
        pairs = list(zip(sizes[:-1], sizes[1:]))
        if cell not in RNN_CELLS:  # a neuron cell of analog_snu.functional
            layers = [SNU(n_in, n_out, cell=cell, rpu_config=rpu_config, **snu_kwargs) for n_in, n_out in pairs]
        elif rpu_config is None:
            layers = [RNN_CELLS[cell](n_in, n_out) for n_in, n_out in pairs]
        else:
            layers = [analog_rnn(cell, n_in, n_out, rpu_config) for n_in, n_out in pairs]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = variational_dropout(layer(x)[0], self.dropout, self.training)  # (T, N, hidden_k)
        return x
