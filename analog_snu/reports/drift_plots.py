"""The figure of a drift study (metric vs time after programming) and the files of a study with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analog_snu.files import replace_files
from analog_snu.hardware.drift_study import DriftStudyResult
from analog_snu.reports.figures import PLOT_DPI, figure_png, new_figure

__all__ = ["time_ticks", "metric_axis_label", "plot_drift_study", "drift_study_files", "save_drift_study"]

#: human tick marks of a time axis: 1 s, 1 min, 1 h, 1 d, 30 d, 1 y, 10 y (and 100 y)
_TICKS = ((1.0, "1 s"), (60.0, "1 min"), (3600.0, "1 h"), (86_400.0, "1 d"), (2_592_000.0, "30 d"),
          (31_536_000.0, "1 y"), (315_360_000.0, "10 y"), (3_153_600_000.0, "100 y"))


def time_ticks(t_min: float, t_max: float) -> tuple[list[float], list[str]]:
    """Tick positions (s) and labels (``"1 h"``, ``"1 d"``, ``"1 y"``...) covering ``[t_min, t_max]``.

    Examples:
        >>> time_ticks(1.0, 31_536_000.0)[1]
        ['1 s', '1 min', '1 h', '1 d', '30 d', '1 y']
    """
    chosen = [(t, label) for t, label in _TICKS if t_min * (1 - 1e-9) <= t <= t_max * (1 + 1e-9)]
    if t_min <= 0.0:
        chosen.insert(0, (0.0, "0 s"))
    return [t for t, _ in chosen], [label for _, label in chosen]


#: metric name -> (axis name, unit, better direction)
_METRIC_AXES = {
    "accuracy": ("accuracy", "fraction correct", "higher"),
    "nll": ("NLL", "nats/frame", "lower"),
    "perplexity": ("perplexity", "per word", "lower"),
    "loss": ("loss", None, "lower"),
}


def metric_axis_label(metric: str, split: str | None = None) -> str:
    """Axis label with unit and the direction of "better", e.g. ``"test NLL (nats/frame, lower is better)"``.

    >>> metric_axis_label("nll", "test")
    'test NLL (nats/frame, lower is better)'
    >>> metric_axis_label("accuracy")
    'accuracy (fraction correct, higher is better)'
    """
    name, unit, better = _METRIC_AXES.get(metric, (metric, None, None))
    head = f"{split} {name}" if split else name
    details = [part for part in (unit, f"{better} is better" if better else None) if part]
    return f"{head} ({', '.join(details)})" if details else head


def plot_drift_study(study: dict[str, Any], dpi: int = PLOT_DPI) -> bytes:
    """PNG of a drift study (the dict of :meth:`DriftStudyResult.to_dict`, as in ``drift_study.json``):
    mean metric vs time after programming with human ticks, without and with compensation,
    the std over programming seeds as error bars; device and run in the title."""
    meta = study.get("meta") or {}
    summary = study["summary"]
    seeds = study.get("seeds") or []
    fig = new_figure(7.0, 4.4)
    ax = fig.subplots()
    for compensated, label, marker in ((False, "no compensation", "o"),
                                       (True, f"{study.get('compensation', '')} compensation".strip(), "s")):
        points = sorted((s for s in summary if bool(s["compensated"]) == compensated), key=lambda s: s["time_s"])
        if points:
            ax.errorbar([p["time_s"] for p in points], [p["mean"] for p in points],
                        yerr=[p["std"] for p in points], marker=marker, capsize=3, label=label)
    if study.get("reference") is not None:
        ax.axhline(study["reference"], color="gray", linestyle="--", label="before programming")
    times = [float(s["time_s"]) for s in summary]
    if min(times) <= 0.0:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    else:
        ax.set_xscale("log")
    ticks, labels = time_ticks(min(times), max(times))
    if len(ticks) >= 2:
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
    ax.set_xlabel("time after programming (log scale)")
    ax.set_ylabel(metric_axis_label(study["metric"], meta.get("split")))
    devices = sorted({str(d.get("name", "?")) for d in (meta.get("devices") or {}).values() if isinstance(d, dict)})
    where = " · ".join(part for part in (
        f"device {', '.join(devices)}" if devices else None,
        f"run {meta['run']}" if meta.get("run") else None,
    ) if part)
    title = f"Drift study: mean ± std over {len(seeds)} programming seed{'s' if len(seeds) != 1 else ''}"
    ax.set_title(f"{title}\n{where}" if where else title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return figure_png(fig, dpi)



def drift_study_files(result: DriftStudyResult, out_dir: str | Path, stem: str = "drift_study", plot: bool = True,
                      run: str | None = None, split: str | None = None) -> tuple[dict[Path, bytes], dict[str, Path]]:
    """The files of :meth:`DriftStudyResult.files` plus ``<stem>.png`` (metric vs log time) when
    ``plot``, not written yet: ``(path -> content, kind -> path)``. ``run`` and ``split`` are
    stored in the study's ``meta`` and shown in the plot's title and axis label."""
    files, paths = result.files(out_dir, stem, run=run, split=split)
    if plot:
        paths["png"] = Path(out_dir) / f"{stem}.png"
        files[paths["png"]] = plot_drift_study(result.to_dict())
    return files, paths


def save_drift_study(result: DriftStudyResult, out_dir: str | Path, stem: str = "drift_study", plot: bool = True,
                     run: str | None = None, split: str | None = None) -> dict[str, Path]:
    """Write :func:`drift_study_files` into ``out_dir`` (created), all files or none; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, paths = drift_study_files(result, out_dir, stem, plot, run=run, split=split)
    replace_files(files)
    return paths
