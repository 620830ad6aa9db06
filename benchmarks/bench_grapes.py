"""Plain SGD against GRAPES-SGD (propagating and local) on the 8x8 digits, digital and on PCM.

Networks: (a) a ReLU MLP 64-256-256-10, (b) an SNU network 64-128-128-10 on rate-coded
spikes (T steps). Modes: ``digital``; ``hwa`` (hardware-aware training on aihwkit PCM
inference tiles, the gradient is modulated); ``pulsed`` (in-memory training of aihwkit's
PCM preset devices with pulse trains, the d rows handed to the tile update are modulated).
Every (network, mode, optimizer) runs over the same seeds, data order, spikes and epochs.

    python benchmarks/bench_grapes.py                 # full default run (see RESULTS.md for the runs made)
    python benchmarks/bench_grapes.py --quick         # smoke run, tiny sizes
    python benchmarks/bench_grapes.py --nets mlp --modes digital --seeds 0 1 2
    python benchmarks/bench_grapes.py --markdown benchmarks/results/grapes_mlp.json   # table of a report

Prints final test accuracy (mean +- std over seeds) and epochs to reach the stated
accuracy; writes ``<out>.json``, ``<out>.csv`` and ``<out>.png`` (curves).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from analog_snu.data import load_digits, rate_encode
from analog_snu.layers import MLP, SNUNetwork
from analog_snu.tiles import aihwkit_version, pcm_hwa_rpu_config, pcm_pulsed_rpu_config
from analog_snu.training import GRAPES, accuracy, evaluate, make_optimizer, train_epoch

NETS = ("mlp", "snu")
MODES = ("digital", "hwa", "pulsed")
#: "sgd-2xlr" is a control: plain SGD at twice the learning rate (GRAPES factors lie in [1, 2])
OPTIMIZERS = ("sgd", "grapes-propagating", "grapes-local", "sgd-2xlr")


@dataclass
class BenchConfig:
    nets: tuple[str, ...] = NETS
    modes: tuple[str, ...] = MODES
    optimizers: tuple[str, ...] = OPTIMIZERS[:3]
    seeds: tuple[int, ...] = (0, 1, 2)
    mlp_sizes: tuple[int, ...] = (64, 256, 256, 10)
    snu_sizes: tuple[int, ...] = (64, 128, 128, 10)
    steps: int = 10  # SNU time steps
    rate: float = 4.0  # expected spikes over the steps at full intensity
    batch: int = 32
    #: epochs per mode (pulsed C++ tiles process one sample at a time: fewer epochs)
    epochs: dict[str, int] = field(default_factory=lambda: {"digital": 30, "hwa": 15, "pulsed": 10})
    #: SGD learning rate per (net, mode), the same for all three optimizers
    lr: dict[str, float] = field(
        default_factory=lambda: {
            "mlp/digital": 0.05, "mlp/hwa": 0.05, "mlp/pulsed": 0.005,
            "snu/digital": 0.1, "snu/hwa": 0.1, "snu/pulsed": 0.05,
        }
    )
    #: "epochs to reach" this test accuracy
    target: dict[str, float] = field(default_factory=lambda: {"mlp": 0.90, "snu": 0.85})
    train_limit: int = 0  # 0: all 1,437 training images
    test_limit: int = 0  # 0: all 360 test images
    out: str = "benchmarks/results/grapes"


def quick_config(out: str) -> BenchConfig:
    """Toy sizes for the smoke test: seconds, not minutes."""
    return BenchConfig(
        seeds=(0, 1), mlp_sizes=(64, 16, 12, 10), snu_sizes=(64, 12, 10), steps=4,
        epochs={"digital": 2, "hwa": 1, "pulsed": 1}, train_limit=96, test_limit=64, out=out,
    )


def rpu_config_source(mode: str) -> tuple[object, str]:
    """PCM tiles for the mode and where they come from: the device-model preset ``pcm_joshi2020``
    when it is available, else aihwkit's stock PCM configs."""
    if mode == "digital":
        return None, "digital"
    try:
        from analog_snu.device_models import preset

        return preset("pcm_joshi2020").rpu_config(mode), f"analog_snu preset pcm_joshi2020, mode {mode!r}"
    except (ImportError, AttributeError, KeyError, ValueError):
        if mode == "hwa":
            return pcm_hwa_rpu_config(), "analog_snu.tiles.pcm_hwa_rpu_config (aihwkit InferenceRPUConfig + PCM)"
        return pcm_pulsed_rpu_config(), "analog_snu.tiles.pcm_pulsed_rpu_config (aihwkit PCMPreset)"


