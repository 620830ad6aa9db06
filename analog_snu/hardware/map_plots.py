"""Figures of a programmed network's PCM devices, per layer, at the layer's global indices.

aihwkit splits a layer larger than its tile size over a grid of tiles named
``<layer>.analog_module.array.<i>.<j>`` (``i``: block of inputs/columns, ``j``: block of
outputs/rows; see aihwkit's ``TileModuleArray``). The figures here put every tile back at its
place, so a 784-input layer split over two tiles shows columns 0-783, and they name the layer
as the user knows it (``layers.0.weight_ih``), never a tile path.

Works from the weight-map files (:func:`layers_from_maps`: the ``.json`` sidecar and the
``.npz`` arrays of :func:`analog_snu.hardware.export_weight_maps`) or from live tile states
(:func:`layer_maps_from_states`). Every figure is rendered with matplotlib's Agg backend at
:data:`PLOT_DPI` and returned as PNG bytes; the caller writes them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.times import format_time

__all__ = [
    "PLOT_DPI",
    "MAX_DPI",
    "MAX_FIGURE_PIXELS",
    "WEAR_FIELDS",
    "LayerMaps",
    "new_figure",
    "figure_png",
    "tile_grid_index",
    "tile_offsets",
    "layers_from_maps",
    "layer_maps_from_states",
    "conductance_maps_png",
    "weight_scatter_png",
    "histograms_png",
    "stuck_map_png",
    "wear_png",
    "layer_figures",
]

#: resolution of every figure the package writes (dots per inch)
PLOT_DPI = 150
#: the highest resolution a figure is rendered at (print quality; above it a figure takes GBs)
MAX_DPI = 600
#: the most pixels one rendered figure may have (an RGBA buffer of 4 bytes each)
MAX_FIGURE_PIXELS = 60_000_000
#: per-device wear counters a weight-map file may hold (hardware-in-the-loop runs)
WEAR_FIELDS = ("programming_events", "set_pulses", "refreshes")
_ARRAY_INDEX = re.compile(r"\.array\.(\d+)\.(\d+)$")
_SCATTER_POINTS = 20_000


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on the Agg backend (no display needed), constrained layout."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig, dpi: int = PLOT_DPI) -> bytes:
    """``fig`` as PNG bytes at ``dpi`` (default :data:`PLOT_DPI`); a figure of more than
    :data:`MAX_FIGURE_PIXELS` pixels is refused before it is rendered."""
    width, height = (float(size) * dpi for size in fig.get_size_inches())
    if width * height > MAX_FIGURE_PIXELS:
        raise ConfigError(f"a figure of {width:.0f} x {height:.0f} pixels at {dpi} dpi is larger than the "
                          f"{MAX_FIGURE_PIXELS:,} pixels allowed; use a lower dpi")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def tile_grid_index(tile_name: str) -> tuple[int, int] | None:
    """``(input_block, output_block)`` of an aihwkit tile-array member, ``None`` for a lone tile.

    >>> tile_grid_index("layers.0.weight_ih.analog_module.array.1.0")
    (1, 0)
    >>> tile_grid_index("readout.analog_module") is None
    True
    """
    match = _ARRAY_INDEX.search(tile_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


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


# --- figures ----------------------------------------------------------------------------------------


def _borders(ax, maps: LayerMaps) -> None:
    """Dashed lines where one tile ends and the next begins."""
    rows, cols = maps.tile_starts
    for col in cols[1:]:
        ax.axvline(col - 0.5, color="white", linestyle="--", linewidth=0.8)
    for row in rows[1:]:
        ax.axhline(row - 0.5, color="white", linestyle="--", linewidth=0.8)


def _index_axes(ax, maps: LayerMaps) -> None:
    rows, cols = maps.shape
    ax.set_xlabel(f"input index (column 0-{cols - 1})")
    ax.set_ylabel(f"output index (row 0-{rows - 1})")


def _when(maps: LayerMaps) -> str:
    return "as programmed" if maps.t_now == 0 else f"{format_time(maps.t_now)} after programming"


def _heatmap(fig, ax, maps: LayerMaps, image: np.ndarray, title: str, label: str, **kwargs) -> None:
    rows, cols = maps.shape
    artist = ax.imshow(image, aspect="auto", interpolation="nearest", extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
                       **kwargs)
    _borders(ax, maps)
    _index_axes(ax, maps)
    ax.set_title(title, fontsize=9)
    fig.colorbar(artist, ax=ax, label=label)


def conductance_maps_png(maps: LayerMaps, dpi: int = PLOT_DPI) -> bytes:
    """Heatmaps of G+ and G- (µS) at the current time, one row per pair, global indices."""
    fig = new_figure(10.0, 3.4 * maps.pairs + 0.6)
    axes = fig.subplots(maps.pairs, 2, squeeze=False)
    for k in range(maps.pairs):
        for col, (image, label) in enumerate(((maps.g_plus[k], "G+"), (maps.g_minus[k], "G-"))):
            _heatmap(fig, axes[k][col], maps, image, f"{label}, pair {k}", "conductance (µS)",
                     cmap="viridis", vmin=0.0, vmax=maps.g_max)
    fig.suptitle(f"PCM conductances of {maps.layer} ({maps.device}, {_when(maps)})")
    return figure_png(fig, dpi)


def weight_scatter_png(maps: LayerMaps, dpi: int = PLOT_DPI, seed: int = 0) -> bytes:
    """The weights the network computes with against the trained weights, with the identity line:
    as programmed and, after drift, at the export time with the device's drift compensation applied,
    as the network applies it. In the layer's weight units (the tiles' weights times their digital
    periphery's scales) where the maps hold those scales; older exports in tile units, uncompensated."""
    network = bool(maps.network)
    if network:
        target, programmed, now = (maps.network[k].ravel() for k in ("target", "programmed", "now"))
        if maps.compensation == "none":
            drifted = f"at {format_time(maps.t_now)}, no drift compensation"
        else:
            drifted = f"at {format_time(maps.t_now)}, {maps.compensation.replace('_', ' ')} drift compensation"
        x_label, y_label = "trained weight (the layer's W)", "weight the network computes with"
    else:
        target, programmed, now = (a.ravel() for a in (maps.weights_target, maps.weights_programmed, maps.weights_now))
        drifted = f"at {format_time(maps.t_now)}, without drift compensation"
        x_label, y_label = "target weight (tile units)", "programmed weight (tile units)"
    series = [("as programmed", programmed)]
    if maps.t_now > 0:
        series.append((drifted, now))
    peak = float(np.abs(target).max()) or 1.0
    pick = np.arange(target.size)
    if target.size > _SCATTER_POINTS:
        pick = np.random.default_rng(seed).choice(target.size, _SCATTER_POINTS, replace=False)
    fig = new_figure(6.0, 5.2)
    ax = fig.subplots()
    for label, values in series:
        rms = float(np.sqrt(np.mean((values - target) ** 2)))
        ax.scatter(target[pick], values[pick], s=3, alpha=0.4,
                   label=f"{label}: RMS error {rms:.3g} ({100 * rms / peak:.2g} % of max |W|)")
    low, high = float(target.min()), float(target.max())
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="equal to the trained weight")
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"{y_label} (closer to the line is better)")
    shown = "" if pick.size == target.size else f"\n{pick.size:,} of {target.size:,} weights shown"
    ax.set_title(f"Weight error of {maps.layer} ({maps.device}){shown}", fontsize=10)
    ax.legend(fontsize=8, markerscale=3)
    return figure_png(fig, dpi)


