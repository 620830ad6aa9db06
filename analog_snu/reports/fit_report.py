"""The goodness-of-fit report of a device fit: figures and one self-contained HTML page.

:func:`fit_report_files` draws, from a :class:`~analog_snu.fitting.DeviceFit` and reads of the
fitted device simulated at the measured targets and times (:class:`FitComparison`):

- ``programming_residuals.png``: read minus target against the target, the fitted mean and
  +-2 std band, stuck devices marked; and the standardised residuals of the fitted devices against
  a standard normal;
- ``programming_spread.png``: per conductance bin, the std of the measured reads and of the reads
  simulated from the fitted device at the same targets (median and band over the replicas);
- ``drift_medians.png``: per conductance bin, the median measured conductance against time (log
  axes) and the fitted device's, from many simulated replicas of the measured devices (line: the
  median over replicas, band: where one replica's bin median falls); medians at 0 µS as open
  triangles at the axis floor; beside it the fraction of reads at 0 µS per bin, measured and
  simulated (a bin whose reads are mostly censored at 0 has no informative median);
- ``read_noise.png``: each device's relative read-noise std against its conductance, and the
  fitted model's;
- ``index.html``: the fitted parameters with their intervals, the inherited ones, the warnings,
  every figure embedded (no file or URL referenced) and the device TOML.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analog_snu.fitting import DeviceFit
from analog_snu.fitting.fit import bin_index, conductance_bins
from analog_snu.fitting.model import read_noise_sigma
from analog_snu.fitting.programming_fit import ZERO_BAND, read_spread
from analog_snu.fitting.read_noise_fit import device_read_statistics
from analog_snu.pcm.measurements import DriftData
from analog_snu.reports.drift_plots import time_ticks
from analog_snu.reports.figures import PLOT_DPI, figure_png, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FitComparison", "fit_report_files", "fit_figures", "DriftBin", "drift_bins", "drift_figure",
           "BAND"]

_CAPTIONS = {
    "programming_residuals": "programming: read minus target, fitted mean and ±2 std; standardised residuals",
    "programming_spread": "programming: measured and simulated spread per conductance bin",
    "drift_medians": "drift: measured and fitted median conductance against time per conductance bin, and the reads at 0 µS",
    "read_noise": "read noise: relative std per device and the fitted model",
}


@dataclass(frozen=True)
class FitComparison:
    """Reads of the fitted device simulated like the measurements, R replicas of the measured
    devices (``None`` where not measured)."""

    programming: np.ndarray | None = None
    """One read per programming device and replica. Shape: (R, N)."""
    drift: np.ndarray | None = None
    """Reads at the drift file's times. Shape: (R, D, T), each replica like ``DriftData.g``."""


#: central fraction of the replicas' bin statistics drawn as the simulated band
BAND = 0.9


@dataclass(frozen=True)
class DriftBin:
    """Measured and simulated reads of the drift devices of one target bin, per read time.

    Shape: every array (T,), over ``times``. ``at_zero``: fraction of reads at 0 µS (at most
    :data:`~analog_snu.fitting.programming_fit.ZERO_BAND` ``g_max``: censored by the clamp at 0).
    ``simulated_*``: over the replicas, the median and the central :data:`BAND` of each replica's
    bin median, and the mean fraction of reads at 0 (NaN without a simulation)."""

    low: float
    high: float
    devices: int
    times: np.ndarray
    median: np.ndarray
    at_zero: np.ndarray
    simulated_median: np.ndarray
    simulated_low: np.ndarray
    simulated_high: np.ndarray
    simulated_at_zero: np.ndarray


def _bin_medians(g: np.ndarray, t: np.ndarray, times: np.ndarray, zero: float) -> tuple[np.ndarray, np.ndarray]:
    """Per time: the median read and the fraction of reads at or below ``zero``, over axis -2 (devices).

    Shape: g, t (..., D, T) -> (..., len(times)) twice (NaN at a time without reads)."""
    medians, zeros = [], []
    for time in times:
        at = np.where(t == time, g, np.nan).reshape(*g.shape[:-2], -1)
        count = np.isfinite(at).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            medians.append(np.nanmedian(np.where(count[..., None] > 0, at, 0.0), -1))
            zeros.append(np.where(count > 0, (at <= zero).sum(-1) / np.maximum(count, 1), np.nan))
        medians[-1] = np.where(count > 0, medians[-1], np.nan)
    return np.stack(medians, -1), np.stack(zeros, -1)


