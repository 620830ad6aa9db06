"""Task networks built on a :class:`~analog_snu.models.stack.HiddenStack`: LSTM/GRU baselines and the language model.

(SNU/sSNU classifiers and sequence predictors are :class:`~analog_snu.models.snu_network.SNUNetwork`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from analog_snu.models.stack import HiddenStack
from analog_snu.tiles import AnalogContainerBase, make_linear

__all__ = ["RecurrentNetwork", "LanguageModel"]


class RecurrentNetwork(AnalogContainerBase, nn.Module):
    """Hidden layers (any cell) and a linear readout, like :class:`~analog_snu.models.snu_network.SNUNetwork`.

    Args:
        sizes: ``[F_in, hidden..., F_out]``.
        cell: ``"lstm"``, ``"gru"`` (or ``"snu"``/``"ssnu"``).
        output: ``"mean"``: readout of the time-averaged hidden outputs, (N, F_out);
            ``"sequence"``: readout at every step, (T, N, F_out).
        rpu_config: aihwkit RPU config of all tiles (hidden layers and readout), ``None`` for digital.
        dropout: drop probability of the hidden outputs (see :class:`~analog_snu.models.stack.HiddenStack`).

    Shape:
        x: (T, N, F_in) -> (N, F_out) or (T, N, F_out).
    """

    def __init__(self, sizes: Sequence[int], cell: str, output: str = "mean", rpu_config: Any = None,
                 dropout: float = 0.0, **snu_kwargs: Any):
        nn.Module.__init__(self)
        self.output = output
        self.stack = HiddenStack(list(sizes[:-1]), cell, rpu_config, dropout=dropout, **snu_kwargs)
        self.readout = make_linear(sizes[-2], sizes[-1], rpu_config, bias=True)

    def hidden_layers(self) -> list[nn.Module]:
        """The recurrent layers, bottom to top."""
        return list(self.stack.layers)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.stack(x)  # (T, N, H)
        if self.output == "mean":
            return self.readout(hidden.mean(0))
        steps, batch, width = hidden.shape
        return self.readout(hidden.reshape(steps * batch, width)).reshape(steps, batch, -1)


class LanguageModel(AnalogContainerBase, nn.Module):
    """Word-level language model: embedding -> hidden layers -> linear decoder to the vocabulary.

    Args:
        vocab_size: V.
        embedding_size: E, width of the (digital) embedding.
        hidden: widths of the hidden layers.
        cell: ``"snu"``, ``"ssnu"``, ``"lstm"``, ``"gru"``.
        rpu_config: aihwkit RPU config of the hidden layers and decoder, ``None`` for digital.
        tie_weights: the decoder reuses the embedding matrix (Press & Wolf 2017); the
            decoder is then digital, since one matrix cannot live both in a digital
            embedding table and on a tile.
        dropout: drop probability of the hidden outputs (the input of every hidden layer but the
            first, and of the decoder; see :class:`~analog_snu.models.stack.HiddenStack`).
        **snu_kwargs: SNU parameters (``recurrent``, ``decay``, ...).

    Shape:
        tokens: (T, N) int64 ids in [0, V) -> logits (T, N, V) predicting the next token.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden: Sequence[int],
        cell: str,
        rpu_config: Any = None,
        tie_weights: bool = False,
        dropout: float = 0.0,
        **snu_kwargs: Any,
    ) -> None:
        nn.Module.__init__(self)
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.stack = HiddenStack([embedding_size, *hidden], cell, rpu_config, dropout=dropout, **snu_kwargs)
        self.tie_weights = bool(tie_weights)
        if self.tie_weights:
            self.decoder = make_linear(hidden[-1], vocab_size, None, bias=True)  # digital: it is the embedding
            self.decoder.weight = self.embedding.weight
        else:
            self.decoder = make_linear(hidden[-1], vocab_size, rpu_config, bias=True)

    def hidden_layers(self) -> list[nn.Module]:
        """The recurrent layers, bottom to top."""
        return list(self.stack.layers)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.stack(self.embedding(tokens))  # (T, N, H)
        steps, batch, width = hidden.shape
        return self.decoder(hidden.reshape(steps * batch, width)).reshape(steps, batch, -1)
