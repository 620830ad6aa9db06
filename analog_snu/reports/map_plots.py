"""Figures of a programmed network's PCM devices, per layer, at the layer's global indices.

Draws the :class:`~analog_snu.hardware.layer_maps.LayerMaps` of a layer (from the weight-map
files or from live tile states, see :mod:`analog_snu.hardware.layer_maps`). Every figure is
rendered with matplotlib's Agg backend at :data:`~analog_snu.reports.figures.PLOT_DPI` and
returned as PNG bytes; the caller writes them.
"""

from __future__ import annotations

import numpy as np

from analog_snu.hardware.layer_maps import LayerMaps
from analog_snu.reports.figures import PLOT_DPI, figure_png, new_figure
from analog_snu.times import format_time

__all__ = [
    "conductance_maps_png",
    "weight_scatter_png",
    "histograms_png",
    "stuck_map_png",
    "wear_png",
    "layer_figures",
]

_SCATTER_POINTS = 20_000


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
