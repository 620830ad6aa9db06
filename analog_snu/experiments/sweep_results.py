"""A sweep's tables and plots, from its trials' rows.

- ``results.csv`` / ``results.json``: one row per trial, in spec order: a column per grid key
  (named as in the spec), ``seed``, ``trial`` (its directory under ``trials/``), ``status``
  (``ok`` or ``failed``, with ``error``), ``state`` (``trained``, ``resumed``, ``done``: nothing
  left to do, ``evaluated``), every key of the trial's ``final.json``, ``drift_<time>`` per
  ``[eval]`` time (``drift_1d``, ``drift_1y``) (the metric after programming with the trial's seed and drifting that long),
  and ``seconds`` (wall time of the trial in this call).
- ``summary.csv`` / ``summary.json``: one row per grid point: the grid values, ``n`` (trials that
  finished), and ``<metric>_mean`` / ``<metric>_std`` (sample std over seeds, 0 for one seed) of
  ``test_<metric>``, ``test_loss`` and every ``drift_<time>`` column.
- ``plot_<key>.png`` per grid key (>= 150 dpi): the main metric against the key's values, one
  line per combination of the other keys' values, error bars = std over seeds; one panel for
  the metric after training and one per ``[eval]`` time.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analog_snu.experiments.sweep_spec import SweepSpec, format_value
from analog_snu.files import atomic_write_bytes, write_json
from analog_snu.reports import PLOT_DPI, figure_png, metric_axis_label, new_figure
from analog_snu.times import format_time, parse_time

__all__ = ["drift_column", "summarise", "write_outputs", "metric_columns"]


def drift_column(seconds: float) -> str:
    """Column of the metric ``seconds`` after programming, the time as ``--drift-times`` takes it.

    >>> drift_column(86400), drift_column(31536000.0), drift_column(0.5)
    ('drift_1d', 'drift_1y', 'drift_0.5s')
    """
    return f"drift_{format_time(seconds)}"


def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``test_<metric>``, ``test_loss`` and the ``drift_*`` columns present in finished rows."""
    ok = [row for row in rows if row.get("status") == "ok"]
    if not ok:
        return []
    metric = ok[0].get("metric")
    columns = [c for c in (f"test_{metric}", "test_loss") if c in ok[0]]
    columns += [key for key in ok[0] if key.startswith("drift_")]
    return columns


def _key_of(row: dict[str, Any], keys: Sequence[str]) -> str:
    return json.dumps([row.get(k) for k in keys])


def summarise(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std over seeds of every metric column per grid point (failed trials left out)."""
    columns = metric_columns(rows)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_key_of(row, keys), []).append(row)
    summary = []
    for members in groups.values():
        ok = [row for row in members if row.get("status") == "ok"]
        entry: dict[str, Any] = {key: members[0].get(key) for key in keys}
        entry["n"] = len(ok)
        for column in columns:
            values = [float(row[column]) for row in ok if isinstance(row.get(column), (int, float))]
            if values:
                entry[f"{column}_mean"] = statistics.fmean(values)
                entry[f"{column}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return format_value(value)
    return "" if value is None else value


def _csv(rows: Sequence[dict[str, Any]], first: Sequence[str]) -> bytes:
    columns = list(first)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    return buffer.getvalue().encode()


def _file_safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-.") or "key"


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _panel_title(column: str, metric: str) -> str:
    if column.startswith("drift_"):
        return f"{metric}, {format_time(parse_time(column[len('drift_'):]))} after programming"
    return f"{metric} after training"


def _plot(key: str, values: Sequence[Any], summary: Sequence[dict[str, Any]], keys: Sequence[str],
          columns: Sequence[str], metric: str, dpi: int) -> bytes:
    others = [k for k in keys if k != key]
    numeric = _numeric(values)
    positions = [float(v) for v in values] if numeric else list(range(len(values)))
    fig = new_figure(4.8 * len(columns), 4.0)
    axes = fig.subplots(1, len(columns), squeeze=False, sharey=True)[0]
    lines: dict[str, list[dict[str, Any]]] = {}
    for entry in summary:
        lines.setdefault(_key_of(entry, others), []).append(entry)
    for ax, column in zip(axes, columns):
        for members in lines.values():
            by_value = {json.dumps(m[key]): m for m in members}
            xs, ys, errs = [], [], []
            for value, x in zip(values, positions):
                entry = by_value.get(json.dumps(value))
                if entry is not None and f"{column}_mean" in entry:
                    xs.append(x)
                    ys.append(entry[f"{column}_mean"])
                    errs.append(entry[f"{column}_std"])
            label = ", ".join(f"{k}={format_value(members[0][k])}" for k in others) or None
            # categorical values (a model name, a layer list) have no order: points, no line between them
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label, linestyle="-" if numeric else "none")
        ax.set_title(_panel_title(column, metric), fontsize=10)
        ax.set_xlabel(key)
        ax.grid(True, alpha=0.3)
        if numeric and min(positions) > 0 and max(positions) / min(positions) >= 100:
            ax.set_xscale("log")
        if not numeric or len(values) <= 8:
            ax.set_xticks(positions, [format_value(v) or "[]" for v in values])  # an empty list has no id text
    axes[0].set_ylabel(metric_axis_label(metric, "test"))
    if others:
        axes[-1].legend(fontsize=8)
    fig.suptitle(f"sweep over {key}: mean +- std over seeds")
    return figure_png(fig, dpi)


def write_outputs(out: Path, rows: Sequence[dict[str, Any]], keys: Sequence[str], spec: SweepSpec,
                  dpi: int = PLOT_DPI) -> tuple[list[dict[str, Any]], list[Path]]:
    """Write results, summary and plots under ``out``; returns the summary rows and the files written."""
    first = [*keys, "seed", "trial", "status"]
    write_json(out / "results.json", [{k: v for k, v in row.items() if not (isinstance(v, float) and not math.isfinite(v))}
                                      for row in rows])
    atomic_write_bytes(out / "results.csv", _csv(rows, first))
    summary = summarise(rows, keys)
    write_json(out / "summary.json", summary)
    atomic_write_bytes(out / "summary.csv", _csv(summary, [*keys, "n"]))
    files = [out / "results.csv", out / "results.json", out / "summary.csv", out / "summary.json"]
    columns = [c for c in metric_columns(rows) if c != "test_loss"]
    ok = [row for row in rows if row.get("status") == "ok"]
    if columns and ok:
        for key in keys:
            png = _plot(key, spec.grid[key], summary, keys, columns, ok[0]["metric"], dpi)
            path = out / f"plot_{_file_safe(key)}.png"
            atomic_write_bytes(path, png)
            files.append(path)
    return summary, files
