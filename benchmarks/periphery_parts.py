"""Where the preset HWA step's time goes: process-CPU timers around each part of the compiled periphery.

The ``bench_snu.py`` network, input and step on ``preset_hwa`` (or ``--path preset_hwa_ssnu``: sSNU
layers, whose soft outputs take the compiled general path); every part below is wrapped in a
timer (``time.process_time``) and the page faults it takes are counted, over ``--steps`` steps
after a warm-up. The timers themselves cost a few percent; the step time printed first is with them.

    OMP_NUM_THREADS=1 python benchmarks/periphery_parts.py --steps 30
    OMP_NUM_THREADS=1 python benchmarks/periphery_parts.py --steps 30 --path preset_hwa_ssnu
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_snu  # noqa: E402  (the benchmark's network, input and step)

from analog_snu.functional import periphery_loops, spike_linear_loops  # noqa: E402
from analog_snu.tiles import fused_periphery, spike_tile  # noqa: E402

#: (owner, attribute, label): the parts timed
PARTS = [
    (spike_tile.SpikeTorchInferenceTile, "forward", "tile forward (all of it)"),
    (fused_periphery._FusedSpikeRows, "forward", "  compiled forward (GEMM + output stage)"),
    (periphery_loops, "spike_rounds", "    output stage loop"),
    (spike_tile, "noisy_weight", "  HWA weight noise"),
    (periphery_loops, "add_normal", "    its loop"),
    (spike_tile.SpikeTorchInferenceTile, "_choose_path", "  path choice (the input's scan)"),
    (spike_linear_loops, "active_inputs", "    index lists' loop (0/1 check there)"),
    (periphery_loops, "binary_state", "    0/1 check's loop (no lists made)"),
    (fused_periphery._FusedSpikeRows, "backward", "compiled backward (GEMMs + loops)"),
    (periphery_loops, "spike_rows_backward", "  backward loop (spike and general backward)"),
    (periphery_loops, "input_gradients", "  input-gradient loop"),
    (fused_periphery._FusedGeneralRows, "forward", "  compiled general forward (GEMMs + loops)"),
    (periphery_loops, "general_inputs", "    input stage loop (general)"),
    (periphery_loops, "general_output_round", "    output stage loop (general)"),
    (fused_periphery._FusedGeneralRows, "backward", "compiled general backward (GEMMs + loops)"),
    (periphery_loops, "general_input_gradients", "  input-gradient loop (general)"),
]


class Timers:
    """Wraps the parts in timers while active; ``ms[label]``, ``faults[label]``, ``calls[label]`` summed."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = collections.defaultdict(float)
        self.faults: dict[str, int] = collections.Counter()
        self.calls: dict[str, int] = collections.Counter()
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, function, label: str, static: bool):
        def timed(*args, **kwargs):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.ms[label] += (time.process_time() - start) * 1e3
                self.faults[label] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
                self.calls[label] += 1

        return staticmethod(timed) if static else timed

    def __enter__(self) -> Timers:
        for owner, name, label in PARTS:
            raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            static = isinstance(raw, staticmethod)
            self._saved.append((owner, name, raw))
            setattr(owner, name, self._wrap(raw.__func__ if static else raw, label, static))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, raw in reversed(self._saved):
            setattr(owner, name, raw)
        self._saved.clear()

    def reset(self) -> None:
        self.ms.clear()
        self.faults.clear()
        self.calls.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--path", choices=("preset_hwa", "preset_hwa_ssnu"), default="preset_hwa")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(1)
    config = bench_snu.BenchConfig(paths=(args.path,))
    x, labels = bench_snu.make_input(config)
    forward, net = bench_snu.build_paths(config)[args.path]
    with Timers() as timers:
        for _ in range(5):
            bench_snu.train_step(forward, net, x, labels)
        timers.reset()
        start = time.process_time()
        for _ in range(args.steps):
            bench_snu.train_step(forward, net, x, labels)
        step_ms = (time.process_time() - start) * 1e3 / args.steps
    print(f"{args.path} step {step_ms:.2f} CPU ms (with the timers), {args.steps} steps, 1 thread")
    print(f"{'part':44s} {'ms/step':>8s} {'calls/step':>10s} {'faults/step':>11s}")
    for _, _, label in PARTS:
        n = args.steps
        print(f"{label:44s} {timers.ms[label] / n:8.3f} {timers.calls[label] / n:10.1f} {timers.faults[label] / n:11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