def histograms_png(maps: LayerMaps, dpi: int = PLOT_DPI) -> bytes:
    """Histograms of the conductances (G+ and G-, µS) and of the working devices' drift exponents."""
    fig = new_figure(10.0, 3.8)
    ax_g, ax_nu = fig.subplots(1, 2)
    bins = np.linspace(0.0, max(maps.g_max, float(max(maps.g_plus.max(), maps.g_minus.max()))), 61)
    ax_g.hist(maps.g_plus.ravel(), bins=bins, alpha=0.6, label="G+")
    ax_g.hist(maps.g_minus.ravel(), bins=bins, alpha=0.6, label="G-")
    ax_g.set_yscale("log")
    ax_g.set_xlabel("conductance (µS)")
    ax_g.set_ylabel("devices")
    ax_g.set_title(f"conductances ({_when(maps)})", fontsize=9)
    ax_g.legend()
    working = maps.nu[maps.stuck == 0]
    ax_nu.hist(working, bins=60, color="tab:purple")
    ax_nu.set_xlabel("drift exponent ν (dimensionless; lower drifts less)")
    ax_nu.set_ylabel("devices")
    mean = f", mean {working.mean():.3g}" if working.size else ""
    ax_nu.set_title(f"drift exponents of the {working.size:,} working devices{mean}", fontsize=9)
    fig.suptitle(f"Device statistics of {maps.layer} ({maps.device})")
    return figure_png(fig, dpi)


