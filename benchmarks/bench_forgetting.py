"""Catastrophic forgetting on permuted MNIST, with and without GRAPES (the GRAPES paper's continual-learning claim).

A ReLU MLP (784-256-256-10 by default, He-uniform init, SGD, batch 64) learns ``--tasks`` tasks
one after the other: task 0 is MNIST, task k > 0 the same images under a fixed random pixel
permutation (seeded). After each task the network is tested on the test split of every task
seen so far. Optimizers: plain SGD (BP), SGD with GRAPES (propagating, IBM's ``BPgrapes``), and
plain SGD at twice the learning rate (a control: GRAPES factors lie in [1, 2], so part of any
GRAPES effect may be a larger step). Every optimizer sees the same seeds, permutations, data
order and initial weights.

Reported: the accuracy matrix acc[after task t][on task k], the mean accuracy over all tasks
after the last one, and the forgetting of each task (its accuracy right after it was learned
minus its final accuracy), mean +- std over seeds.

    python benchmarks/bench_forgetting.py                       # 5 tasks, 3 seeds, 1 epoch each
    python benchmarks/bench_forgetting.py --quick               # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from analog_snu.data import load_mnist
from analog_snu.models import MLP
from analog_snu.training import accuracy, evaluate, make_optimizer, train_epoch
from analog_snu.training.feedback_alignment import make_learning_rule
from analog_snu.training.init import init_weights

#: optimizer name -> (learning rule, lr multiplier)
OPTIMIZERS = {"sgd": ("BP", 1.0), "grapes": ("BPgrapes", 1.0), "sgd-2xlr": ("BP", 2.0)}


def permutations(tasks: int, pixels: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1_000 + seed)
    return [torch.arange(pixels)] + [torch.randperm(pixels, generator=generator) for _ in range(tasks - 1)]


def batches(images, labels, size, generator=None):
    order = torch.randperm(len(labels), generator=generator) if generator is not None else torch.arange(len(labels))
    for start in range(0, len(labels), size):
        idx = order[start:start + size]
        yield images[idx], labels[idx]


def run_one(optimizer_name: str, seed: int, args, data) -> dict:
    train_x, train_y, test_x, test_y = data
    perms = permutations(args.tasks, train_x.shape[1], seed)
    torch.manual_seed(seed)
    model = MLP([train_x.shape[1], *args.hidden, 10], activation="relu")
    init_weights(model, "he_uniform", seed=seed)
    rule_name, factor = OPTIMIZERS[optimizer_name]
    optimizer = make_optimizer(model, "sgd", lr=args.lr * factor)
    rule = make_learning_rule(model, rule_name, seed=seed, grapes_variant="propagating")
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    matrix = []
    start = time.perf_counter()
    for task, perm in enumerate(perms):
        for _ in range(args.epochs):
            train_epoch(model, batches(train_x[:, perm], train_y, args.batch, generator), optimizer, loss_fn,
                        rule=rule, progress=False)
        matrix.append([evaluate(model, list(batches(test_x[:, p], test_y, 1000)), accuracy) for p in perms[:task + 1]])
    final = matrix[-1]
    return {"optimizer": optimizer_name, "seed": seed, "lr": args.lr * factor, "accuracy_matrix": matrix,
            "final_mean_accuracy": statistics.mean(final),
            "forgetting": [matrix[k][k] - final[k] for k in range(len(final) - 1)],
            "seconds": time.perf_counter() - start}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for name in OPTIMIZERS:
        group = [r for r in runs if r["optimizer"] == name]
        if not group:
            continue
        finals = [r["final_mean_accuracy"] for r in group]
        forgetting = [statistics.mean(r["forgetting"]) for r in group]
        first = [r["accuracy_matrix"][-1][0] for r in group]
        rows.append({"optimizer": name, "lr": group[0]["lr"], "seeds": len(group),
                     "final_mean": statistics.mean(finals), "final_std": _std(finals),
                     "forgetting_mean": statistics.mean(forgetting), "forgetting_std": _std(forgetting),
                     "task0_final_mean": statistics.mean(first), "task0_final_std": _std(first)})
    return rows


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def plot(runs: list[dict], tasks: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, colour in zip(OPTIMIZERS, ("tab:gray", "tab:blue", "tab:orange")):
        curves = [[row[0] for row in r["accuracy_matrix"]] for r in runs if r["optimizer"] == name]
        if not curves:
            continue
        mean, std = torch.tensor(curves).mean(0), torch.tensor(curves).std(0) if len(curves) > 1 else None
        x = range(1, tasks + 1)
        ax.plot(x, mean, color=colour, marker="o", label=name)
        if std is not None:
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("test accuracy on task 1")
    ax.set_title("permuted MNIST: forgetting of the first task")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=None, help="tasks learned in turn (default 5; --quick 2)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per task")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    parser.add_argument("--train-limit", type=int, default=10_000, help="training images per task (0: all 50,000)")
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=list(OPTIMIZERS))
    parser.add_argument("--out", default="benchmarks/results/forgetting_pmnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 500 images, tiny net")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.train_limit, args.hidden = [0], 500, [16]
    if args.tasks is None:
        args.tasks = 2 if args.quick else 5
    if args.tasks < 1 or args.epochs < 1 or args.lr <= 0 or args.batch < 1 or args.train_limit < 0:
        parser.error("--tasks, --epochs, --batch must be >= 1, --lr > 0, --train-limit >= 0")
    torch.set_num_threads(args.threads)
    split = load_mnist()
    limit = args.train_limit or len(split["train"][1])
    data = (split["train"][0][:limit], split["train"][1][:limit], *split["test"])
    runs = []
    for seed in args.seeds:
        for name in args.optimizers:
            result = run_one(name, seed, args, data)
            runs.append(result)
            print(f"{name:<9} seed {seed}: task-1 accuracy after each task "
                  f"{' '.join(f'{row[0]:.3f}' for row in result['accuracy_matrix'])}; final mean over tasks "
                  f"{result['final_mean_accuracy']:.3f} ({result['seconds']:.0f} s)", flush=True)
    summary = summarise(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "summary": summary, "runs": runs}, indent=1))
    plot(runs, args.tasks, out.with_suffix(".png"))
    print(f"{'optimizer':<10}{'lr':>6}{'mean acc over tasks':>24}{'mean forgetting':>20}{'task 1 at the end':>22}")
    for row in summary:
        print(f"{row['optimizer']:<10}{row['lr']:>6g}{100 * row['final_mean']:>16.1f} +- {100 * row['final_std']:<4.1f}"
              f"{100 * row['forgetting_mean']:>12.1f} +- {100 * row['forgetting_std']:<4.1f}"
              f"{100 * row['task0_final_mean']:>14.1f} +- {100 * row['task0_final_std']:<4.1f}")
    print(f"wrote {out}.json, .png")


if __name__ == "__main__":
    main()
