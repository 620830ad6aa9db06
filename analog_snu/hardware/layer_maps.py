"""A programmed network's PCM devices per layer, at the layer's global indices (data for figures).

aihwkit splits a layer larger than its tile size over a grid of tiles
(:func:`analog_snu.tiles.crossbar.tile_grid_index` reads a tile's place from its name). The :class:`LayerMaps` here put every tile
back at its place, so a 784-input layer split over two tiles shows columns 0-783, and they name
the layer as the user knows it (``layers.0.weight_ih``), never a tile path.

Built from the weight-map files (:func:`layers_from_maps`: the ``.json`` sidecar and the
``.npz`` arrays of :func:`analog_snu.reports.export_weight_maps`) or from live tile states
(:func:`layer_maps_from_states`); :mod:`analog_snu.reports.map_plots` draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analog_snu.errors import CheckpointError
from analog_snu.tiles.crossbar import tile_grid_index

__all__ = [
    "WEAR_FIELDS",
    "LayerMaps",
    "tile_grid_index",
    "tile_offsets",
    "layers_from_maps",
    "layer_maps_from_states",
]

#: per-device wear counters a weight-map file may hold (hardware-in-the-loop runs)
WEAR_FIELDS = ("programming_events", "set_pulses", "refreshes")


def tile_offsets(tiles: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Global ``(row, column)`` offset of every tile in its layer.

    ``tiles``: entries with ``"name"``, ``"layer"`` and ``"shape"`` ``[F_out, F_in]`` (the
    ``tiles`` list of a weight-map sidecar). Column offsets add up the widths of the input
    blocks before a tile's, row offsets the heights of the output blocks before it.

    Raises:
        CheckpointError: a layer has several tiles not named as an aihwkit tile array, or
            blocks of one grid row/column disagree in size.
    """
    by_layer: dict[str, list[Mapping[str, Any]]] = {}
    for entry in tiles:
        by_layer.setdefault(str(entry["layer"]), []).append(entry)
    offsets: dict[str, tuple[int, int]] = {}
    for layer, entries in by_layer.items():
        indices = [tile_grid_index(str(e["name"])) for e in entries]
        if len(entries) == 1 and indices[0] is None:
            offsets[str(entries[0]["name"])] = (0, 0)
            continue
        if any(index is None for index in indices):
            names = [str(e["name"]) for e in entries]
            raise CheckpointError(f"layer {layer!r} has several tiles {names} that are not an aihwkit tile array "
                                  "(names ending in .array.<i>.<j>); cannot place them in the layer")
        widths: dict[int, int] = {}
        heights: dict[int, int] = {}
        for entry, (col_block, row_block) in zip(entries, indices):  # type: ignore[misc]
            rows, cols = (int(v) for v in entry["shape"])
            for sizes, block, size, what in ((widths, col_block, cols, "input"), (heights, row_block, rows, "output")):
                if sizes.setdefault(block, size) != size:
                    raise CheckpointError(f"layer {layer!r}: tiles of {what} block {block} differ in size "
                                          f"({sizes[block]} vs {size})")
        col_start = np.cumsum([0] + [widths[b] for b in sorted(widths)])
        row_start = np.cumsum([0] + [heights[b] for b in sorted(heights)])
        col_of = {b: int(col_start[k]) for k, b in enumerate(sorted(widths))}
        row_of = {b: int(row_start[k]) for k, b in enumerate(sorted(heights))}
        for entry, (col_block, row_block) in zip(entries, indices):  # type: ignore[misc]
            offsets[str(entry["name"])] = (row_of[row_block], col_of[col_block])
    return offsets


@dataclass
class LayerMaps:
    """Every device of one layer, at global indices (all tiles of the layer put together).

    Shape:
        weights_*: (F_out, F_in) tile units; g_plus, g_minus: (K, F_out, F_in) µS at ``t_now``;
        nu, stuck: (K, 2, F_out, F_in) (dim 1: 0 = G+, 1 = G-); wear values: (K, 2, F_out, F_in)
        or (F_out, F_in) counts. K = conductance pairs per weight.
    """

    layer: str
    """Layer name as in the model (``layers.0.weight_ih``, ``readout``)."""
    device: str
    """Device (preset) name."""
    g_max: float
    """Nominal saturation conductance (µS), the top of the colour scale."""
    t_now: float
    """Seconds after programming of the current conductances."""
    weights_target: np.ndarray
    weights_programmed: np.ndarray
    weights_now: np.ndarray
    g_plus: np.ndarray
    g_minus: np.ndarray
    nu: np.ndarray
    stuck: np.ndarray
    tile_starts: tuple[list[int], list[int]] = ([0], [0])
    """First global row and first global column of each tile block (for the block borders)."""
    wear: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-device wear counters (:data:`WEAR_FIELDS`) where the maps hold them."""
    network: dict[str, np.ndarray] = field(default_factory=dict)
    """``target``, ``programmed``, ``now`` (F_out, F_in): the weights in the network's units (tile weights
    times the digital periphery's scales; ``now`` with the drift compensation the tiles apply), where the
    maps hold the scales (exports before these scales existed do not)."""
    compensation: str = "none"
    """The device's drift compensation (``none``, ``global``, ``per_column``)."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights_target.shape)  # type: ignore[return-value]

    @property
    def pairs(self) -> int:
        return int(self.g_plus.shape[0])


def _place(target: np.ndarray, block: np.ndarray, row: int, col: int) -> None:
    rows, cols = block.shape[-2:]
    target[..., row:row + rows, col:col + cols] = block


