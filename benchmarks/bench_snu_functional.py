"""The SNU math alone, on any torch device: batched products + fused recurrence vs a per-step loop.

Needs only torch (no aihwkit), so it also runs where aihwkit has no build, e.g. a CUDA machine:

    python benchmarks/bench_snu_functional.py --device cuda     # or cpu
    python benchmarks/bench_snu_functional.py --device cuda --json

Times one training step (forward + backward) of a 784-256-256-10 SNU network, T = 20, N = 64,
written two ways over the same weights: ``batched`` (one product over the (T*N, F) block per
layer, then :func:`analog_snu.functional.snu_sequence`) and ``naive`` (per step and layer, a
product and :func:`analog_snu.functional.snu_step` under autograd). It first checks, in float64,
that both give the same outputs and weight gradients on that device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from analog_snu.functional import SNUState, snu_sequence, snu_step

SIZES = (784, 256, 256, 10)


def make_weights(device, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weights = [
        (torch.randn(n_out, n_in, generator=generator, dtype=dtype) / n_in**0.5).to(device).requires_grad_()
        for n_in, n_out in zip(SIZES[:-1], SIZES[1:])
    ]
    threshold = [torch.full((n,), 0.5, dtype=dtype, device=device, requires_grad=True) for n in SIZES[1:-1]]
    return weights, threshold


def batched(x, weights, thresholds, decay=0.8):
    spikes = x
    steps, batch, _ = x.shape
    for w, thr in zip(weights[:-1], thresholds):
        current = (spikes.reshape(steps * batch, -1) @ w.T).reshape(steps, batch, -1)
        zeros = current.new_zeros(batch, w.shape[0])
        spikes, _ = snu_sequence(current, SNUState(zeros, zeros), thr, decay)
    return spikes.mean(0) @ weights[-1].T


def naive(x, weights, thresholds, decay=0.8):
    batch = x.shape[1]
    states = [SNUState(x.new_zeros(batch, w.shape[0]), x.new_zeros(batch, w.shape[0])) for w in weights[:-1]]
    total = 0.0
    for t in range(x.shape[0]):
        spikes = x[t]
        for i, (w, thr) in enumerate(zip(weights[:-1], thresholds)):
            spikes, states[i] = snu_step(spikes @ w.T, states[i], thr, decay)
        total = total + spikes
    return (total / x.shape[0]) @ weights[-1].T


def check_equal(device) -> float:
    """Largest difference of outputs and weight gradients between the two ways (float64)."""
    x = torch.bernoulli(torch.full((20, 8, SIZES[0]), 0.15, dtype=torch.float64)).to(device)
    worst = 0.0
    results = []
    for forward in (batched, naive):
        weights, thresholds = make_weights(device, torch.float64)
        out = forward(x, weights, thresholds)
        out.square().sum().backward()
        results.append([out.detach()] + [p.grad for p in weights + thresholds])
    for a, b in zip(*results):
        worst = max(worst, float((a - b).abs().max()))
    return worst


def time_step(forward, x, labels, weights, thresholds, device) -> float:
    for p in weights + thresholds:
        p.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    torch.nn.functional.cross_entropy(forward(x, weights, thresholds), labels).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    max_diff = check_equal(device)
    x = torch.bernoulli(torch.full((20, 64, SIZES[0]), 0.15)).to(device)
    labels = torch.randint(0, SIZES[-1], (64,)).to(device)
    weights, thresholds = make_weights(device, torch.float32)
    times = {"batched_ms": [], "naive_ms": []}
    for round_index in range(args.rounds + 3):  # 3 warm-up rounds
        for key, forward in (("batched_ms", batched), ("naive_ms", naive)):
            elapsed = time_step(forward, x, labels, weights, thresholds, device)
            if round_index >= 3:
                times[key].append(elapsed)
    result = {key: statistics.median(values) for key, values in times.items()}
    result["naive_over_batched"] = result["naive_ms"] / result["batched_ms"]
    result["max_abs_diff_float64"] = max_diff
    result["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result["torch"] = torch.__version__
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['device']}, torch {result['torch']}: batched {result['batched_ms']:.2f} ms, "
          f"naive {result['naive_ms']:.2f} ms, naive/batched {result['naive_over_batched']:.2f}x; "
          f"float64 max |difference| of outputs and gradients: {max_diff:.2e}")


if __name__ == "__main__":
    main()
