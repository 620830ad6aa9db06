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
    repeats: int = 7
    slow_repeats: int = 2
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


def time_step(forward, params, x, labels, repeats: int) -> float:
    """Median wall time (ms) of zero_grad + forward + loss + backward."""
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(repeats + 1):  # the first run warms up and is dropped
        for p in params:
            p.grad = None
        start = time.perf_counter()
        loss_fn(forward(x), labels).backward()
        elapsed = time.perf_counter() - start
        if i:
            times.append(elapsed * 1e3)
    return statistics.median(times)


def run(config: BenchConfig) -> dict[str, float]:
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((config.steps, config.batch, config.sizes[0]), 0.15))
    labels = torch.randint(0, config.sizes[-1], (config.batch,))
    digital = SNUNetwork(list(config.sizes), threshold=0.5)
    results = {"digital_ms": time_step(digital, list(digital.parameters()), x, labels, config.repeats)}
    analog_paths = {
        "torch_inference_ms": (TorchInferenceRPUConfig(), config.repeats),
        "cpp_inference_ms": (InferenceRPUConfig(), config.slow_repeats),
        "cpp_float_ms": (FloatingPointRPUConfig(), config.slow_repeats),
    }
    for key, (rpu_config, repeats) in analog_paths.items():
        net = SNUNetwork(list(config.sizes), threshold=0.5, rpu_config=rpu_config)
        results[key] = time_step(net, list(net.parameters()), x, labels, repeats)
    results["naive_digital_ms"] = time_step(
        lambda inp: naive_forward(digital, inp), list(digital.parameters()), x, labels, config.repeats
    )
    return results


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
