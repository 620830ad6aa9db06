"""The papers' headline numbers beside ours: benchmarks/results/paper_table.json, .md and .png.

Every row is read from the results of an ``analog-snu sweep`` (``SWEEPS/<sweep>/results.json``),
never typed in: mean +- std over the finished seeds of one grid point, each seed's value, the
paper's figure and the command that reproduces the row from a fresh clone.

    python benchmarks/paper_table.py --sweeps bench_out            # writes benchmarks/results/paper_table.*

JSON: ``{"rows": [{"id", "metric", "mean", "std", "seeds", "per_seed": {"<seed>": value}, "paper",
"command", "sweep", "grid", "column", "note"}, ...]}``; a row whose sweep has no finished trial
keeps ``mean``/``std`` null and ``seeds`` empty.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.experiments.sweep_results import drift_column
from analog_snu.times import parse_time

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
DAY, YEAR = 86400, 31536000
RUN = "../shared/tools/one-at-a-time .venv/bin/analog-snu sweep benchmarks/sweeps/{spec}.toml{data} --out bench_out/{spec} --in-process"
#: how a JSB sweep is given the JSB file (its specs name no path of a machine)
JSB_DATA = " --set data=JSB_FILE"


@dataclass(frozen=True)
class Row:
    """One line of the table: a metric column of one grid point of one sweep."""

    id: str
    sweep: str
    grid: dict[str, Any]
    metric: str  # "test_accuracy" (a fraction) or "test_nll" (nats per frame)
    paper: float | None
    note: str
    column: str = ""  # results column; default: the metric itself
    extra: dict[str, str] = field(default_factory=dict)  # other columns worth keeping: name -> column

    @property
    def source_column(self) -> str:
        return self.column or self.metric


def _jsb(id_: str, sweep: str, grid: dict[str, Any], paper: float | None, note: str, column: str = "") -> Row:
    averages = {name: f"test_{name}" for name in ("nll_no_first", "nll_per_sequence", "nll_per_sequence_no_first")}
    return Row(id_, sweep, grid, "test_nll", paper, note, column, {} if column else averages)


ROWS: tuple[Row, ...] = (
    Row("mnist_snu_7x256", "mnist_snu_full", {}, "test_accuracy", 0.9847, "SNU 784-256x7-10, digital"),
    Row("mnist_ssnu_4x256", "mnist_ssnu_full_wd", {}, "test_accuracy", 0.9850,
        "sSNU 784-256x4-10, digital, Adam 4e-3, weight decay 1e-5 (both chosen on validation)"),
    Row("mnist_ssnu_4x256_no_wd", "mnist_ssnu_full_tuned", {}, "test_accuracy", 0.9850,
        "sSNU 784-256x4-10, digital, Adam 4e-3, no weight decay"),
    Row("mnist_ssnu_4x256_lr1e-3", "mnist_ssnu_full", {}, "test_accuracy", 0.9850,
        "sSNU 784-256x4-10, digital, Adam 1e-3"),
    Row("mnist_conv_snu", "mnist_conv_full", {}, "test_accuracy", 0.9921, "conv SNU 32c5-p2-64c5-p2-256-10, digital"),
    Row("mnist_snu_7x256_hwa", "mnist_snu_full_hwa", {}, "test_accuracy", None,
        "SNU 784-256x7-10, hardware-aware training on pcm_joshi2020, as trained"),
    Row("mnist_snu_7x256_hwa_0s", "mnist_snu_full_hwa", {}, "test_accuracy", None,
        "SNU 784-256x7-10, hardware-aware, programmed onto pcm_joshi2020, tested right after", drift_column(0)),
    Row("mnist_snu_7x256_hwa_1d", "mnist_snu_full_hwa", {}, "test_accuracy", None,
        "SNU 784-256x7-10, hardware-aware, 1 day after programming", drift_column(DAY)),
    Row("mnist_snu_7x256_hwa_1y", "mnist_snu_full_hwa", {}, "test_accuracy", None,
        "SNU 784-256x7-10, hardware-aware, 1 year after programming", drift_column(YEAR)),
    Row("mnist_ssnu_4x256_hwa", "mnist_ssnu_full_hwa", {}, "test_accuracy", None,
        "sSNU 784-256x4-10, hardware-aware training on pcm_joshi2020, as trained"),
    Row("mnist_ssnu_4x256_hwa_0s", "mnist_ssnu_full_hwa", {}, "test_accuracy", None,
        "sSNU 784-256x4-10, hardware-aware, programmed onto pcm_joshi2020, tested right after", drift_column(0)),
    Row("mnist_ssnu_4x256_hwa_1d", "mnist_ssnu_full_hwa", {}, "test_accuracy", None,
        "sSNU 784-256x4-10, hardware-aware, 1 day after programming", drift_column(DAY)),
    Row("mnist_ssnu_4x256_hwa_1y", "mnist_ssnu_full_hwa", {}, "test_accuracy", None,
        "sSNU 784-256x4-10, hardware-aware, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_snu", "jsb_digital_tuned", {"model": "snu", "lr": 0.001}, 8.72,
         "SNU 88-150-88, digital, Adam 0.001 (chosen on validation)"),
    _jsb("jsb_ssnu", "jsb_digital_tuned", {"model": "ssnu", "lr": 0.005}, 8.39,
         "sSNU 88-150-88, digital, Adam 0.005 (chosen on validation)"),
    _jsb("jsb_snu_lr0.01", "jsb_digital", {"model": "snu"}, 8.72, "SNU, digital, the paper's Adam 0.01"),
    _jsb("jsb_ssnu_lr0.01", "jsb_digital", {"model": "ssnu"}, 8.39, "sSNU, digital, the paper's Adam 0.01"),
    _jsb("jsb_snu_ibm_recipe", "jsb_digital_ibm", {"model": "snu"}, 8.72,
         "SNU, IBM's example recipe (Glorot init, chorales in fixed order), Adam 0.01"),
    _jsb("jsb_ssnu_ibm_recipe", "jsb_digital_ibm", {"model": "ssnu"}, 8.39,
         "sSNU, IBM's example recipe (Glorot init, chorales in fixed order), Adam 0.01"),
    _jsb("jsb_snu_on_chip_1y", "jsb_digital_tuned", {"model": "snu", "lr": 0.001}, None,
         "digital SNU programmed onto pcm_joshi2020, 1 year later", drift_column(YEAR)),
    _jsb("jsb_ssnu_on_chip_1y", "jsb_digital_tuned", {"model": "ssnu", "lr": 0.005}, None,
         "digital sSNU programmed onto pcm_joshi2020, 1 year later", drift_column(YEAR)),
    _jsb("jsb_snu_hil", "jsb_hil_snu_tuned", {"model": "snu"}, None,
         "SNU, PCM chip in the loop (reprogram), Adam 0.001, as trained"),
    _jsb("jsb_ssnu_hil", "jsb_hil_ssnu_tuned", {"model": "ssnu"}, None,
         "sSNU, PCM chip in the loop (reprogram), Adam 0.005, as trained"),
    _jsb("jsb_snu_hil_1y", "jsb_hil_snu_tuned", {"model": "snu"}, None,
         "SNU, chip in the loop (reprogram), Adam 0.001, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_ssnu_hil_1y", "jsb_hil_ssnu_tuned", {"model": "ssnu"}, None,
         "sSNU, chip in the loop (reprogram), Adam 0.005, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_snu_hil_lr0.01", "jsb_hil", {"model": "snu"}, None, "SNU, chip in the loop (reprogram), Adam 0.01"),
    _jsb("jsb_ssnu_hil_lr0.01", "jsb_hil", {"model": "ssnu"}, None, "sSNU, chip in the loop (reprogram), Adam 0.01"),
    _jsb("jsb_snu_hil_lr0.01_1y", "jsb_hil", {"model": "snu"}, None,
         "SNU, chip in the loop (reprogram), Adam 0.01, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_ssnu_hil_lr0.01_1y", "jsb_hil", {"model": "ssnu"}, None,
         "sSNU, chip in the loop (reprogram), Adam 0.01, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_snu_mixed", "jsb_mixed", {"model": "snu", "hil-scheme": "mixed"}, None,
         "SNU, mixed-precision in-memory training, Adam 0.01, as trained"),
    _jsb("jsb_ssnu_mixed", "jsb_mixed_ssnu_32x", {}, None,
         "sSNU, mixed-precision in-memory training, range 32x, Adam 0.04 (chosen on validation), as trained"),
    _jsb("jsb_ssnu_mixed_1y", "jsb_mixed_ssnu_32x", {}, None,
         "sSNU, mixed precision, range 32x, Adam 0.04, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_ssnu_mixed_8x", "jsb_mixed_ssnu_tuned", {}, None,
         "sSNU, mixed precision, the default range 8x, Adam 0.08 (chosen on validation at 8x), as trained"),
    _jsb("jsb_ssnu_mixed_lr0.01", "jsb_mixed", {"model": "ssnu", "hil-scheme": "mixed"}, None,
         "sSNU, mixed-precision in-memory training, the paper's Adam 0.01, as trained"),
    _jsb("jsb_snu_hwa", "jsb_paper_budget_hwa", {"model": "snu"}, None, "SNU, hardware-aware training, as trained"),
    _jsb("jsb_ssnu_hwa", "jsb_paper_budget_hwa", {"model": "ssnu"}, None, "sSNU, hardware-aware training, as trained"),
    _jsb("jsb_snu_hwa_1y", "jsb_paper_budget_hwa", {"model": "snu"}, None,
         "SNU, hardware-aware training, 1 year after programming", drift_column(YEAR)),
    _jsb("jsb_ssnu_hwa_1y", "jsb_paper_budget_hwa", {"model": "ssnu"}, None,
         "sSNU, hardware-aware training, 1 year after programming", drift_column(YEAR)),
)


def _matches(result: dict[str, Any], grid: dict[str, Any]) -> bool:
    return all(result.get(key) == value for key, value in grid.items())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def table_row(row: Row, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON row of ``row`` from a sweep's ``results.json`` entries."""
    finished = sorted((r for r in results if r.get("status") == "ok" and _matches(r, row.grid)
                       and _finite(r.get(row.source_column))), key=lambda r: r["seed"])
    per_seed = {str(r["seed"]): float(r[row.source_column]) for r in finished}
    values = list(per_seed.values())
    out: dict[str, Any] = {
        "id": row.id,
        "metric": row.metric,
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
        "seeds": [int(seed) for seed in per_seed],
        "per_seed": per_seed,
        "paper": row.paper,
        "command": f"make setup && {RUN.format(spec=row.sweep, data=JSB_DATA if row.sweep.startswith('jsb') else '')} "
                   "&& .venv/bin/python benchmarks/paper_table.py",
        "sweep": row.sweep,
        "grid": row.grid,
        "column": row.source_column,
        "note": row.note,
    }
    for name, column in row.extra.items():
        extra = [float(r[column]) for r in finished if _finite(r.get(column))]
        if len(extra) == len(values) and extra:
            out[name] = {"mean": statistics.fmean(extra), "std": statistics.stdev(extra) if len(extra) > 1 else 0.0}
    return out