def drift_bins(data: DriftData, simulated: np.ndarray | None, g_max: float, least: int = 3) -> list[DriftBin]:
    """The drift figure's statistics: per target bin with at least ``least`` devices (the bins of
    :func:`~analog_snu.fitting.fit.conductance_bins`), the measured and simulated medians per time.

    Shape: simulated (R, D, T) like ``data.g`` per replica."""
    edges = conductance_bins("drift", g_max)
    index = bin_index(data.g_target, edges)
    times = np.unique(data.t[np.isfinite(data.t)])
    zero = ZERO_BAND * g_max
    tail = (1 - BAND) / 2
    bins = []
    for b in range(len(edges) - 1):
        inside = index == b
        if inside.sum() < least:
            continue
        median, at_zero = _bin_medians(data.g[inside], data.t[inside], times, zero)
        nan = np.full(times.shape, np.nan)
        sim = (nan, nan, nan, nan)
        if simulated is not None:
            replica_t = np.broadcast_to(data.t[inside], simulated[:, inside].shape)
            medians, zeros = _bin_medians(simulated[:, inside], replica_t, times, zero)
            sim = (np.median(medians, 0), np.quantile(medians, tail, 0), np.quantile(medians, 1 - tail, 0),
                   zeros.mean(0))
        bins.append(DriftBin(float(edges[b]), float(edges[b + 1]), int(inside.sum()), times, median, at_zero, *sim))
    return bins


