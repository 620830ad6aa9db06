"""The goodness-of-fit report of a device fit: figures and one self-contained HTML page.

:func:`fit_report_files` draws, from a :class:`~analog_snu.fitting.DeviceFit` and reads of the
fitted device simulated at the measured targets and times (:class:`FitComparison`):

- ``programming_residuals.png``: read minus target against the target, the fitted mean and
  +-2 std band, stuck devices marked; and the standardised residuals of the fitted devices against
  a standard normal;
- ``programming_spread.png``: per conductance bin, the std of the measured reads and of the reads
  simulated from the fitted device at the same targets;
- ``drift_medians.png``: per conductance bin, the median measured conductance against time (log
  axes) and the median of the fitted device's simulated reads;
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

import numpy as np

from analog_snu.fitting import DeviceFit
from analog_snu.fitting.fit import bin_index, conductance_bins
from analog_snu.fitting.model import read_noise_sigma
from analog_snu.fitting.programming_fit import read_spread
from analog_snu.fitting.read_noise_fit import device_read_statistics
from analog_snu.reports.drift_plots import time_ticks
from analog_snu.reports.figures import PLOT_DPI, figure_png, new_figure

__all__ = ["FitComparison", "fit_report_files", "fit_figures"]

_CAPTIONS = {
    "programming_residuals": "programming: read minus target, fitted mean and ±2 std; standardised residuals",
    "programming_spread": "programming: measured and simulated spread per conductance bin",
    "drift_medians": "drift: measured and fitted median conductance against time, per conductance bin",
    "read_noise": "read noise: relative std per device and the fitted model",
}


@dataclass(frozen=True)
class FitComparison:
    """Reads of the fitted device simulated like the measurements (``None`` where not measured)."""

    programming: np.ndarray | None = None
    """One read per programming device. Shape: (N,)."""
    drift: np.ndarray | None = None
    """Reads at the drift file's times. Shape: like ``DriftData.g`` (D, T)."""


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
        centers, measured, sim = [], [], []
        for b in range(len(edges) - 1):
            inside = (index == b) & working
            if inside.sum() >= 3:
                centers.append((edges[b] + edges[b + 1]) / 2)
                measured.append(float(np.std(data.g_measured[inside] - data.g_target[inside], ddof=1)))
                sim.append(float(np.std(simulated[inside] - data.g_target[inside], ddof=1)))
        fig = new_figure(6.5, 4.2)
        ax = fig.subplots()
        ax.plot(centers, measured, "o-", label="measured")
        ax.plot(centers, sim, "s--", label="simulated from the fitted device")
        ax.set_xlabel("target conductance, bin centre (µS)")
        ax.set_ylabel("std of read minus target (µS)")
        ax.set_title("Spread per conductance bin (working devices)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figures["programming_spread"] = figure_png(fig, dpi)
    return figures


def _drift_figure(fit: DeviceFit, simulated: np.ndarray | None, dpi: int) -> bytes:
    data, model = fit.measurements.drift, fit.model
    edges = conductance_bins("drift", model.g_max)
    index = bin_index(data.g_target, edges)
    fig = new_figure(7.0, 4.6)
    ax = fig.subplots()
    times = np.unique(data.t[np.isfinite(data.t)])
    colors = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"])
    for b in range(len(edges) - 1):
        inside = index == b
        if inside.sum() < 3:
            continue
        color = next(colors)
        label = f"{edges[b]:.3g}-{edges[b + 1]:.3g} µS ({int(inside.sum())})"
        med = [np.nanmedian(np.where(data.t[inside] == t, data.g[inside], np.nan)) for t in times]
        ax.plot(times, med, "o", color=color, label=label)
        if simulated is not None:
            sim = [np.nanmedian(np.where(data.t[inside] == t, simulated[inside], np.nan)) for t in times]
            ax.plot(times, sim, "-", color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks, labels = time_ticks(float(times.min()), float(times.max()))
    if len(ticks) >= 2:
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
    ax.set_xlabel("time after programming (log scale)")
    ax.set_ylabel("median conductance (µS, log scale)")
    ax.set_title("Drift: measured medians (markers), fitted device (lines)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, title="target bin (devices)", title_fontsize=7)
    return figure_png(fig, dpi)


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
        figures["drift_medians"] = _drift_figure(fit, comparison.drift, dpi)
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
