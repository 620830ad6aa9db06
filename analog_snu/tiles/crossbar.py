"""A typed handle on the analog tiles of a network: the one way the packages above reach aihwkit's objects.

aihwkit's object model (a layer's ``get_weights`` / ``set_weights``, a tile's inner ``tile``,
``set_mapping_scales``, ``analog_ctx`` placeholders, ``named_analog_tiles``, the
``<layer>.analog_module.array.<i>.<j>`` names of a split layer) is touched in :mod:`analog_snu.tiles`
only. Everything above holds a :class:`Crossbar` (one tile: its weights, output scales, noise model,
kind and programmed conductances) or calls the layer-level functions here; ``tests/test_layering.py``
keeps it so.

Shape letters: F_out x F_in a tile's weight matrix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from analog_snu.errors import CheckpointError
from analog_snu.pcm.physics import PCMTileState
from analog_snu.tiles.linear import is_analog
from analog_snu.tiles.pcm_noise import PCMNoiseModel
from analog_snu.tiles.tile_access import (
    attach_noise_model,
    has_training_noise,
    is_inference_tile,
    mapping_scales_copy,
    named_layer_tiles,
    restore_tile,
    tile_noise_model,
)
from analog_snu.tiles.units import remap_tile, update_in_network_units

__all__ = [
    "Crossbar",
    "TileKind",
    "crossbars",
    "holds_tiles",
    "is_model_tensor",
    "is_tile_scale",
    "layer_weights",
    "load_tile_tensors",
    "saved_like",
    "set_layer_weights",
    "tile_grid_index",
    "tile_tensors",
]

#: ``"inference"``: an aihwkit inference/HWA tile (C++ or torch); ``"pulsed"``: any other (pulsed or floating point)
TileKind = Literal["inference", "pulsed"]

_ARRAY_INDEX = re.compile(r"\.array\.(\d+)\.(\d+)$")
_PLACEHOLDER = "analog_ctx"  # aihwkit's data-less parameter of every tile
_SCALE_ENTRIES = ("mapping_scales", "alpha", "shared_weights")  # a tile's periphery values in a state dict


@dataclass(frozen=True)
class Crossbar:
    """One analog tile of a network.

    Every tensor read is a copy, every tensor written is copied in: a saved value never changes
    with the tile (aihwkit's ``get_mapping_scales()`` returns its live buffer).
    """

    layer: str
    """The analog layer that owns the tile (e.g. ``"layers.0.weight_ih"``, ``"readout"``)."""
    name: str
    """The tile's module name (a key of the weight maps and the chip)."""
    _tile: Any = field(repr=False, compare=False)

    @property
    def kind(self) -> TileKind:
        """``"inference"`` for aihwkit inference/HWA tiles, ``"pulsed"`` for pulsed/floating-point ones."""
        return "inference" if is_inference_tile(self._tile) else "pulsed"

    @property
    def has_training_noise(self) -> bool:
        """True when the tile injects hardware-aware training noise or clips its weights (``"hwa"``)."""
        return has_training_noise(self._tile)

    @property
    def noise_model(self) -> PCMNoiseModel | None:
        """The tile's own PCM noise model, else ``None`` (stock aihwkit configs)."""
        return tile_noise_model(self._tile)

    @property
    def programmed(self) -> PCMTileState | None:
        """Every device of the tile after its last programming / drift (``None``: not programmed)."""
        noise_model = self.noise_model
        return None if noise_model is None else noise_model.state

    @property
    def grid_index(self) -> tuple[int, int] | None:
        """``(input_block, output_block)`` of a tile of a split layer, ``None`` for a lone tile."""
        return tile_grid_index(self.name)

    def weights(self) -> Tensor:
        """The tile's weights in tile units, as aihwkit's layer stores them (no weight scaling). Shape: (F_out, F_in)."""
        weight, _ = self._tile.get_weights(apply_weight_scaling=False)
        return weight

    def read_weights(self) -> Tensor:
        """The crossbar's weights (tile units), a detached CPU float32 copy. Shape: (F_out, F_in)."""
        return torch.as_tensor(self._tile.tile.get_weights()).detach().cpu().to(torch.float32).clone()

    @torch.no_grad()
    def write_weights(self, weights: Tensor) -> None:
        """Set the crossbar's weights (tile units) to a float32 copy of ``weights`` (F_out, F_in)."""
        self._tile.tile.set_weights(weights.detach().to(torch.float32).clone())

    def output_scales(self) -> Tensor | None:
        """A copy of the tile's digital output (mapping) scales, or ``None``. Shape: (1,) or (F_out,)."""
        return mapping_scales_copy(self._tile)

    def set_output_scales(self, scales: Tensor | None) -> None:
        """Set the tile's digital output scales to a copy of ``scales`` (``None``: none)."""
        self._tile.set_mapping_scales(None if scales is None else scales.clone())

    def remap(self, omega: float) -> None:
        """Re-choose the digital output scale so that ``max |W_tile| = omega`` (see :func:`~analog_snu.tiles.units.remap_tile`)."""
        remap_tile(self._tile, omega)

    def attach_noise_model(self, noise_model: PCMNoiseModel) -> PCMNoiseModel:
        """Give the tile its own copy of ``noise_model``; returns that copy."""
        return attach_noise_model(self._tile, noise_model)

    def restore(self, noise_model: PCMNoiseModel, state: PCMTileState, snapshot: dict[str, Tensor | None]) -> None:
        """Put the tile into a programmed/drifted ``state`` with its periphery ``snapshot``."""
        restore_tile(self._tile, noise_model, state, snapshot)

    @contextmanager
    def in_network_units(self, resting_scales: Tensor | None, forward_scales: Tensor | None) -> Iterator[None]:
        """Inside the block the weights and their gradient are in network units
        (see :func:`~analog_snu.tiles.units.update_in_network_units`)."""
        with update_in_network_units(self._tile, resting_scales, forward_scales):
            yield


def crossbars(model: nn.Module) -> list[Crossbar]:
    """A handle on every analog tile of ``model``, in module order (empty for a digital model)."""
    return [Crossbar(layer, name, tile) for layer, name, tile in named_layer_tiles(model)]


def tile_grid_index(tile_name: str) -> tuple[int, int] | None:
    """``(input_block, output_block)`` of an aihwkit tile-array member, ``None`` for a lone tile.

    aihwkit splits a layer larger than its tile size over a grid of tiles named
    ``<layer>.analog_module.array.<i>.<j>`` (``i``: block of inputs, ``j``: block of outputs).

    >>> tile_grid_index("layers.0.weight_ih.analog_module.array.1.0")
    (1, 0)
    >>> tile_grid_index("readout.analog_module") is None
    True
    """
    match = _ARRAY_INDEX.search(tile_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- analog layers -------------------------------------------------------------------------------
def holds_tiles(module: nn.Module) -> bool:
    """An aihwkit layer with its own tile(s) (AnalogLinear, ...), not a container of such layers."""
    return is_analog(module) and hasattr(module, "analog_module")


@torch.no_grad()
def layer_weights(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The logical (network-unit) weight and bias of an analog layer, all its tiles joined."""
    return cast(Any, module).get_weights()  # an aihwkit analog layer


@torch.no_grad()
def set_layer_weights(module: nn.Module, weight: Tensor, bias: Tensor | None = None) -> None:
    """Write the logical weight and bias of an analog layer (aihwkit maps them onto its tiles)."""
    cast(Any, module).set_weights(weight, bias)  # an aihwkit analog layer


# -- state dicts and checkpoints -----------------------------------------------------------------
def is_model_tensor(name: str, value: Any) -> bool:
    """True for a state-dict entry that is data of the model: not aihwkit's placeholder parameter
    (``analog_ctx``) nor its dict of Python objects (the tile state)."""
    return isinstance(value, Tensor) and not name.endswith(_PLACEHOLDER) and type(value) in (Tensor, nn.Parameter)


def is_tile_scale(name: str) -> bool:
    """True for a state-dict entry that is a tile's periphery value (scales, drift compensation),
    which belongs to the tile it was set on, not to the logical weights."""
    return name.endswith(_SCALE_ENTRIES)


def saved_like(name: str, saved: Tensor, target: Tensor) -> Tensor:
    """``saved`` in the shape of the model's ``target`` entry where aihwkit changes it: drift
    compensation turns a tile's (1,) ``alpha`` into a 0-d tensor."""
    if name.endswith(".alpha") and target.numel() == saved.numel() == 1:
        return saved.reshape(target.shape)
    return saved


def _stored_tiles(model: nn.Module) -> list[tuple[str, Any]]:
    named = getattr(model, "named_analog_tiles", None)
    return list(named()) if callable(named) else []


def _hidden_parameters(tile: Any) -> Tensor | None:
    getter = getattr(getattr(tile, "tile", None), "get_hidden_parameters", None)
    if not callable(getter):
        return None
    hidden = getter()
    return hidden.detach().cpu().clone().contiguous() if hidden.numel() else None


@torch.no_grad()
def tile_tensors(model: nn.Module) -> dict[str, Tensor]:
    """Every tile's weights (tile units), analog bias and hidden (pulsed-device) parameters, as
    CPU copies named ``tile/<tile>/weight``, ``.../bias``, ``.../hidden``."""
    tensors: dict[str, Tensor] = {}
    for name, tile in _stored_tiles(model):
        weight, bias = tile.get_weights(apply_weight_scaling=False)
        tensors[f"tile/{name}/weight"] = weight.detach().cpu().clone().contiguous()
        if bias is not None and getattr(tile, "analog_bias", False):
            tensors[f"tile/{name}/bias"] = bias.detach().cpu().clone().contiguous()
        hidden = _hidden_parameters(tile)
        if hidden is not None:
            tensors[f"tile/{name}/hidden"] = hidden
    return tensors


@torch.no_grad()
def load_tile_tensors(model: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    """Put :func:`tile_tensors` back (digital biases are model tensors, restored before this);
    :class:`~analog_snu.errors.CheckpointError` when the tiles differ from the model's."""
    tiles = dict(_stored_tiles(model))
    saved_tiles = {name.split("/", 1)[1].rsplit("/", 1)[0] for name in tensors if name.startswith("tile/")}
    if set(tiles) != saved_tiles:
        raise CheckpointError(
            f"checkpoint tiles {sorted(saved_tiles)[:5]} do not match the model's {sorted(tiles)[:5]} (a different config?)"
        )
    for name, tile in tiles.items():
        weight = tensors[f"tile/{name}/weight"]
        bias = tensors.get(f"tile/{name}/bias")
        if getattr(tile, "digital_bias", False) and getattr(tile, "bias", None) is not None:
            bias = tile.bias.detach().clone()  # restored as a model tensor
        tile.set_weights(weight, bias, apply_weight_scaling=False)
        hidden = tensors.get(f"tile/{name}/hidden")
        if hidden is not None:
            tile.tile.set_hidden_parameters(hidden)