def _programming_figures(fit: DeviceFit, simulated: np.ndarray | None, dpi: int) -> dict[str, bytes]:
    data, model, stage = fit.measurements.programming, fit.model, fit.estimate.programming
    mean, spread = read_spread(model, data.g_target, data.t)
    order = np.argsort(data.g_target)
    fig = new_figure(10.0, 4.2)
    left, right = fig.subplots(1, 2)
    working = stage.stuck == 0
    left.scatter(data.g_target[working], (data.g_measured - data.g_target)[working], s=4, alpha=0.5, label="working")
    for flag, label, marker in ((1, "stuck at g_max", "^"), (2, "stuck at 0 µS", "v")):
        chosen = stage.stuck == flag
        if chosen.any():
            left.scatter(data.g_target[chosen], (data.g_measured - data.g_target)[chosen], s=12, marker=marker,
                         label=label)
    left.plot(data.g_target[order], (mean - data.g_target)[order], color="black", label="fitted mean")
    for sign in (-2, 2):
        left.plot(data.g_target[order], (mean + sign * spread - data.g_target)[order], color="black",
                  linestyle="--", label="fitted ±2 std" if sign > 0 else None)
    left.set_xlabel("target conductance (µS)")
    left.set_ylabel("read minus target (µS)")
    left.set_title("Programming error", fontsize=10)
    left.legend(fontsize=8)
    z = ((data.g_measured - mean) / np.maximum(spread, 1e-12))[stage.used]
    right.hist(z, bins=40, density=True, alpha=0.6, label=f"fitted devices ({z.size})")
    grid = np.linspace(-4, 4, 200)
    right.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), color="black", label="standard normal")
    right.set_xlabel("standardised residual (read - mean) / std")
    right.set_ylabel("density")
    right.set_title("Residuals under the fitted model", fontsize=10)
    right.legend(fontsize=8)
    figures = {"programming_residuals": figure_png(fig, dpi)}
    if simulated is not None:
        edges = conductance_bins("programming", model.g_max)
        index = bin_index(data.g_target, edges)
        band = ZERO_BAND * model.g_max
        sim_stuck = (((simulated <= band) & (data.g_target > band + 5 * spread))
                     | ((simulated > mean + 6 * np.maximum(spread, band)) & (simulated > 0.5 * model.g_max)))
        centers, measured, sim, low, high = [], [], [], [], []
        tail = (1 - BAND) / 2
        for b in range(len(edges) - 1):
            inside = (index == b) & working
            if inside.sum() >= 3:
                centers.append((edges[b] + edges[b + 1]) / 2)
                measured.append(float(np.std(data.g_measured[inside] - data.g_target[inside], ddof=1)))
                # each replica's std over the same devices, its stuck ones left out by the rules the
                # fit recognises measured stuck devices with (the simulated reads carry no flag)
                replica = np.nanstd(np.where(sim_stuck[:, inside], np.nan, simulated[:, inside] - data.g_target[inside]),
                                    axis=1, ddof=1)
                sim.append(float(np.median(replica)))
                low.append(float(np.quantile(replica, tail)))
                high.append(float(np.quantile(replica, 1 - tail)))
        fig = new_figure(6.5, 4.2)
        ax = fig.subplots()
        ax.plot(centers, measured, "o-", label="measured")
        ax.plot(centers, sim, "s--", label="simulated from the fitted device (median of replicas)")
        ax.fill_between(centers, low, high, alpha=0.2, linewidth=0, label=f"{100 * BAND:g} % of replicas")
        ax.set_xlabel("target conductance, bin centre (µS)")
        ax.set_ylabel("std of read minus target (µS)")
        ax.set_title("Spread per conductance bin (working devices)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figures["programming_spread"] = figure_png(fig, dpi)
    return figures


def drift_axes_floor(bins: list[DriftBin], g_max: float) -> float:
    """The lowest conductance the drift figure shows: half the smallest positive median (medians
    at 0 µS are drawn there)."""
    values = np.concatenate([np.r_[b.median, b.simulated_median] for b in bins]) if bins else np.empty(0)
    positive = values[np.isfinite(values) & (values > 0)]
    return 0.5 * float(positive.min()) if positive.size else ZERO_BAND * g_max


def drift_figure(data: DriftData, simulated: np.ndarray | None, g_max: float) -> Figure:
    """Left: per target bin, the measured median against time (markers) and the fitted device's
    (line: median over the replicas, band: central :data:`BAND` of the replicas' medians, i.e.
    where the measured median falls if the fitted device is right); a median at 0 µS is an open
    triangle at the axis floor. Right: the fraction of reads at 0 µS per bin (censored by the
    clamp at 0), measured and simulated: where it reaches one half the median says only that."""
    bins = drift_bins(data, simulated, g_max)
    floor = drift_axes_floor(bins, g_max)
    fig = new_figure(11.0, 4.6)
    ax, zeros = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    any_zero_median = False
    for number, b in enumerate(bins):
        color = f"C{number % 10}"
        label = f"{b.low:.3g}-{b.high:.3g} µS ({b.devices})"
        shown = np.where(b.median > 0, b.median, np.nan)
        ax.plot(b.times, shown, "o", color=color, label=label)
        at_zero = b.median == 0
        if at_zero.any():
            any_zero_median = True
            ax.plot(b.times[at_zero], np.full(int(at_zero.sum()), floor), "v", color=color, markerfacecolor="none",
                    markersize=8, clip_on=False)
        if np.isfinite(b.simulated_median).any():
            ax.plot(b.times, np.maximum(b.simulated_median, floor), "-", color=color)
            ax.fill_between(b.times, np.maximum(b.simulated_low, floor), np.maximum(b.simulated_high, floor),
                            color=color, alpha=0.15, linewidth=0)
        zeros.plot(b.times, 100 * b.at_zero, "o", color=color)
        if np.isfinite(b.simulated_at_zero).any():
            zeros.plot(b.times, 100 * b.simulated_at_zero, "-", color=color)
    times = np.unique(data.t[np.isfinite(data.t)])
    ticks, labels = time_ticks(float(times.min()), float(times.max()))
    for axis in (ax, zeros):
        axis.set_xscale("log")
        if len(ticks) >= 2:
            axis.set_xticks(ticks, labels)
            axis.minorticks_off()
        axis.set_xlabel("time after programming (log scale)")
        axis.grid(True, which="major", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_ylabel("median conductance (µS, log scale)")
    title = f"Drift: measured medians (markers), fitted device (lines, {100 * BAND:g} % band of the median)"
    if any_zero_median:
        title += "\n▽ at the floor: median read at 0 µS (half the bin's reads or more are at 0)"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, title="target bin (devices)", title_fontsize=7)
    zeros.set_ylim(-2, 102)
    zeros.axhline(50, color="grey", linestyle=":", linewidth=1)
    zeros.set_ylabel(f"reads at 0 µS (≤ {ZERO_BAND * g_max:.3g} µS), %")
    zeros.set_title("Censored reads per bin: measured (markers), fitted (lines)", fontsize=9)
    return fig


def _read_noise_figure(fit: DeviceFit, dpi: int) -> bytes:
    data, model = fit.measurements.read_noise, fit.model
    g_mean, t_mean, rss, n = device_read_statistics(data)
    ok = (g_mean > 0) & (rss > 0)
    relative = np.sqrt(rss[ok] / (n[ok] - 2)) / g_mean[ok]
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    ax.scatter(g_mean[ok], relative, s=8, alpha=0.6, label="measured (per device)")
    grid = np.geomspace(max(float(g_mean[ok].min()), 1e-3), float(g_mean[ok].max()), 200)
    ax.plot(grid, read_noise_sigma(model, grid, float(np.median(t_mean))), color="black",
            label=f"fitted model at t = {np.median(t_mean):.3g} s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean conductance (µS, log scale)")
    ax.set_ylabel("relative read-noise std (log scale)")
    ax.set_title("Read noise", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig, dpi)


def fit_figures(fit: DeviceFit, comparison: FitComparison, dpi: int = PLOT_DPI) -> dict[str, bytes]:
    """Figure name -> PNG bytes, for the kinds of data the fit had."""
    figures: dict[str, bytes] = {}
    if fit.measurements.programming is not None:
        figures.update(_programming_figures(fit, comparison.programming, dpi))
    if fit.measurements.drift is not None:
        figures["drift_medians"] = figure_png(drift_figure(fit.measurements.drift, comparison.drift, fit.model.g_max), dpi)
    if fit.measurements.read_noise is not None:
        figures["read_noise"] = _read_noise_figure(fit, dpi)
    return figures


_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
          "td:first-child{text-align:left}img{max-width:100%}.warn{color:#a40}pre{background:#f6f6f6;padding:1em}")


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.5g}"


