"""Drift study: a trained network's metric at times after programming, over programming seeds,
with and without drift compensation.

For each seed the network is programmed once; at each time it is drifted (fresh read noise)
and evaluated twice on the same devices: with its drift compensation and with the
compensation factor set to 1. The model gets its trained weights back at the end.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.files import replace_files
from analog_snu.hardware.programming import drift, program, seconds_after_programming
from analog_snu.hardware.weight_maps import _package_version
from analog_snu.metrics import format_metric
from analog_snu.pcm import DRIFT_COMPENSATIONS, PCMDevice, resolve_device
from analog_snu.schema import check_seed
from analog_snu.tiles.tile_access import (
    named_layer_tiles,
    set_tile_compensation,
    suspend_compensation,
    tile_compensation,
    tile_noise_model,
    unprogram_tile,
)
from analog_snu.times import format_time  # re-exported: times as --times takes them ("1d")

__all__ = ["DEFAULT_TIMES", "DriftStudyResult", "drift_study", "format_time", "check_study_times",
           "check_study_seeds"]

#: 1 s, 1 h, 1 day, 30 days, 1 year, 10 years after programming
DEFAULT_TIMES = (1.0, 3600.0, 86_400.0, 2_592_000.0, 31_536_000.0, 315_360_000.0)


@dataclass
class DriftStudyResult:
    """Metric values of a drift study; :meth:`summary` aggregates them per time."""

    metric: str
    """Name of the metric (e.g. ``"accuracy"``)."""
    times: list[float]
    """Seconds after programming."""
    seeds: list[int]
    """Programming seeds."""
    compensation: str
    """Drift compensation used for the compensated values (``"global"`` or ``"per_column"``)."""
    reference: float
    """Metric of the trained network before programming."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """``{"time_s", "compensated", "seed", "value"}``, one per evaluation."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Device configs, package version, ... (JSON-ready)."""

    def summary(self) -> list[dict[str, Any]]:
        """Mean and std (over seeds, sample std; 0 for one seed) per time and compensation."""
        out = []
        for t in self.times:
            for compensated in (False, True):
                values = [r["value"] for r in self.rows if r["time_s"] == t and r["compensated"] == compensated]
                out.append({
                    "time_s": t,
                    "compensated": compensated,
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "n": len(values),
                })
        return out

    def table(self) -> str:
        """Plain-text table: one line per time, mean +- std without and with compensation."""
        by_key = {(s["time_s"], s["compensated"]): s for s in self.summary()}

        def cell(entry: dict[str, Any], width: int) -> str:  # accuracy in percent, as every printed line
            text = f"{format_metric(self.metric, entry['mean'])} +- {format_metric(self.metric, entry['std'])}"
            return f"{text:>{width}}"

        head = f"{'time after programming':>24} | {'no compensation':>20} | {self.compensation + ' compensation':>24}"
        lines = [f"{self.metric} before programming: {format_metric(self.metric, self.reference)}   "
                 f"({len(self.seeds)} programming seeds)", head, "-" * len(head)]
        for t in self.times:
            plain, comp = by_key[(t, False)], by_key[(t, True)]
            lines.append(f"{format_time(t):>24} | {cell(plain, 20)} | {cell(comp, 24)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (raw rows and summary)."""
        return {**asdict(self), "summary": self.summary()}

    def save(self, out_dir: str | Path, stem: str = "drift_study", run: str | None = None,
             split: str | None = None) -> dict[str, Path]:
        """Write ``<stem>.csv`` (summary), ``<stem>_runs.csv`` (every value) and ``<stem>.json`` into
        ``out_dir`` (created); returns the paths. The figure: :func:`analog_snu.reports.save_drift_study`.

        ``run`` (the run's name or directory) and ``split`` (the evaluated split), when given,
        are stored in ``meta``.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        files, paths = self.files(out_dir, stem, run=run, split=split)
        replace_files(files)
        return paths

    def files(self, out_dir: str | Path, stem: str = "drift_study", run: str | None = None,
              split: str | None = None) -> tuple[dict[Path, bytes], dict[str, Path]]:
        """What :meth:`save` writes, not written yet: ``(path -> content, kind -> path)``."""
        if run is not None:
            self.meta["run"] = str(run)
        if split is not None:
            self.meta["split"] = str(split)
        out_dir = Path(out_dir)
        paths = {
            "csv": out_dir / f"{stem}.csv",
            "runs_csv": out_dir / f"{stem}_runs.csv",
            "json": out_dir / f"{stem}.json",
        }
        files = {
            paths["csv"]: _csv(self.summary(), ["time_s", "compensated", "mean", "std", "n"]),
            paths["runs_csv"]: _csv(self.rows, ["time_s", "compensated", "seed", "value"]),
            paths["json"]: (json.dumps(self.to_dict(), indent=2) + "\n").encode(),
        }
        return files, paths

def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in columns})
    return buffer.getvalue().encode()


def check_study_times(times: Sequence[float]) -> list[float]:
    """Times after programming of a study: finite, >= 0, at least one, none twice."""
    out = [seconds_after_programming(t, "times") for t in times]
    if not out:
        raise ConfigError("times must list at least one time after programming")
    if len(set(out)) != len(out):  # a repeated time would count its evaluations twice
        raise ConfigError(f"times must not repeat, got {list(times)!r}")
    return out


def check_study_seeds(seeds: Sequence[int]) -> list[int]:
    """Programming seeds of a study: ints >= 0, at least one, none twice."""
    seeds = list(seeds)
    if not seeds:
        raise ConfigError(f"seeds must be a non-empty list of non-negative ints, got {seeds!r}")
    for seed in seeds:
        check_seed(seed, "each of seeds")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:  # the same programming twice would count as two samples: n too large, std too small
        raise ConfigError(f"seeds must not repeat, got {seeds!r} (repeated: {repeated})")
    return seeds


@torch.no_grad()
def drift_study(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    *,
    times: Sequence[float] = DEFAULT_TIMES,
    seeds: Sequence[int] = (0, 1, 2),
    compensation: str | None = None,
    device: PCMDevice | str | None = None,
    metric: str = "accuracy",
    eval_seed: int = 0,
) -> DriftStudyResult:
    """Program ``model`` at each seed and evaluate it at each time, with and without compensation.

    Args:
        model: a trained network with analog tiles (inference/HWA or pulsed).
        evaluate: ``evaluate(model) -> float``, the metric (e.g. test accuracy).
        times: times after programming: seconds, or text such as ``"1d"``, ``"1y"``.
        seeds: programming seeds (the spread over them is the reported std).
        compensation: scheme for the compensated values, ``"global"`` or ``"per_column"``;
            ``None``: each tile's configured scheme (``"global"`` where it is ``"none"``).
        device: replace the tiles' device (a :class:`PCMDevice` or preset name); needed for
            tiles built from stock aihwkit configs.
        metric: name of what ``evaluate`` returns, for the table and plot.
        eval_seed: torch seed set before every evaluation (same input spikes and forward noise).
    """
    times, seeds = check_study_times(times), check_study_seeds(seeds)
    if compensation is not None and compensation not in DRIFT_COMPENSATIONS[1:]:
        raise ConfigError(f"compensation must be one of {list(DRIFT_COMPENSATIONS[1:])} or None, got {compensation!r}")
    device = None if device is None else resolve_device(device)
    tiles = named_layer_tiles(model)
    if not tiles:
        raise ConfigError("the model has no analog tiles; a drift study needs a PCM network")

    def run_eval() -> float:
        torch.manual_seed(eval_seed)
        return float(evaluate(model))

    model.eval()
    reference = run_eval()
    schemes = {}
    for _, name, tile in tiles:
        wanted = compensation or (tile_compensation(tile) if tile_compensation(tile) != "none" else "global")
        schemes[name] = (tile, set_tile_compensation(tile, wanted), wanted)
    used = sorted({wanted for _, _, wanted in schemes.values()})
    rows: list[dict[str, Any]] = []
    try:
        for seed in seeds:
            program(model, seed=seed, device=device)
            for t in times:
                drift(model, t)
                rows.append({"time_s": t, "compensated": True, "seed": seed, "value": run_eval()})
                restores = [suspend_compensation(tile) for _, _, tile in tiles]
                try:
                    rows.append({"time_s": t, "compensated": False, "seed": seed, "value": run_eval()})
                finally:
                    for restore in restores:
                        restore()
        devices = {name: tile_noise_model(tile).device.to_dict() for _, name, tile in tiles}
    finally:
        for _, name, tile in tiles:
            unprogram_tile(tile)
            set_tile_compensation(tile, schemes[name][1])
    return DriftStudyResult(
        metric=metric,
        times=times,
        seeds=seeds,
        compensation="/".join(used),
        reference=reference,
        rows=rows,
        meta={"package_version": _package_version(), "eval_seed": eval_seed, "devices": devices},
    )
