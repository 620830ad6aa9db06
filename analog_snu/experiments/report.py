"""A run's report: every figure of a run directory, as PNGs and one self-contained HTML page.

``write_report(RUN)`` reads what the run directory holds (see
:mod:`analog_snu.experiments.run_dir`) and writes into ``RUN/report/`` (or ``out``):

- ``training_curves.png`` from ``metrics.csv``: training and validation loss, and the
  validation metric, per epoch;
- ``drift_<name>.png`` for every drift study found (``drift_study/*/drift_study.json``):
  the metric vs time after programming with human ticks, with and without compensation,
  seeds as error bars;
- per weight-map export (``weight_maps/*/maps.json`` + ``.npz``) and per layer
  ``maps_<name>_<layer>_{conductance,weights,histograms[,stuck][,wear]}.png``: G+/G- maps at
  the layer's global indices, the weights the network computes with (drift compensation
  applied, in the layer's weight units) against the trained ones, conductance and
  drift-exponent histograms, stuck devices where there are any, and device wear where the
  maps hold it;
- ``index.html``: what was trained (a summary of ``config.json``, the full JSON behind a fold),
  the final test results (``final.json``), the evaluations on PCM devices (``eval/*.json``), the
  hardware-in-the-loop wear (``hil.json``), as tables rounded for people
  (:mod:`~analog_snu.experiments.report_tables`), and every figure, embedded as base64 ``data:``
  images (the page references no file and no URL, so it can be mailed or archived alone).

Every part but the run directory itself is optional: what is missing is listed on the page
(:attr:`Report.notes`) and the rest is still written. Figures are rendered with matplotlib's
Agg backend at :data:`~analog_snu.reports.figures.PLOT_DPI` (150) dpi or more; files are
written atomically with the user's umask (:mod:`analog_snu.files`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analog_snu.errors import AnalogSNUError, CheckpointError, ConfigError
from analog_snu.experiments.outputs import output_folder
from analog_snu.experiments.report_tables import config_summary, eval_table, results_table
from analog_snu.experiments.run_dir import check_no_links
from analog_snu.files import read_json_file, read_regular_file, read_text_file
from analog_snu.hardware.layer_maps import layers_from_maps
from analog_snu.reports import (
    MAX_DPI,
    PLOT_DPI,
    figure_png,
    layer_figures,
    metric_axis_label,
    new_figure,
    plot_drift_study,
)
from analog_snu.times import format_time

__all__ = ["Report", "write_report", "REPORT_FOLDER", "loss_axis_label"]

#: default output folder inside the run directory
REPORT_FOLDER = "report"
_MAPS_FORMAT = "analog_snu.weight_maps"
_RUN_PARTS = ("config.json", "metrics.csv", "final.json", "checkpoint.safetensors")
#: what each weight-map figure shows, for its caption
_FIGURE_CAPTIONS = {
    "conductance": "G+ and G- of every pair (µS)",
    "weights": "weights the network computes with against the trained weights",
    "histograms": "conductance and drift-exponent histograms",
    "stuck": "stuck devices",
    "wear": "device wear",
}
#: task -> unit of its training loss
_LOSS_UNITS = {"digits": "nats/image", "mnist": "nats/image", "jsb": "nats/frame", "ptb": "nats/word"}


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    out_dir: Path
    """The report folder."""
    html: Path
    """The self-contained HTML page."""
    figures: dict[str, Path] = field(default_factory=dict)
    """Figure name -> PNG path, in page order."""
    notes: list[str] = field(default_factory=list)
    """Optional parts the run does not have, or could not be read (also shown on the page)."""


def loss_axis_label(task: str | None, split: str | None = None) -> str:
    """``"NLL (nats/frame, lower is better)"`` for jsb; cross-entropy in nats per image/word otherwise.

    >>> loss_axis_label("digits")
    'cross-entropy loss (nats/image, lower is better)'
    """
    name = "NLL" if task == "jsb" else "cross-entropy loss"
    unit = _LOSS_UNITS.get(task or "")
    head = f"{split} {name}" if split else name
    return f"{head} ({unit + ', ' if unit else ''}lower is better)"


# --- reading -----------------------------------------------------------------------------------------


def _read_json(path: Path, notes: list[str]) -> Any:
    if not os.path.lexists(path):
        return None
    try:
        return read_json_file(path, path.name)
    except AnalogSNUError as exc:
        notes.append(f"{path.name}: could not be read ({exc})")
        return None


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not os.path.lexists(path):
        notes.append("metrics.csv: none (no epoch finished yet?): no training curves")
        return []
    try:
        text = read_text_file(path, path.name)
        rows = [{key: _number(value) for key, value in row.items() if key}
                for row in csv.DictReader(io.StringIO(text, newline=""))]
    except (AnalogSNUError, csv.Error) as exc:
        notes.append(f"metrics.csv: could not be read ({exc})")
        return []
    if not rows:
        notes.append("metrics.csv: no epochs recorded: no training curves")
    return rows


def _task_name(record: Any) -> str | None:
    config = record.get("config", record) if isinstance(record, dict) else {}
    task = config.get("task") if isinstance(config, dict) else None
    if isinstance(task, dict):
        task = task.get("name")
    return task if isinstance(task, str) else None


def _device_name(record: Any) -> str:
    config = record.get("config", record) if isinstance(record, dict) else {}
    device = config.get("device") if isinstance(config, dict) else None
    if isinstance(device, dict):
        return str(device.get("name", "PCM device"))
    return str(device) if device else "digital"


def _load_maps(json_path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    npz_path = json_path.with_name(str(meta.get("npz_file") or json_path.with_suffix(".npz").name))
    raw = read_regular_file(npz_path, npz_path.name, error=CheckpointError)
    if isinstance(meta.get("npz_sha256"), str) and hashlib.sha256(raw).hexdigest() != meta["npz_sha256"]:
        raise CheckpointError(f"{npz_path.name}: SHA-256 differs from its sidecar's (a corrupt or replaced file)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{npz_path.name} is corrupt: {exc}") from exc


def _result_jsons(run_dir: Path, out_dir: Path) -> list[tuple[Path, Any]]:
    """Every JSON below ``run_dir`` (results of later commands), the report folder excluded."""
    found = []
    for path in sorted(run_dir.rglob("*.json")):
        if out_dir in path.parents or path.parent == run_dir or path.name.startswith("."):
            continue
        try:
            found.append((path, read_json_file(path, path.name)))
        except AnalogSNUError:
            continue
    return found


def _label(path: Path, run_dir: Path) -> str:
    """``drift_study/pcm_joshi2020_seeds0-1-2/drift_study.json`` -> ``pcm_joshi2020_seeds0-1-2``."""
    relative = path.relative_to(run_dir)
    parts = relative.parts[1:-1] or (relative.stem,)
    return "_".join(parts)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


# --- figures -------------------------------------------------------------------------------------------


def _training_curves(rows: list[dict[str, Any]], task: str | None, title: str, dpi: int) -> bytes:
    epochs = [row.get("epoch", index + 1) for index, row in enumerate(rows)]
    epochs = [int(e) if isinstance(e, float) and e.is_integer() else e for e in epochs]
    numeric = [key for key in rows[0] if key != "epoch" and all(isinstance(r.get(key), float) for r in rows)]
    losses = [key for key in numeric if key.endswith("_loss")]
    metrics = [key for key in numeric if not key.endswith("_loss") and not key.endswith("_s")
               and key.split("_", 1)[0] in ("train", "valid", "test")]
    panels = [p for p in (losses, metrics) if p]
    fig = new_figure(6.0 * max(len(panels), 1), 4.2)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, keys in zip(axes, panels):
        for key in keys:
            ax.plot(epochs, [row[key] for row in rows], marker="o", label=key.replace("_", " "))
        if keys is losses:
            ax.set_ylabel(loss_axis_label(task))
        else:
            split, metric = keys[0].split("_", 1)
            ax.set_ylabel(metric_axis_label(metric, split if len(keys) == 1 else None))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    fig.suptitle(title)
    return figure_png(fig, dpi)


# --- html ---------------------------------------------------------------------------------------------


def _image(name: str, png: bytes, caption: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{html.escape(name)}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{html.escape(caption)}</figcaption></figure>')


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
img{max-width:100%;height:auto;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left;
font-size:.9em}th{background:#f4f4f4}code,pre{font-size:.85em}pre{background:#f7f7f7;padding:1em;overflow:auto}
.notes{color:#8a5a00}
"""