def fit_report_files(fit: DeviceFit, comparison: FitComparison, out_dir: str | Path, device_toml: str,
                     dpi: int = PLOT_DPI) -> tuple[dict[Path, bytes], dict[str, Path]]:
    """The report's files, not written yet: ``(path -> content, name -> path)`` (``index.html`` as ``"html"``)."""
    out_dir = Path(out_dir)
    figures = fit_figures(fit, comparison, dpi)
    files = {out_dir / f"{name}.png": png for name, png in figures.items()}
    paths = {name: out_dir / f"{name}.png" for name in figures}
    level = f"{100 * fit.confidence:g} %"
    rows = "".join(
        f"<tr><td><code>{html.escape(p.name)}</code></td><td>{_number(p.value)}</td><td>{_number(p.low)}</td>"
        f"<td>{_number(p.high)}</td><td>{'yes' if p.identified else 'no: ' + html.escape(p.note)}</td></tr>"
        for p in fit.parameters)
    warnings = "".join(f"<li class=\"warn\">{html.escape(w)}</li>" for w in fit.warnings) or "<li>none</li>"
    images = "".join(
        f'<figure><img alt="{html.escape(_CAPTIONS[name])}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(_CAPTIONS[name])}</figcaption></figure>'
        for name, png in figures.items())
    title = f"Device fit: {fit.device.name}"
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Measurements: {html.escape(', '.join(fit.measurements.sources))}. Base device: "
            f"<code>{html.escape(fit.base)}</code>. Intervals: {level}, normal bootstrap over {fit.bootstrap} "
            f"resamples of the devices. Values are effective (every <code>scale</code> folded in).</p>"
            f"<h2>Fitted parameters</h2><table><tr><th>parameter</th><th>value</th><th>low</th><th>high</th>"
            f"<th>identified</th></tr>{rows}</table><h2>Warnings</h2><ul>{warnings}</ul>"
            f"<h2>Inherited from {html.escape(fit.base)}</h2><p>{html.escape(', '.join(fit.inherited))}</p>"
            f"<h2>Goodness of fit</h2>{images}<h2>Device file</h2><pre>{html.escape(device_toml)}</pre>"
            f"</body></html>\n")
    paths["html"] = out_dir / "index.html"
    files[paths["html"]] = page.encode()
    return files, paths