def rpu_config(mode: str):
    return rpu_config_source(mode)[0]


def build(net: str, mode: str, config: BenchConfig) -> nn.Module:
    rpu = rpu_config(mode)
    if net == "mlp":
        return MLP(list(config.mlp_sizes), activation="relu", rpu_config=rpu)
    return SNUNetwork(list(config.snu_sizes), output="mean", rpu_config=rpu, threshold=0.5)


def batches(net, images, labels, config, generator, shuffle=True):
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(labels), config.batch):
        idx = order[start : start + config.batch]
        x = images[idx]
        if net == "snu":
            x = rate_encode(x, config.steps, config.rate, generator)
        yield x, labels[idx]


def run_one(net: str, mode: str, optimizer_name: str, seed: int, config: BenchConfig, data) -> dict:
    """Train one model; test accuracy after every epoch."""
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = build(net, mode, config)  # same initial weights for every optimizer at this seed
    lr = config.lr[f"{net}/{mode}"] * (2.0 if optimizer_name == "sgd-2xlr" else 1.0)
    optimizer = make_optimizer(model, "sgd", lr=lr)
    grapes = GRAPES(model, optimizer_name.removeprefix("grapes-")) if optimizer_name.startswith("grapes") else None
    loss_fn = nn.CrossEntropyLoss()
    test_gen = torch.Generator().manual_seed(10_000 + seed)
    test_batches = list(batches(net, test_x, test_y, BenchConfig(batch=512, steps=config.steps, rate=config.rate),
                                test_gen, shuffle=False))
    generator = torch.Generator().manual_seed(seed)  # same order and spikes for every optimizer
    curve, losses = [], []
    start = time.perf_counter()
    for _ in range(config.epochs[mode]):
        loss = train_epoch(model, batches(net, train_x, train_y, config, generator), optimizer, loss_fn,
                           grapes=grapes, progress=False)
        losses.append(loss)
        curve.append(evaluate(model, test_batches, accuracy))
    return {"net": net, "mode": mode, "optimizer": optimizer_name, "seed": seed, "test_accuracy": curve,
            "train_loss": losses, "seconds": time.perf_counter() - start}


def epochs_to(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, acc in enumerate(curve) if acc >= target), None)


def summarise(runs: list[dict], config: BenchConfig) -> list[dict]:
    rows = []
    keys = sorted({(r["net"], r["mode"], r["optimizer"]) for r in runs},
                  key=lambda k: (NETS.index(k[0]), MODES.index(k[1]), OPTIMIZERS.index(k[2])))
    for net, mode, opt in keys:
        group = [r for r in runs if (r["net"], r["mode"], r["optimizer"]) == (net, mode, opt)]
        finals = [r["test_accuracy"][-1] for r in group]
        reach = [epochs_to(r["test_accuracy"], config.target[net]) for r in group]
        reached = [e for e in reach if e is not None]
        rows.append({
            "net": net, "mode": mode, "optimizer": opt, "seeds": len(group), "epochs": config.epochs[mode],
            "final_mean": statistics.mean(finals), "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "target": config.target[net], "reached": f"{len(reached)}/{len(reach)}",
            "epochs_to_target_mean": statistics.mean(reached) if reached else None,
            "seconds_per_run": statistics.mean(r["seconds"] for r in group),
        })
    return rows


