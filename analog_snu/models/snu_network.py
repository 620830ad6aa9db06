"""A stack of SNU layers (any registered neuron cell) ending in a linear readout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from analog_snu.errors import ConfigError
from analog_snu.functional import check_dropout, time_mean, variational_dropout
from analog_snu.functional.linear import feature_rows
from analog_snu.layers import SNU
from analog_snu.layers.checks import check_layer_sizes
from analog_snu.tiles import AnalogContainerBase, DigitalLinear, make_linear

__all__ = ["SNUNetwork", "OUTPUT_MODES"]

OUTPUT_MODES = ("mean", "sequence")
_UNSET = object()


class SNUNetwork(AnalogContainerBase, nn.Module):
    """SNU layers stacked in time (spikes of layer k at step t feed layer k+1 at step t) and a readout.

    Args:
        sizes: ``[F_in, hidden_1, ..., hidden_k, F_out]``; at least one hidden layer.
        cell: the neuron cell of every hidden layer, a name from
            :func:`analog_snu.functional.neuron_cell_names` (``"snu"``, ``"ssnu"``, ``"snu_li"``).
        output: ``"sequence"``: readout at every step, (T, N, F_out) logits (sequence tasks);
            ``"mean"``: readout of the time-averaged spikes, (N, F_out) (classification). The
            readout is linear, so this equals the time average of per-step readouts, at 1/T of
            the cost.
        rpu_config: aihwkit RPU config for the SNU layers' tiles, ``None`` for digital.
        readout_rpu_config: RPU config of the readout; defaults to ``rpu_config``. Pass ``None``
            explicitly for a digital readout on an analog network.
        readout_bias: give the readout a bias (digital in aihwkit: it uses no PCM devices).
        batch_first: inputs (N, T, F) and sequence outputs (N, T, F_out).
        dropout: drop probability in [0, 1) of the spikes each SNU layer passes on (the input of
            every layer but the first, and of the readout), one mask per sequence
            (:func:`~analog_snu.functional.variational_dropout`); in training mode only; 0 = off.
        **snu_kwargs: passed to every :class:`~analog_snu.layers.snu.SNU` (``soft``,
            ``recurrent``, ``decay``, ``g``, ``threshold``, ``surrogate``, ``learn_decay`` and
            the cell's own parameters).

    aihwkit's container calls (``analog_tiles()``, ``program_analog_weights()``,
    ``drift_analog_weights()``, ``get_weights()``) reach every tile inside.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        cell: str = "snu",
        output: str = "mean",
        rpu_config: Any = None,
        readout_rpu_config: Any = _UNSET,
        readout_bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        **snu_kwargs: Any,
    ) -> None:
        nn.Module.__init__(self)
        sizes = check_layer_sizes(sizes)
        self.dropout = check_dropout(dropout)
        if output not in OUTPUT_MODES:
            raise ConfigError(f"output must be one of {list(OUTPUT_MODES)}, got {output!r}")
        if readout_rpu_config is _UNSET:
            readout_rpu_config = rpu_config
        self.sizes = sizes
        self.output = output
        self.batch_first = bool(batch_first)
        self.layers = nn.ModuleList(
            SNU(n_in, n_out, cell=cell, rpu_config=rpu_config, **snu_kwargs)
            for n_in, n_out in zip(sizes[:-2], sizes[1:-1])
        )
        self.readout = make_linear(sizes[-2], sizes[-1], readout_rpu_config, bias=readout_bias)

    @property
    def cell(self) -> str:
        """The registered neuron cell of the hidden layers."""
        return self.layers[0].cell

    def hidden_layers(self) -> list[nn.Module]:
        """The SNU layers, bottom to top (everything but the readout)."""
        return list(self.layers)

    def forward(self, x: Tensor, state: Sequence[Any] | None = None, return_state: bool = False):
        """Run the network.

        Shape:
            x: (T, N, F_in) (or (N, T, F_in) when ``batch_first``).
            returns (N, F_out) for ``output="mean"``, (T, N, F_out) for ``"sequence"``;
            with ``return_state=True`` also the list of per-layer final states (``(s_T, y_T)``).
        """
        if state is not None and (not isinstance(state, Sequence) or len(state) != len(self.layers)):
            got = f"{len(state)} item(s)" if isinstance(state, Sequence) else type(state).__name__
            raise ConfigError(f"state must hold one (s, y) per SNU layer ({len(self.layers)}), got {got}")
        if self.batch_first and isinstance(x, Tensor) and x.dim() == 3:
            x = x.transpose(0, 1)
        spikes, final_states = x, []
        for i, layer in enumerate(self.layers):
            spikes, layer_state = layer(spikes, None if state is None else state[i])
            final_states.append(layer_state)
            spikes = variational_dropout(spikes, self.dropout, self.training)  # (T, N, hidden_i)
        if self.output == "mean":
            out = self.readout(time_mean(spikes))
        else:
            steps, batch, width = spikes.shape
            # a digital readout reads feature-major spikes (the spiking layer's) as a transposed view and
            # hands their gradient back feature-major: no (T*N, F) copy either way
            rows = feature_rows(spikes) if isinstance(self.readout, DigitalLinear) else spikes.reshape(steps * batch, width)
            out = self.readout(rows).reshape(steps, batch, -1)
            if self.batch_first:
                out = out.transpose(0, 1)
        return (out, final_states) if return_state else out
