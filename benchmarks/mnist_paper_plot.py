"""The SNU paper's MNIST networks at reduced scale: one figure and one table from the sweeps.

Reads the ``summary.json`` / ``results.json`` that ``analog-snu sweep`` wrote for the specs
``benchmarks/sweeps/mnist_{deep_snu,deep_ssnu,conv_snu}.toml`` and their ``_hwa`` variants, and
draws the mean +- std test accuracy over the seeds next to the paper's figures::

    python benchmarks/mnist_paper_plot.py --sweeps bench_out --out benchmarks/results/mnist_paper_reduced.png

Missing sweeps are left out (and named), so the script runs on partial results too; a
hardware-aware sweep still running contributes the trials whose evaluation is written.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from analog_snu.times import format_time, parse_time

#: (label, sweep folder, grid values that select the row, the paper's figure or None)
ROWS = (
    ("SNU 2x256", "sweep_mnist_deep_snu", {"layers": [256] * 2}, None),
    ("SNU 7x256", "sweep_mnist_deep_snu", {"layers": [256] * 7}, 98.47),
    ("sSNU 2x256", "sweep_mnist_deep_ssnu", {"layers": [256] * 2}, None),
    ("sSNU 4x256", "sweep_mnist_deep_ssnu", {"layers": [256] * 4}, 98.50),
    ("SNU 256 (5k images)", "sweep_mnist_conv", {"conv_channels": []}, None),
    ("conv SNU 16-32-256 (5k images)", "sweep_mnist_conv", {"conv_channels": [16, 32]}, 99.21),
)
#: hardware-aware rows: (label, sweep folder, paper's digital figure)
HWA_ROWS = (
    ("SNU 7x256, HWA", "sweep_mnist_deep_snu_hwa", 98.47),
    ("sSNU 4x256, HWA", "sweep_mnist_deep_ssnu_hwa", 98.50),
)
#: result columns of a programmed-and-drifted trial, named by the time after programming
DRIFT_COLUMNS = (("as trained", "test_accuracy"), ("0 s", "drift_0s"), ("1 day", "drift_1d"), ("1 year", "drift_1y"))


def _drift_key(time: str) -> str:
    """``drift_<time>`` as the package writes it now (``1d``), from old names too (``86400``, ``3.1536e+07``)."""
    return f"drift_{format_time(parse_time(time))}"


def _normalised(row: dict) -> dict:
    return {(_drift_key(k.removeprefix("drift_")) if k.startswith("drift_") else k): v for k, v in row.items()}


def _matches(row: dict, grid: dict) -> bool:
    return all(row.get(k, row.get(k.replace("_", "-"))) == v for k, v in grid.items())


def _stats(values: list[float]) -> tuple[float, float, int]:
    values = [100.0 * v for v in values]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def finished_trials(folder: Path) -> list[dict]:
    """Rows of the trials of a sweep still running (no results.json yet) whose evaluation is written."""
    rows = []
    for report in sorted(folder.glob("trials/*/eval/test_*.json")):
        data = json.loads(report.read_text())
        row = {"test_accuracy": data["as_trained"]}
        row.update({_drift_key(t): value for t, value in data["drift"].items()})
        rows.append(row)
    return rows


def collect(sweeps: Path) -> tuple[list[dict], list[dict], list[str]]:
    """Digital rows, HWA rows (mean, std, n per column) and the sweeps not found."""
    digital, hwa, missing = [], [], []
    for label, folder, grid, paper in ROWS:
        path = sweeps / folder / "results.json"
        if not path.is_file():
            missing.append(folder)
            continue
        rows = [r for r in json.loads(path.read_text()) if r.get("status") == "ok" and _matches(r, grid)]
        if rows:
            mean, std, n = _stats([r["test_accuracy"] for r in rows])
            digital.append({"label": label, "mean": mean, "std": std, "n": n, "paper": paper,
                            "per_seed": [100.0 * r["test_accuracy"] for r in sorted(rows, key=lambda r: r["seed"])]})
    for label, folder, paper in HWA_ROWS:
        path = sweeps / folder / "results.json"
        rows = ([_normalised(r) for r in json.loads(path.read_text()) if r.get("status") == "ok"] if path.is_file()
                else finished_trials(sweeps / folder))
        if not rows:
            missing.append(folder)
            continue
        if rows:
            columns = {name: _stats([r[key] for r in rows]) for name, key in DRIFT_COLUMNS if all(key in r for r in rows)}
            hwa.append({"label": label, "columns": columns, "paper": paper})
    return digital, hwa, sorted(set(missing))


def markdown(digital: list[dict], hwa: list[dict]) -> str:
    lines = ["| network | test accuracy (%) | per seed | paper |", "|---|---|---|---|"]
    for row in digital:
        seeds = ", ".join(f"{v:.2f}" for v in row["per_seed"])
        paper = f"{row['paper']:.2f}" if row["paper"] else "–"
        lines.append(f"| {row['label']} | **{row['mean']:.2f} +- {row['std']:.2f}** (n = {row['n']}) | {seeds} | {paper} |")
    if hwa:
        names = [name for name, _ in DRIFT_COLUMNS]
        lines += ["", "| network | " + " | ".join(names) + " | paper (digital) |", "|---|" + "---|" * (len(names) + 1)]
        for row in hwa:
            cells = [f"{row['columns'][n][0]:.2f} +- {row['columns'][n][1]:.2f}" if n in row["columns"] else "–"
                     for n in names]
            lines.append(f"| {row['label']} (n = {next(iter(row['columns'].values()))[2]}) | " + " | ".join(cells)
                         + f" | {row['paper']:.2f} |")
    return "\n".join(lines)


def plot(digital: list[dict], hwa: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    xs = range(len(digital))
    ax.bar(xs, [r["mean"] for r in digital], yerr=[r["std"] for r in digital], capsize=4, color="tab:blue",
           label="ours, digital (mean +- std over seeds)")
    papers = [(x, r["paper"]) for x, r in zip(xs, digital) if r["paper"]]
    if papers:
        ax.scatter(*zip(*papers), marker="_", s=600, color="tab:red", zorder=3, label="paper (full scale)")
    ax.set_xticks(list(xs), [r["label"] for r in digital], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(70, 100)
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title("digital, reduced budget (10k images x 3 epochs; conv: 5k x 3)", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    names = [name for name, _ in DRIFT_COLUMNS]
    for i, row in enumerate(hwa):
        present = [n for n in names if n in row["columns"]]
        ax.errorbar([names.index(n) + 0.08 * i for n in present], [row["columns"][n][0] for n in present],
                    yerr=[row["columns"][n][1] for n in present], marker="o", capsize=3, label=row["label"])
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("after programming on pcm_joshi2020")
    ax.set_title("hardware-aware training, programmed and drifted", fontsize=9)
    if hwa:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=Path, default=Path("bench_out"), help="folder holding the sweep outputs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mnist_paper_reduced.png"))
    args = parser.parse_args(argv)
    digital, hwa, missing = collect(args.sweeps)
    if missing:
        print(f"not found (left out): {', '.join(missing)}")
    if not digital and not hwa:
        raise SystemExit(f"no finished sweep under {args.sweeps}")
    print(markdown(digital, hwa))
    plot(digital, hwa, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