def plot(runs: list[dict], config: BenchConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [(n, m) for n in config.nets for m in config.modes]
    fig, axes = plt.subplots(len(config.nets), len(config.modes), figsize=(4 * len(config.modes), 3.2 * len(config.nets)),
                             squeeze=False)
    for ax, (net, mode) in zip(axes.flat, cells):
        for opt, colour in zip(OPTIMIZERS, ("tab:gray", "tab:blue", "tab:orange", "tab:green")):
            curves = [r["test_accuracy"] for r in runs if (r["net"], r["mode"], r["optimizer"]) == (net, mode, opt)]
            if not curves:
                continue
            mean = torch.tensor(curves).mean(0)
            std = torch.tensor(curves).std(0) if len(curves) > 1 else torch.zeros_like(mean)
            epochs = range(1, len(mean) + 1)
            ax.plot(epochs, mean, color=colour, label=opt)
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
        ax.axhline(config.target[net], color="k", lw=0.5, ls=":")
        ax.set_title(f"{net} / {mode}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = "unknown"
    return {"commit": commit, "torch": torch.__version__, "aihwkit": aihwkit_version(), "device": "cpu",
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def run(config: BenchConfig, verbose: bool = True) -> dict:
    env = environment()  # at the start: the code that runs is the code of this commit
    split = load_digits()  # train on train + valid: the 1,437 non-test images
    train_images = torch.cat([split["train"][0], split["valid"][0]])
    train_labels = torch.cat([split["train"][1], split["valid"][1]])
    test_images, test_labels = split["test"]
    n_train = config.train_limit or len(train_labels)
    n_test = config.test_limit or len(test_labels)
    data = (train_images[:n_train], train_labels[:n_train], test_images[:n_test], test_labels[:n_test])
    runs = []
    for net in config.nets:
        for mode in config.modes:
            for seed in config.seeds:
                for opt in config.optimizers:
                    result = run_one(net, mode, opt, seed, config, data)
                    runs.append(result)
                    if verbose:
                        print(f"  {net:>3} {mode:>7} {opt:<19} seed {seed}: "
                              f"{' '.join(f'{a:.3f}' for a in result['test_accuracy'])} ({result['seconds']:.0f} s)",
                              flush=True)
    summary = summarise(runs, config)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tiles = {mode: {"source": rpu_config_source(mode)[1], "rpu_config": repr(rpu_config_source(mode)[0])}
             for mode in config.modes}
    report = {"config": asdict(config), "environment": env, "tiles": tiles, "summary": summary,
              "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    with out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    plot(runs, config, out.with_suffix(".png"))
    return report


def print_summary(report: dict) -> None:
    print(f"{'net':<4}{'mode':<8}{'optimizer':<20}{'final test acc':>20}{'epochs to target':>22}{'s/run':>8}")
    for row in report["summary"]:
        reach = "-" if row["epochs_to_target_mean"] is None else f"{row['epochs_to_target_mean']:.1f}"
        print(f"{row['net']:<4}{row['mode']:<8}{row['optimizer']:<20}"
              f"{100 * row['final_mean']:>12.1f} +- {100 * row['final_std']:<4.1f}"
              f"{reach:>10} ({row['reached']} >= {100 * row['target']:.0f}%)"
              f"{row['seconds_per_run']:>8.0f}")


def markdown_table(report: dict) -> str:
    """The summary of a report as a Markdown table (for benchmarks/RESULTS.md)."""
    lines = ["| net | tiles | optimizer | lr | epochs | final test acc (mean ± std) | epochs to target (mean, reached) |",
             "|---|---|---|---|---|---|---|"]
    lrs = report["config"]["lr"]
    for row in report["summary"]:
        lr = lrs[f"{row['net']}/{row['mode']}"] * (2 if row["optimizer"] == "sgd-2xlr" else 1)
        reach = "–" if row["epochs_to_target_mean"] is None else f"{row['epochs_to_target_mean']:.1f}"
        lines.append(f"| {row['net']} | {row['mode']} | {row['optimizer']} | {lr:g} | {row['epochs']} | "
                     f"{100 * row['final_mean']:.1f} ± {100 * row['final_std']:.1f} % | "
                     f"{reach} ({row['reached']} ≥ {100 * row['target']:.0f} %) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", nargs=3, type=int, metavar=("DIGITAL", "HWA", "PULSED"), default=None)
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=None)
    parser.add_argument("--lr", nargs="+", default=[], metavar="NET/MODE=LR", help="e.g. mlp/pulsed=0.05")
    parser.add_argument("--out", default=None, help="output path without suffix")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", metavar="JSON", help="print the summary of a written report as a table; no run")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text())))
        return
    torch.set_num_threads(args.threads)
    config = quick_config(args.out or "benchmarks/results/grapes_quick") if args.quick else BenchConfig()
    config.nets, config.modes = tuple(args.nets), tuple(args.modes)
    if args.seeds:
        config.seeds = tuple(args.seeds)
    if args.epochs:
        config.epochs = dict(zip(MODES, args.epochs))
    if args.optimizers:
        config.optimizers = tuple(args.optimizers)
    for item in args.lr:
        key, _, value = item.partition("=")
        if key not in config.lr:
            parser.error(f"--lr key must be one of {sorted(config.lr)}, got {key!r}")
        config.lr[key] = float(value)
    if args.out:
        config.out = args.out
    report = run(config)
    print_summary(report)
    for mode, tile in report["tiles"].items():
        print(f"{mode} tiles: {tile['source']}")
    print(f"wrote {config.out}.json, .csv, .png")


if __name__ == "__main__":
    main()
