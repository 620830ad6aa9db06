"""Time a training step of the convolutional SNU network per image: the CPU's compiled grid loops vs the torch path.

The network of ``analog-snu train --task mnist --conv-channels 32 64 --layers 256``: conv SNU 32c5
-> pool 2 -> conv SNU 64c5 -> pool 2 -> SNU 256 -> readout 10, T = 20 steps, N = 64 images of
random rate-coded input (MNIST-like: a random 19 % of the pixels lit at a uniform intensity,
rate coding of 6 spikes over the 20 steps at full intensity), threshold 0.3 so that every layer
fires (``spike_rates``), Adam. Timed: zero_grad, forward,
cross-entropy, backward, optimizer step. Paths (``ms_per_image`` keys):

- ``compiled``: the CPU default: channels-last convolutions, the SNU recurrence with max pooling
  as the compiled loops of :func:`analog_snu.functional.snu_pool_sequence`;
- ``torch_loops``: ``ANALOG_SNU_TORCH_LOOPS=1``, the path a GPU takes: NCHW convolutions, the
  cell's torch loops over the C*H*W neurons, torch's ``max_pool2d``.

Fair timing on a shared machine: every round runs each path in turn (interleaved); per round a
path's figure is the best of ``--best-of`` steps; reported are medians over ``--rounds`` rounds,
the ratio is taken within each round. Wall and process-CPU clocks both (CPU time leaves out the
time a busy machine deschedules the process; one thread only). With ``PYTHONPATH`` set to another
checkout, ``compiled`` times that checkout's CPU default (e.g. the code before the compiled grid
loops).

    python benchmarks/bench_conv_snu.py               # table
    python benchmarks/bench_conv_snu.py --json        # one JSON object
    python benchmarks/bench_conv_snu.py --channels 16 32 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from analog_snu.data.encoding import rate_encode
from analog_snu.functional import snu as snu_module
from analog_snu.models import ConvSNUNetwork

PATHS = ("compiled", "torch_loops")


@dataclass
class BenchConfig:
    steps: int = 20
    """T, time steps."""
    batch: int = 64
    """N, images per batch."""
    side: int = 28
    """Image side (pixels)."""
    channels: tuple[int, ...] = (32, 64)
    """Output channels of the conv-SNU layers (5x5 kernels, 2x2 pooling)."""
    hidden: tuple[int, ...] = (256,)
    """Dense SNU layers."""
    classes: int = 10
    threshold: float = 0.3
    """Initial threshold of every spiking layer (the layer default 1.0 leaves the untrained network silent on
    this input: pooled rates 0.001 / 0.000 / 0.000; 0.3 gives ~0.11 / 0.31 / 0.20, a trained network's range)."""
    rate: float = 6.0
    """Expected spikes over the T steps of a pixel at full intensity."""
    lit: float = 0.19
    """Fraction of the pixels with nonzero intensity (MNIST: ~0.19)."""
    rounds: int = 3
    """Timed rounds (one untimed warm-up round before them)."""
    best_of: int = 1
    """Steps per path and round; the fastest counts."""
    threads: int = 1
    """torch threads (0: torch's default)."""
    paths: tuple[str, ...] = PATHS
    seed: int = 0


def make_batch(config: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Rate-coded random images (T, N, 1, side, side) and their labels (N,)."""
    generator = torch.Generator().manual_seed(config.seed)
    pixels = config.side * config.side
    lit = torch.rand(config.batch, pixels, generator=generator) < config.lit
    intensities = torch.rand(config.batch, pixels, generator=generator) * lit
    spikes = rate_encode(intensities, config.steps, config.rate, generator=generator)
    labels = torch.randint(0, config.classes, (config.batch,), generator=generator)
    return spikes.reshape(config.steps, config.batch, 1, config.side, config.side), labels


def build(config: BenchConfig) -> ConvSNUNetwork:
    torch.manual_seed(config.seed)
    return ConvSNUNetwork((1, config.side, config.side), config.channels, hidden=config.hidden,
                          classes=config.classes, threshold=config.threshold)


def _select(path: str) -> None:
    """Point the ``ANALOG_SNU_TORCH_LOOPS`` switch at ``path`` (read at each forward; the backward follows)."""
    if path == "torch_loops":
        os.environ[snu_module.TORCH_LOOPS_ENV] = "1"
    else:
        os.environ.pop(snu_module.TORCH_LOOPS_ENV, None)


class Trainee:
    """One path's network and optimizer; ``step`` is what is timed."""

    def __init__(self, path: str, config: BenchConfig) -> None:
        self.path = path
        self.net = build(config)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        _select(self.path)
        self.optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(self.net(x), labels).backward()
        self.optimizer.step()

    @torch.no_grad()
    def spike_rates(self, x: torch.Tensor) -> list[float]:
        """Mean (pooled) output of every spiking layer on ``x``: all must fire for a fair timing."""
        _select(self.path)
        rates: list[float] = []
        hooks = [layer.register_forward_hook(lambda m, i, out: rates.append(float(out[0].mean())))
                 for layer in self.net.hidden_layers()]
        self.net(x)
        for hook in hooks:
            hook.remove()
        return rates


def _timed(fn) -> tuple[float, float]:
    """(wall ms, process CPU ms) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def run(config: BenchConfig) -> dict:
    """Median ms per image of every path (wall and CPU), per-round ratios, spike rates."""
    if config.threads:
        torch.set_num_threads(config.threads)
    switch = os.environ.get(snu_module.TORCH_LOOPS_ENV)
    load_before = os.getloadavg()[0]
    x, labels = make_batch(config)
    trainees = [Trainee(path, config) for path in config.paths]
    try:
        rates = {t.path: t.spike_rates(x) for t in trainees}
        wall: dict[str, list[float]] = {t.path: [] for t in trainees}
        cpu: dict[str, list[float]] = {t.path: [] for t in trainees}
        for round_index in range(config.rounds + 1):  # round 0 warms up (numba's cache, allocator) and is dropped
            for trainee in trainees:
                best = min((_timed(lambda: trainee.step(x, labels)) for _ in range(config.best_of)),
                           key=lambda pair: pair[0])
                if round_index:
                    wall[trainee.path].append(best[0] / config.batch)
                    cpu[trainee.path].append(best[1] / config.batch)
    finally:
        if switch is None:
            os.environ.pop(snu_module.TORCH_LOOPS_ENV, None)
        else:
            os.environ[snu_module.TORCH_LOOPS_ENV] = switch
    result: dict = {
        "ms_per_image": {path: statistics.median(v) for path, v in wall.items()},
        "cpu_ms_per_image": {path: statistics.median(v) for path, v in cpu.items()},
    }
    if set(PATHS) <= set(wall):
        result["ratio_compiled_over_torch_loops"] = {
            "wall": _spread([a / b for a, b in zip(wall["compiled"], wall["torch_loops"])]),
            "cpu": _spread([a / b for a, b in zip(cpu["compiled"], cpu["torch_loops"])]),
        }
    result["epoch_minutes_50k"] = {path: ms * 50_000 / 60_000 for path, ms in result["ms_per_image"].items()}
    result["spike_rates"] = rates
    result["threads"] = torch.get_num_threads()
    result["rounds"] = config.rounds
    result["config"] = {k: v for k, v in asdict(config).items() if k not in ("rounds", "threads")}
    result["load_avg_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["environment"] = {"commit": _commit(), "torch": torch.__version__, "cpu_count": os.cpu_count()}
    return result


def table(result: dict) -> str:
    lines = ["| path | ms per image (wall) | CPU ms per image | 50k-image epoch, min | spike rates |",
             "|---|---|---|---|---|"]
    for path, ms in result["ms_per_image"].items():
        rates = ", ".join(f"{r:.3f}" for r in result["spike_rates"][path])
        lines.append(f"| {path} | {ms:.2f} | {result['cpu_ms_per_image'][path]:.2f} | "
                     f"{result['epoch_minutes_50k'][path]:.1f} | {rates} |")
    ratio = result.get("ratio_compiled_over_torch_loops")
    if ratio:
        lines.append("")
        lines.append("compiled / torch_loops per round, min / median / max: wall "
                     + " / ".join(f"{ratio['wall'][k]:.3f}" for k in ("min", "median", "max"))
                     + ", CPU " + " / ".join(f"{ratio['cpu'][k]:.3f}" for k in ("min", "median", "max")))
    lines.append(f"(median of {result['rounds']} interleaved rounds, {result['threads']} thread(s), load average "
                 f"before/after {result['load_avg_before_after']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = BenchConfig()
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--channels", type=int, nargs="+", default=list(defaults.channels))
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--best-of", type=int, default=defaults.best_of)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.best_of < 1 or args.batch < 1 or min(args.channels) < 1:
        parser.error("--rounds, --best-of, --batch and --channels must be positive")
    config = BenchConfig(channels=tuple(args.channels), rounds=args.rounds, best_of=args.best_of, batch=args.batch,
                         threads=args.threads, paths=tuple(dict.fromkeys(args.paths)))
    result = run(config)
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    sys.exit(main())
