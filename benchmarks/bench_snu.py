"""Time one SNU training step (forward + backward) on every execution path, side by side.

T = 20, N = 64, network 784-256-256-10 (SNU, time-averaged readout). Paths:
digital (batched input products + fused recurrence), aihwkit TorchInferenceRPUConfig
(torch tiles), InferenceRPUConfig and FloatingPointRPUConfig (C++ tiles), and a naive
per-step loop of the same digital SNU (one matmul per step, autograd through every step).

    python benchmarks/bench_snu.py            # table of ms and ratios to digital
    python benchmarks/bench_snu.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig, InferenceRPUConfig, TorchInferenceRPUConfig
from torch import nn

from analog_snu import SNUNetwork
from analog_snu.functional import SNUState, snu_step


@dataclass
class BenchConfig:
    steps: int = 20
    batch: int = 64
    sizes: tuple[int, ...] = (784, 256, 256, 10)
    repeats: int = 15
    threads: int = 0  # 0: torch's default


def naive_forward(net: SNUNetwork, x: torch.Tensor) -> torch.Tensor:
    """The same digital network, written the obvious way: per step, per layer."""
    states = [SNUState(x.new_zeros(x.shape[1], layer.hidden_size), x.new_zeros(x.shape[1], layer.hidden_size))
              for layer in net.layers]
    total = 0.0
    for t in range(x.shape[0]):
        spikes = x[t]
        for i, layer in enumerate(net.layers):
            current = layer.weight_ih(spikes)
            spikes, states[i] = snu_step(current, states[i], layer.threshold, layer.decay, layer.g, layer.soft,
                                         layer.surrogate)
        total = total + spikes
    return net.readout(total / x.shape[0])


def _one_step(forward, params, x, labels, loss_fn) -> float:
    """Wall time (ms) of zero_grad + forward + loss + backward."""
    for p in params:
        p.grad = None
    start = time.perf_counter()
    loss_fn(forward(x), labels).backward()
    return (time.perf_counter() - start) * 1e3


def run(config: BenchConfig) -> dict[str, float]:
    """Median step time of every path. The paths take turns, round after round, so that a
    change in machine load between rounds hits all of them alike (the ratios stay fair)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((config.steps, config.batch, config.sizes[0]), 0.15))
    labels = torch.randint(0, config.sizes[-1], (config.batch,))
    digital = SNUNetwork(list(config.sizes), threshold=0.5)
    paths = {"digital_ms": (digital, list(digital.parameters()))}
    for key, rpu_config in (
        ("torch_inference_ms", TorchInferenceRPUConfig()),
        ("cpp_inference_ms", InferenceRPUConfig()),
        ("cpp_float_ms", FloatingPointRPUConfig()),
    ):
        net = SNUNetwork(list(config.sizes), threshold=0.5, rpu_config=rpu_config)
        paths[key] = (net, list(net.parameters()))
    paths["naive_digital_ms"] = (lambda inp: naive_forward(digital, inp), list(digital.parameters()))

    loss_fn = nn.CrossEntropyLoss()
    times: dict[str, list[float]] = {key: [] for key in paths}
    for round_index in range(config.repeats + 1):  # round 0 warms up and is dropped
        for key, (forward, params) in paths.items():
            elapsed = _one_step(forward, params, x, labels, loss_fn)
            if round_index:
                times[key].append(elapsed)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=BenchConfig.repeats)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    results = run(BenchConfig(repeats=args.repeats, threads=args.threads))
    if args.json:
        print(json.dumps(results))
        return
    base = results["digital_ms"]
    print(f"SNU training step, T=20 N=64 784-256-256-10, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'path':<22}{'ms':>10}{'x digital':>12}")
    for key, value in results.items():
        print(f"{key.removesuffix('_ms'):<22}{value:>10.1f}{value / base:>12.2f}")
    print(f"targets: torch_inference/digital = {results['torch_inference_ms'] / base:.2f} (<= 2.0), "
          f"naive/digital = {results['naive_digital_ms'] / base:.2f} (>= 1.5)")


if __name__ == "__main__":
    main()