def stuck_map_png(maps: LayerMaps, dpi: int = PLOT_DPI) -> bytes:
    """Map of stuck devices per weight (how many of its 2K devices are stuck), with the counts."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    devices = 2 * maps.pairs
    per_weight = (maps.stuck != 0).sum(axis=(0, 1))
    at_gmax, at_zero = int((maps.stuck == 1).sum()), int((maps.stuck == 2).sum())
    colors = ["#f0f0f0", "#fdae61", "#d7191c", "#7b3294", "#2c7bb6", "#1a9641", "#000000"]
    cmap = ListedColormap(colors[: devices + 1] if devices + 1 <= len(colors) else colors)
    norm = BoundaryNorm(np.arange(-0.5, devices + 1.5), cmap.N)
    fig = new_figure(7.0, 5.0)
    ax = fig.subplots()
    rows, cols = maps.shape
    artist = ax.imshow(per_weight, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm,
                       extent=(-0.5, cols - 0.5, rows - 0.5, -0.5))
    _borders(ax, maps)
    _index_axes(ax, maps)
    fig.colorbar(artist, ax=ax, ticks=range(devices + 1), label=f"stuck devices of the weight's {devices}")
    total = maps.stuck.size
    ax.set_title(f"Stuck devices of {maps.layer} ({maps.device}): {at_gmax:,} at g_max, {at_zero:,} at 0 µS "
                 f"of {total:,} ({100 * (at_gmax + at_zero) / total:.3g} %)", fontsize=9)
    return figure_png(fig, dpi)


_WEAR_LABELS = {"programming_events": "programming events", "set_pulses": "SET pulses", "refreshes": "refreshes"}


def wear_png(maps: LayerMaps, dpi: int = PLOT_DPI) -> bytes | None:
    """Per-weight maps of the wear counters the run used, one panel per counter that is not zero
    everywhere (a reprogramming run sends no SET pulses, a mixed-precision run counts them);
    ``None`` when there is none. Every figure is per weight, title and colour bar alike: the sum
    over the weight's devices (2K of them; refreshes count per pair, K of them)."""
    used = {name: counts for name, counts in maps.wear.items() if np.any(counts)}
    if not used:
        return None
    fig = new_figure(6.0 * len(used), 4.8)
    axes = fig.subplots(1, len(used), squeeze=False)[0]
    for ax, (name, counts) in zip(axes, used.items()):
        per_member = counts.reshape(-1, *maps.shape)
        per_weight = per_member.sum(axis=0)
        label = _WEAR_LABELS.get(name, name.replace("_", " "))
        members = f"{per_member.shape[0]} pair{'s' if per_member.shape[0] != 1 else ''}" if name == "refreshes" \
            else f"{per_member.shape[0]} devices"
        _heatmap(fig, ax, maps, per_weight, f"{label} per weight (sum over its {members}):\n"
                 f"mean {per_weight.mean():.3g}, max {per_weight.max():g}", f"{label} per weight", cmap="magma")
    unused = [_WEAR_LABELS.get(name, name) for name in maps.wear if name not in used]
    fig.suptitle(f"Device wear of {maps.layer} ({maps.device})" + (f"; no {', no '.join(unused)}" if unused else ""))
    return figure_png(fig, dpi)


def layer_figures(maps: LayerMaps, dpi: int = PLOT_DPI) -> dict[str, bytes]:
    """Every figure of a layer: ``conductance``, ``weights``, ``histograms``; ``stuck`` where a
    device is stuck; ``wear`` where the maps hold wear counters that are not all zero."""
    figures = {
        "conductance": conductance_maps_png(maps, dpi),
        "weights": weight_scatter_png(maps, dpi),
        "histograms": histograms_png(maps, dpi),
    }
    if np.any(maps.stuck):
        figures["stuck"] = stuck_map_png(maps, dpi)
    wear = wear_png(maps, dpi)
    if wear is not None:
        figures["wear"] = wear
    return figures
