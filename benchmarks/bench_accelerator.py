"""One SNU training step on CPU and on CUDA: digital vs preset HWA, batch 64 and 1024.

784-256-256-10 SNU network (time-averaged readout), T = 20, Bernoulli input spikes (the
network, input and step of :mod:`bench_snu`). A step is zero_grad + forward + cross-entropy +
backward + an SGD update; on CUDA it is timed with ``torch.cuda.synchronize()`` around it.
Paths: ``digital`` (``nn.Linear`` maps) and ``preset_hwa`` (``pcm_joshi2020``,
``device_rpu_config(device, "hwa")``: aihwkit's torch inference tiles with PCM periphery and weight noise).
Every (accelerator, batch, path) is warmed up, then its median over ``--steps`` steps is
reported in ms (``<accelerator>_<path>_b<batch>_ms``), plus GPU/CPU speed-ups.

    python benchmarks/bench_accelerator.py --json                       # cpu and, if present, cuda
    python benchmarks/bench_accelerator.py --accelerators cpu --batches 64 --steps 3 --json   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_snu import BenchConfig, build_paths, environment, make_input, train_step  # noqa: E402

PATHS = ("digital", "preset_hwa")


def time_path(path: str, accelerator: str, batch: int, steps: int, warmup: int) -> dict[str, float]:
    config = BenchConfig(batch=batch, paths=(path,))
    forward, net = build_paths(config)[path]
    net = net.to(accelerator)
    x, labels = (t.to(accelerator) for t in make_input(config))
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    cuda = accelerator == "cuda"
    times = []
    for index in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(forward, net, x, labels)
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if index >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def run(accelerators: list[str], batches: list[int], steps: int, warmup: int, threads: int) -> dict:
    if threads:
        torch.set_num_threads(threads)
    result: dict = {"environment": environment(), "threads": torch.get_num_threads(), "steps": steps,
                    "load_before": os.getloadavg()[0], "times_ms": {}}
    if torch.cuda.is_available():
        result["environment"]["gpu"] = torch.cuda.get_device_name(0)
    for accelerator in accelerators:
        for batch in batches:
            for path in PATHS:
                key = f"{accelerator}_{path}_b{batch}"
                result["times_ms"][key] = round(time_path(path, accelerator, batch, steps, warmup)["median_ms"], 3)
    times = result["times_ms"]
    result["speedup_cuda_over_cpu"] = {
        f"{path}_b{batch}": round(times[f"cpu_{path}_b{batch}"] / times[f"cuda_{path}_b{batch}"], 2)
        for path in PATHS for batch in batches if f"cuda_{path}_b{batch}" in times and f"cpu_{path}_b{batch}" in times
    }
    result["load_after"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerators", nargs="+", choices=["cpu", "cuda"], default=None,
                        help="default: cpu, plus cuda when a GPU is present")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    accelerators = args.accelerators or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in accelerators and not torch.cuda.is_available():
        parser.error("--accelerators cuda: no CUDA GPU is available")
    result = run(accelerators, args.batches, args.steps, args.warmup, args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result["times_ms"].items():
            print(f"{key:32s} {value:10.2f} ms")
        for key, value in result["speedup_cuda_over_cpu"].items():
            print(f"cuda speed-up {key:20s} {value:6.2f}x")


if __name__ == "__main__":
    main()