# --- the report ---------------------------------------------------------------------------------------


def write_report(run_dir: str | Path, out: str | Path | None = None, *, dpi: int = PLOT_DPI,
                 force: bool = False) -> Report:
    """Write the report of ``run_dir`` into ``out`` (default ``RUN/report``); see the module docstring.

    ``out`` is owned as :mod:`~analog_snu.experiments.outputs` says: a new or empty folder, or one
    analog_snu wrote before, never inside another run; ``force`` writes into any other folder.

    Raises:
        ConfigError: ``run_dir`` is not a directory or holds none of a run's files
            (``config.json``, ``metrics.csv``, ``final.json``, the checkpoint), or ``dpi`` is not in [150, 600].
        AnalogSNUError: the report folder cannot be written.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"RUN must be a run directory of `analog-snu train`, got {str(run_dir)!r} (not a directory)")
    if not any((run_dir / name).exists() for name in _RUN_PARTS):
        raise ConfigError(f"RUN {str(run_dir)!r} holds none of {list(_RUN_PARTS)}; is it a run directory?")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not PLOT_DPI <= dpi <= MAX_DPI:
        raise ConfigError(f"dpi must be an int from {PLOT_DPI} to {MAX_DPI}, got {dpi!r}")
    check_no_links(run_dir)
    output = output_folder(run_dir, REPORT_FOLDER, out=out, force=force)
    out_dir = output.path
    notes: list[str] = []
    report = Report(out_dir=out_dir, html=out_dir / "index.html", notes=notes)
    sections: list[str] = []

    def add_figure(name: str, png: bytes, caption: str) -> str:
        path = out_dir / f"{name}.png"
        output.write({path: png})
        report.figures[name] = path
        return _image(name, png, caption)

    record = _read_json(run_dir / "config.json", notes)
    if record is None:
        notes.append("config.json: none")
    task = _task_name(record)
    device = _device_name(record)
    run_name = run_dir.resolve().name
    title = f"Run {run_name}: {task or 'unknown task'}, {device}"

    digital = isinstance(record, dict) and isinstance(record.get("config"), dict) \
        and record["config"].get("device") is None
    device_flag = " --device PRESET|FILE" if digital else ""  # a digital run names the device to put it on
    if isinstance(record, dict):
        sections.append(f"<h2>What was trained</h2>{config_summary(record)}")

    # training
    rows = _read_metrics(run_dir / "metrics.csv", notes)
    part = ["<h2>Training</h2>"]
    if rows:
        part.append(add_figure("training_curves", _training_curves(rows, task, f"Training curves of run {run_name}", dpi),
                               f"Loss and validation metric per epoch ({len(rows)} epochs)."))
    hil = _read_json(run_dir / "hil.json", notes)
    final = _read_json(run_dir / "final.json", notes)
    if isinstance(final, dict):
        part.append(f"<h3>Final test results (final.json)</h3>"
                    f"{results_table(final, skip=('hil',) if isinstance(hil, dict) else ())}")
    elif final is None:
        notes.append("final.json: none (the run has not finished)")
    sections.append("".join(part))

    # evaluations on PCM devices (analog-snu eval), and the single file of older versions
    results = _result_jsons(run_dir, out_dir)
    evaluations = [(p, d) for p, d in results if p.parent == run_dir / "eval" and isinstance(d, dict)
                   and {"split", "metric", "as_trained"} <= set(d)]
    legacy = _read_json(run_dir / "eval.json", notes)
    if isinstance(legacy, dict) and {"metric", "as_trained"} <= set(legacy):
        evaluations.insert(0, (run_dir / "eval.json", legacy))
    if evaluations:
        sections.append("<h2>Evaluations (eval/)</h2><p>The trained network as trained and after programming on a "
                        "PCM device with the row's seed, drifted to each time after programming (drift "
                        f"compensation as the device says).</p>{eval_table(evaluations)}")
    else:
        notes.append(f"evaluations: none (run `analog-snu eval RUN{device_flag} --drift-times 1d 1y`)")

    # hardware-in-the-loop wear
    if isinstance(hil, dict):
        sections.append(f"<h2>Device wear (hil.json)</h2>{results_table(hil)}")
    # drift studies
    studies = [(p, d) for p, d in results if isinstance(d, dict) and {"metric", "summary", "times"} <= set(d)]
    part = ["<h2>Drift studies</h2>"]
    for path, study in studies:
        label = _label(path, run_dir)
        study.setdefault("meta", {}).setdefault("run", run_name)
        try:
            png = plot_drift_study(study, dpi=dpi)
        except (KeyError, TypeError, ValueError) as exc:
            notes.append(f"{path.relative_to(run_dir)}: not a readable drift study ({exc})")
            continue
        part.append(add_figure(f"drift_{_safe(label)}", png,
                               f"{label}: {study['metric']} vs time after programming "
                               f"(from {path.relative_to(run_dir)})."))
    if not studies:
        notes.append(f"drift study: none (run `analog-snu drift-study RUN{device_flag}`)")
    else:
        sections.append("".join(part))

    # weight maps
    exports = [(p, d) for p, d in results if isinstance(d, dict) and d.get("format") == _MAPS_FORMAT]
    part = ["<h2>Weight maps</h2>"]
    for path, meta in exports:
        label = _label(path, run_dir)
        try:
            layers = layers_from_maps(meta, _load_maps(path, meta))
        except (OSError, CheckpointError, KeyError, TypeError, ValueError) as exc:
            notes.append(f"{path.relative_to(run_dir)}: weight maps not readable ({exc})")
            continue
        part.append(f"<h3>{html.escape(label)}</h3><p>{html.escape(str(path.relative_to(run_dir)))}, "
                    f"{format_time(meta.get('time_since_programming_s', 0))} after programming, program seed "
                    f"{html.escape(str(meta.get('program_seed')))}</p>")
        for maps in layers:
            part.append(f"<h4>{html.escape(maps.layer)} ({maps.shape[0]} x {maps.shape[1]}, {maps.pairs} pair(s) "
                        f"per weight)</h4>")
            if not maps.stuck.any():
                part.append("<p>No stuck devices.</p>")
            for kind, png in layer_figures(maps, dpi).items():
                part.append(add_figure(f"maps_{_safe(label)}_{_safe(maps.layer)}_{kind}", png,
                                       f"{maps.layer}: {_FIGURE_CAPTIONS.get(kind, kind)}"))
    if not exports:
        notes.append(f"weight maps: none (run `analog-snu export-maps RUN{device_flag}`)")
    else:
        sections.append("".join(part))

    if isinstance(record, dict):
        sections.append("<h2>Config (config.json)</h2><details><summary>The full run config, the device by value "
                        "(JSON)</summary><pre>"
                        f"{html.escape(json.dumps(record, indent=2, sort_keys=True))}</pre></details>")
    notes_html = ("<h2>Not in this report</h2><ul class=\"notes\">"
                  + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Run directory <code>{html.escape(str(run_dir))}</code>. Figures at {dpi} dpi, also saved as PNG "
            f"files next to this page.</p>{''.join(sections)}{notes_html}</body></html>\n")
    output.write({report.html: page.encode()})
    return report
