"""The tables of a run's report, as HTML: results rounded for people, labels in words.

The ``eval/`` results become one table with a column per time after programming (accuracy in
percent, NLL to four decimals). The JSON files themselves keep full precision.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.times import format_time, parse_time

__all__ = ["format_metric", "eval_table"]


def format_metric(metric: str, value: Any) -> str:
    """A metric value for people: accuracy in percent, NLL and losses to 4 decimals, perplexity to 2.

    >>> format_metric("accuracy", 0.92777), format_metric("nll", 8.71234), format_metric("perplexity", 137.712)
    ('92.78 %', '8.7123', '137.71')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    if not math.isfinite(value):
        return str(value)
    if metric.endswith("accuracy"):
        return f"{100 * value:.2f} %"
    if metric.endswith("perplexity"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _seconds(key: str) -> float | None:
    try:
        return parse_time(key)
    except ConfigError:
        return None


def eval_table(results: Sequence[tuple[Path, Mapping[str, Any]]]) -> str:
    """The results of ``analog-snu eval`` (``RUN/eval/*.json``): one row per file, a column per time
    after programming (keys written ``1d`` or, in older runs, in seconds)."""
    times = sorted({s for _, r in results for k in (r.get("drift") or {}) if (s := _seconds(k)) is not None})
    head = ["split", "device", "seed", "epoch", "as trained"] + [f"drift {format_time(t)}" for t in times]
    rows = []
    for path, result in results:
        metric = str(result.get("metric", ""))
        drifted = {_seconds(k): v for k, v in (result.get("drift") or {}).items()}
        device = result.get("device_label") or "(not programmed)"
        cells = [result.get("split", "?"), device, result.get("seed", "?"), result.get("epoch", "?")]
        cells = [html.escape(str(c)) for c in cells]
        cells.append(format_metric(metric, result.get("as_trained")))
        cells += [format_metric(metric, drifted[t]) if t in drifted else "" for t in times]
        rows.append(f"<tr title=\"{html.escape(path.name)}\">" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if result.get("note"):
            rows.append(f"<tr><td colspan=\"{len(head)}\"><small>note: {html.escape(str(result['note']))}</small></td></tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"