_NETWORK_KEYS = {"network_target": "target", "network_programmed": "programmed", "network_now": "now"}


def _assemble(layer: str, parts: list[tuple[str, tuple[int, int], dict[str, np.ndarray]]], device: str,
              g_max: float, t_now: float, compensation: str = "none") -> LayerMaps:
    rows = max(off[0] + p["weights_target"].shape[0] for _, off, p in parts)
    cols = max(off[1] + p["weights_target"].shape[1] for _, off, p in parts)
    full: dict[str, np.ndarray] = {}
    keys = ["weights_target", "weights_programmed", "weights_now", "g_plus", "g_minus", "nu", "stuck"]
    wear_keys = [k for k in WEAR_FIELDS if all(k in p for _, _, p in parts)]
    network_keys = [k for k in _NETWORK_KEYS if all(k in p for _, _, p in parts)]
    for key in keys + wear_keys + network_keys:
        first = parts[0][2][key]
        array = np.zeros((*first.shape[:-2], rows, cols), dtype=first.dtype)
        for _, (row, col), p in parts:
            _place(array, p[key], row, col)
        full[key] = array
    starts = (sorted({off[0] for _, off, _ in parts}), sorted({off[1] for _, off, _ in parts}))
    return LayerMaps(layer=layer, device=device, g_max=g_max, t_now=t_now, compensation=compensation,
                     wear={k: full.pop(k) for k in wear_keys}, tile_starts=starts,
                     network={_NETWORK_KEYS[k]: full.pop(k) for k in network_keys}, **full)


def _network_weights(name: str, part: dict[str, np.ndarray], arrays: Mapping[str, np.ndarray]) -> None:
    """Add the tile's weights in network units to ``part`` when the maps hold its scales."""
    scales = [arrays.get(f"{name}/network_scale_{when}") for when in ("programmed", "now")]
    if any(s is None for s in scales):
        return
    rows = part["weights_target"].shape[0]
    programmed, now = (np.asarray(s, dtype=np.float64).reshape(-1) for s in scales)
    for key, scale in (("network_scale_programmed", programmed), ("network_scale_now", now)):
        if scale.size not in (1, rows) or not np.isfinite(scale).all():
            raise CheckpointError(f"weight-map array {name}/{key} has shape {scale.shape}, expected (1,) or ({rows},) "
                                  "finite values")
    part["network_target"] = part["weights_target"] * programmed[:, None]
    part["network_programmed"] = part["weights_programmed"] * programmed[:, None]
    part["network_now"] = part["weights_now"] * now[:, None]


def layers_from_maps(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[LayerMaps]:
    """The layers of a weight-map file: its sidecar ``meta`` (parsed JSON) and ``arrays`` (the npz).

    Raises:
        CheckpointError: an array the figures need is missing or has another shape.
    """
    tiles = list(meta.get("tiles") or [])
    offsets = tile_offsets(tiles)
    by_layer: dict[str, list[tuple[str, tuple[int, int], dict[str, np.ndarray]]]] = {}
    info: dict[str, tuple[str, float, float, str]] = {}
    for entry in tiles:
        name = str(entry["name"])
        rows, cols = (int(v) for v in entry["shape"])
        part: dict[str, np.ndarray] = {}
        for key in ("weights_target", "weights_programmed", "weights_now", "g_plus", "g_minus", "nu", "stuck",
                    *WEAR_FIELDS):
            full = f"{name}/{key}"
            if full not in arrays:
                if key in WEAR_FIELDS:
                    continue
                raise CheckpointError(f"weight maps lack array {full!r}")
            value = np.asarray(arrays[full])
            if value.shape[-2:] != (rows, cols):
                raise CheckpointError(f"weight-map array {full!r} has shape {value.shape}, expected (..., {rows}, {cols})")
            part[key] = value
        _network_weights(name, part, arrays)
        by_layer.setdefault(str(entry["layer"]), []).append((name, offsets[name], part))
        device = entry.get("device") or {}
        g_max = float((device.get("conductance") or {}).get("g_max", np.nanmax(part["g_plus"]) or 1.0))
        compensation = str((device.get("periphery") or {}).get("drift_compensation", "none"))
        info.setdefault(str(entry["layer"]), (str(device.get("name", "?")), g_max,
                                              float(entry.get("time_since_programming_s", 0.0)), compensation))
    return [_assemble(layer, parts, *info[layer]) for layer, parts in by_layer.items()]


def layer_maps_from_states(layer: str, layer_tiles: Sequence[tuple[str, Any, Any]]) -> LayerMaps:
    """:class:`LayerMaps` of live tiles: ``layer_tiles`` = ``[(tile_name, PCMNoiseModel, PCMTileState)]``."""
    entries = [{"name": name, "layer": layer, "shape": list(state.shape)} for name, _, state in layer_tiles]
    offsets = tile_offsets(entries)
    parts = []
    for name, _, s in layer_tiles:
        part = {
            "weights_target": s.weights_target, "weights_programmed": s.weights_programmed,
            "weights_now": s.weights_now, "g_plus": s.g_now[:, 0], "g_minus": s.g_now[:, 1], "nu": s.nu,
            "stuck": s.stuck,
        }
        parts.append((name, offsets[name], {k: v.detach().cpu().numpy() for k, v in part.items()}))
    _, noise_model, state = layer_tiles[0]
    return _assemble(layer, parts, noise_model.device.name, float(noise_model.device.conductance.g_max),
                     float(state.t_now))
