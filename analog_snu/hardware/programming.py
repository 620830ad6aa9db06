"""Program the analog tiles of a network onto PCM, drift them in time, count devices.

Works on every analog tile, inference/HWA tiles and pulsed-trained tiles alike (aihwkit's own
``drift_analog_weights`` silently skips pulsed tiles). Both steps are reproducible from a seed:
tile ``i`` draws from its own ``torch.Generator`` seeded from ``(seed, i)``.
"""

from __future__ import annotations

import struct

import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.pcm import PCMDevice, list_presets, resolve_device
from analog_snu.pcm.physics import PCMTileState
from analog_snu.pcm.seeds import derive_seed
from analog_snu.schema import check_seed
from analog_snu.tiles.crossbar import crossbars
from analog_snu.tiles.pcm_noise import PCMNoiseModel
from analog_snu.tiles.tile_access import (
    attach_noise_model,
    drift_tile,
    named_layer_tiles,
    program_tile,
    tile_noise_model,
)
from analog_snu.times import parse_time

__all__ = ["program", "drift", "device_count", "programmed_states", "derive_seed", "seconds_after_programming"]

_PROGRAM, _DRIFT, _FORWARD = 1, 2, 3  # stream ids mixed into the seeds


def _generator(seed: int | None, *parts: int) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def _forward_seed(seed: int | None, *parts: int) -> int:
    return derive_seed(seed, *parts) if seed is not None else int(torch.randint(0, 2**62, (1,)))


def _check_seed(seed: object) -> int | None:
    return check_seed(seed, optional=True)


def _analog_tiles(model: nn.Module):
    tiles = named_layer_tiles(model)
    if not tiles:
        raise ConfigError("the model has no analog tiles; build it with rpu_config=device_rpu_config(preset(...), mode)")
    return tiles


def program(model: nn.Module, seed: int | None = 0, device: PCMDevice | str | None = None) -> dict[str, PCMTileState]:
    """Program every analog tile of ``model`` onto PCM devices; puts the model in eval mode.

    Each tile is programmed from its reference weights (the trained weights; programming again
    starts from them, not from the previous programmed ones) with its own
    :class:`~analog_snu.tiles.pcm_noise.PCMNoiseModel`. ``device`` (a :class:`PCMDevice`, a
    preset name or a ``.toml``/``.json`` device file) replaces the tiles' device, and is required for tiles built from stock aihwkit
    configs. ``seed=None`` draws from torch's global RNG.

    Returns: tile name -> its :class:`~analog_snu.tiles.pcm_noise.PCMTileState`.
    """
    seed = _check_seed(seed)
    device = None if device is None else resolve_device(device)
    model.eval()
    states = {}
    for index, (_, name, tile) in enumerate(_analog_tiles(model)):
        noise_model = tile_noise_model(tile)
        if device is not None and (noise_model is None or noise_model.device != device):
            noise_model = attach_noise_model(tile, PCMNoiseModel(device))
        if noise_model is None:
            raise ConfigError(
                f"tile {name!r} has no PCM device model (a stock aihwkit RPU config?); pass device= a "
                f"PCMDevice or one of the presets {list_presets()}"
            )
        state = program_tile(tile, noise_model, _generator(seed, _PROGRAM, index), _forward_seed(seed, _FORWARD, index))
        state.program_seed = seed
        states[name] = state
    return states


def seconds_after_programming(value: object, name: str = "t_seconds") -> float:
    """``value`` as seconds after programming: a number of seconds or a time such as ``"1d"``
    (:func:`~analog_snu.times.parse_time`), finite and >= 0, else a
    :class:`~analog_snu.errors.ConfigError` that names ``name``."""
    return parse_time(value, name) + 0.0  # -0.0 becomes 0.0: a time is stored and compared without a sign


def _time_bits(t_seconds: float) -> int:
    return int.from_bytes(struct.pack("<d", float(t_seconds)), "little")


def drift(model: nn.Module, t_seconds: float | str, seed: int | None = None) -> dict[str, PCMTileState]:
    """Move every programmed tile to ``t_seconds`` after programming (seconds, or a time such as
    ``"1d"``), with fresh read noise.

    Drift compensation (per the device config) is re-estimated at the new time. ``seed=None``
    derives the seed from the programming seed and ``t_seconds``: repeating
    ``program(m, seed=s); drift(m, t)`` gives identical weights. Works on pulsed tiles too.

    Returns: tile name -> its state at ``t_seconds``.
    """
    t_seconds = seconds_after_programming(t_seconds)
    seed = _check_seed(seed)
    model.eval()
    states = {}
    for index, (_, name, tile) in enumerate(_analog_tiles(model)):
        noise_model = tile_noise_model(tile)
        if noise_model is None or noise_model.state is None:
            raise ConfigError(f"tile {name!r} is not programmed; call analog_snu.program(model, seed=...) first")
        program_seed = noise_model.state.program_seed
        tile_seed = seed if seed is not None else (
            None if program_seed is None else derive_seed(program_seed, _time_bits(t_seconds))
        )
        state = drift_tile(
            tile, float(t_seconds), _generator(tile_seed, _DRIFT, index), _forward_seed(tile_seed, _FORWARD, _DRIFT, index)
        )
        state.drift_seed = tile_seed
        states[name] = state
    return states


def programmed_states(model: nn.Module) -> dict[str, PCMTileState | None]:
    """Tile name -> its current state (``None`` for a tile not programmed yet)."""
    out = {}
    for _, name, tile in named_layer_tiles(model):
        noise_model = tile_noise_model(tile)
        out[name] = None if noise_model is None else noise_model.state
    return out


def device_count(model: nn.Module) -> dict[str, int]:
    """PCM devices per analog layer and ``"total"``: 2 per differential pair per weight (biases,
    which aihwkit keeps digital, use none). An 88-150-88 SNU network with an analog readout and
    one pair per weight has 2 (88*150 + 150*88) = 52,800."""
    counts: dict[str, int] = {}
    _analog_tiles(model)  # refuses a digital model
    for crossbar in crossbars(model):
        noise_model = crossbar.noise_model
        per_weight = noise_model.device.devices_per_weight if noise_model is not None else 2
        counts[crossbar.layer] = counts.get(crossbar.layer, 0) + crossbar.weights().numel() * per_weight
    counts["total"] = sum(counts.values())
    return counts
