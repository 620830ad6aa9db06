"""The tables of a run's report, as HTML: results rounded for people, labels in words.

``final.json`` and ``hil.json`` become two-column tables (accuracy in percent, losses to four
decimals, times in s/min/h, counts with thousands separators); the ``eval/`` results one table
with a column per time after programming; ``config.json`` a short summary of what was trained
(the full JSON goes behind a fold on the page). The JSON files themselves keep full precision.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.experiments.sources import SECTIONS
from analog_snu.metrics import format_metric as _plain_metric
from analog_snu.times import format_time, parse_time
from analog_snu.training.loop import format_duration

__all__ = ["format_metric", "results_table", "eval_table", "config_summary"]

#: labels of the keys of final.json and hil.json that their names do not explain
_LABELS = {
    "metric": "main metric",
    "epochs": "epochs planned",
    "epoch": "epoch reported",
    "select": "epoch chosen by",
    "best_valid_epoch": "epoch of the lowest validation loss",
    "last": "last epoch",
    "stopped_early": "stopped early",
    "mean_train_s_per_epoch": "training time per epoch (mean)",
    "scheme": "HIL scheme",
    "chip_seconds": "chip clock at the end",
    "devices": "PCM devices",
    "programming_events": "programming events per device",
    "set_pulses": "SET pulses per device",
    "refreshes": "refreshes (pairs)",
}

#: the order rows are shown in (result files are written with sorted keys); others follow in theirs
_ORDER = ("task", "metric", "test_accuracy", "test_nll", "test_perplexity", "test_loss", "epochs", "epoch", "select",
          "best_valid_epoch", "last", "stopped_early", "mean_train_s_per_epoch", "scheme", "devices", "chip_seconds",
          "programming_events", "set_pulses", "refreshes", "mean", "max", "total")


def _ordered(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rank = {key: index for index, key in enumerate(_ORDER)}
    return sorted(data.items(), key=lambda item: rank.get(item[0], len(rank)))


def format_metric(metric: str, value: Any) -> str:
    """:func:`analog_snu.metrics.format_metric` for HTML (anything else escaped as text)."""
    return html.escape(_plain_metric(metric, value))


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if key == "chip_seconds" or "seconds" in key:
            return format_time(value)
        if key.endswith("_s") or "_s_" in key:
            return format_duration(value)
        if key.endswith(("accuracy", "loss", "nll", "perplexity")):
            return format_metric(key, value)
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{html.escape(k.replace('_', ' '))} {_value(k, v)}" for k, v in _ordered(value))
    if isinstance(value, list):
        return html.escape(", ".join(map(str, value)))
    return html.escape(str(value))


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def results_table(data: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """A results file (``final.json``, ``hil.json``) as a two-column table, rounded for people."""
    rows = "".join(f"<tr><th>{html.escape(_label(k))}</th><td>{_value(k, v)}</td></tr>"
                   for k, v in _ordered(data) if k not in skip)
    return f"<table>{rows}</table>"


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


def _section(values: Mapping[str, Any], section: str, keep: Sequence[str] = ()) -> str:
    """``key value, ...`` of the fields ``keep`` and those set to other than their default (the rest,
    and nested tables, are in the full config)."""
    fields = SECTIONS[section][0].model_fields
    main = SECTIONS[section][1]

    def shown(key: str, value: Any) -> bool:
        if key == main or value is None or isinstance(value, Mapping):
            return False
        default = fields[key].default if key in fields else None
        return key in keep or value != (list(default) if isinstance(default, tuple) else default)

    return ", ".join(f"{html.escape(k.replace('_', ' '))} {_value(k, v)}" for k, v in values.items() if shown(k, v))


def config_summary(record: Mapping[str, Any]) -> str:
    """What was trained, from ``config.json``: task, network, device, training, in a few lines (the
    fields set to other than their defaults, and the main ones)."""
    config = record.get("config", {}) if isinstance(record.get("config"), Mapping) else {}
    rows = []
    task = config.get("task") or {}
    if isinstance(task, Mapping):
        rows.append(("task", f"<b>{html.escape(str(task.get('name', '?')))}</b>; {_section(task, 'task')}"))
    model = config.get("model") or {}
    if isinstance(model, Mapping):
        rows.append(("network", f"<b>{html.escape(str(model.get('cell', '?')))}</b>; "
                                f"{_section(model, 'model', ('layers',))}"))
    device = config.get("device")
    if isinstance(device, Mapping):
        source = record.get("device_source")
        origin = f" (from {html.escape(str(source))})" if source and source != device.get("name") else ""
        periphery = device.get("periphery") or {}
        rows.append(("device", f"<b>{html.escape(str(device.get('name', '?')))}</b>{origin}; drift compensation "
                               f"{html.escape(str(periphery.get('drift_compensation', '?')))}, "
                               f"{html.escape(str(device.get('simulator', '?')))} tiles; every parameter in the "
                               "config below"))
    else:
        rows.append(("device", "none: trained digitally (evaluate it on PCM with <code>--device</code>)"))
    training = config.get("training") or {}
    if isinstance(training, Mapping):
        rows.append(("training", f"<b>{html.escape(str(training.get('mode', '?')))}</b>; "
                                 f"{_section(training, 'training', ('optimizer', 'lr', 'epochs', 'seed'))}"))
    if config.get("accelerator"):
        rows.append(("accelerator", html.escape(str(config["accelerator"]))))
    versions = record.get("versions")
    if isinstance(versions, Mapping) and versions:
        rows.append(("versions", html.escape(", ".join(f"{k} {v}" for k, v in versions.items()))))
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