def _current_names(result: dict[str, Any]) -> dict[str, Any]:
    """A results row with the drift columns named as now (``drift_1y``), also from older sweeps
    (``drift_31536000``)."""
    renamed = {}
    for key, value in result.items():
        if key.startswith("drift_"):
            try:
                key = drift_column(parse_time(key.removeprefix("drift_")))
            except ConfigError:
                pass
        renamed[key] = value
    return renamed


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def finished_trials(sweep: Path) -> list[dict[str, Any]]:
    """Rows of the finished trials of a sweep that has not written ``results.json`` yet (one
    interrupted after some seeds): each trial's ``final.json`` with the grid values of its id
    (``model=snu_lr=0.001_seed=0``); no evaluation columns."""
    rows = []
    for final in sorted(sweep.glob("trials/*/final.json")):
        row = {"status": "ok", **json.loads(final.read_text())}
        for part in final.parent.name.split("_"):
            key, sep, text = part.partition("=")
            if sep:
                row[key] = _value(text)
        rows.append(row)
    return rows


def build(sweeps: Path) -> dict[str, Any]:
    rows = []
    for row in ROWS:
        path = sweeps / row.sweep / "results.json"
        results = json.loads(path.read_text()) if path.is_file() else finished_trials(sweeps / row.sweep)
        rows.append(table_row(row, [_current_names(r) for r in results]))
    return {"rows": rows}


