"""Build a task model from its :class:`~analog_snu.models.spec.ModelSpec`."""

from __future__ import annotations

from typing import Any

from torch import nn

from analog_snu.models.conv_snu_network import ConvSNUNetwork
from analog_snu.models.networks import LanguageModel, RecurrentNetwork
from analog_snu.models.snu_network import SNUNetwork
from analog_snu.models.spec import ModelSpec
from analog_snu.tiles import device_rpu_config

__all__ = ["build_model", "rpu_config_for"]


def rpu_config_for(spec: ModelSpec) -> Any:
    """The aihwkit RPU config of ``spec``'s device for its tile kind (``None`` when digital)."""
    if spec.device is None:
        return None
    return device_rpu_config(spec.device, spec.tile_kind)


def _snu_kwargs(spec: ModelSpec) -> dict[str, Any]:
    if not spec.spiking:
        return {}
    return {"recurrent": spec.recurrent, "decay": spec.decay, "g": spec.g, "threshold": spec.threshold,
            "surrogate": spec.surrogate, **spec.cell_options}


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (weights from the global torch RNG).

    - ``head="mean"``, ``"sequence"`` with a spiking cell: :class:`~analog_snu.models.snu_network.SNUNetwork`;
      with LSTM/GRU: :class:`~analog_snu.models.networks.RecurrentNetwork`.
    - ``head="language"``: :class:`~analog_snu.models.networks.LanguageModel`.

    The tiles are those of ``spec.tile_kind`` (a pulsed-trained model to program and drift is built
    from its spec with ``tile_kind="inference"``).
    """
    rpu_config = rpu_config_for(spec)
    snu_kwargs = _snu_kwargs(spec)
    if spec.head == "language":
        return LanguageModel(spec.input_size, spec.embedding_width, spec.hidden, spec.cell, rpu_config,
                             tie_weights=spec.tie_weights, dropout=spec.dropout, **snu_kwargs)
    sizes = [spec.input_size, *spec.hidden, spec.output_size]
    if spec.conv_channels:
        side = round(spec.input_size ** 0.5)
        return ConvSNUNetwork((1, side, side), spec.conv_channels, kernel_size=spec.conv_kernel, pool=spec.conv_pool,
                              hidden=spec.hidden, classes=spec.output_size, rpu_config=rpu_config, cell=spec.cell,
                              dropout=spec.dropout,
                              **{k: v for k, v in snu_kwargs.items() if k != "recurrent"})
    if spec.spiking:
        return SNUNetwork(sizes, output=spec.head, rpu_config=rpu_config, cell=spec.cell, dropout=spec.dropout,
                          **snu_kwargs)
    return RecurrentNetwork(sizes, spec.cell, output=spec.head, rpu_config=rpu_config, dropout=spec.dropout)