def _fmt(row: dict[str, Any]) -> str:
    if row["mean"] is None:
        return "not run"
    scale, digits, unit = (100.0, 2, " %") if row["metric"] == "test_accuracy" else (1.0, 3, "")
    if len(row["seeds"]) == 1:
        return f"{scale * row['mean']:.{digits}f}{unit} (one seed)"
    return f"{scale * row['mean']:.{digits}f} +- {scale * row['std']:.{digits}f}{unit}"


def markdown(table: dict[str, Any]) -> str:
    lines = ["| id | what | ours (mean +- std) | seeds | paper |", "|---|---|---|---|---|"]
    for row in table["rows"]:
        paper = "–" if row["paper"] is None else (
            f"{100 * row['paper']:.2f} %" if row["metric"] == "test_accuracy" else f"{row['paper']:.2f}")
        lines.append(f"| `{row['id']}` | {row['note']} | {_fmt(row)} | {len(row['seeds'])} | {paper} |")
    return "\n".join(lines) + "\n"


def figure(table: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("test_accuracy", "test accuracy (%)", 100.0), ("test_nll", "test NLL (nats per frame)", 1.0)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (metric, label, scale) in zip(axes, panels):
        rows = [r for r in table["rows"] if r["metric"] == metric and r["mean"] is not None]
        for y, row in enumerate(rows):
            ax.errorbar(scale * row["mean"], y, xerr=scale * row["std"], fmt="o", color="C0",
                        label="ours (mean +- std)" if y == 0 else None)
            if row["paper"] is not None:
                ax.plot(scale * row["paper"], y, "x", color="C3", markersize=9, label="paper" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [r["id"] for r in rows], fontsize=8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        if rows:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=Path, default=Path("bench_out"), help="folder holding the sweep directories")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for paper_table.json/.md/.png")
    args = parser.parse_args(argv)
    table = build(args.sweeps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paper_table.json").write_text(json.dumps(table, indent=1) + "\n")
    (args.out / "paper_table.md").write_text(markdown(table))
    figure(table, args.out / "paper_table.png")
    sys.stdout.write(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
