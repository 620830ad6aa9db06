"""The digital SNU training step against snnTorch and Norse on the same network, side by side.

784-256-256-10 spiking network (time-averaged readout), forward + cross-entropy + backward, at
N = 16, 64, 256 and T = 20, 80; Bernoulli input spikes (rate 0.15), one torch thread, rounds
interleaved (every library in turn), best of ``--best-of`` steps per round, median over rounds;
ratios ``peer / analog_snu`` are taken within a round and reported as min / median / max.
Needs the optional extra ``pip install .[bench]`` (snntorch, norse); a missing library is
reported as ``null``.

Every library runs its idiomatic fast path with the same amount of matrix work: one
``nn.Linear`` product over the whole (T*N, F) block per layer, then the neuron over time.

Neuron semantics (all three: membrane decay 0.8 per step, reset to zero, Heaviside spikes with a
surrogate gradient):

- analog_snu ``SNU`` (Woźniak et al. 2020): ``s_t = relu(W x_t + 0.8 s_{t-1} (1 - y_{t-1}))``,
  ``y_t = H(s_t - theta)``; trainable per-neuron threshold (0.5 here); tanh-derivative surrogate;
  fused recurrence with a hand-written BPTT backward.
- snnTorch ``Leaky(beta=0.8, threshold=0.5, reset_mechanism="zero")``:
  ``U_t = 0.8 U_{t-1} (1 - S_{t-1}) + W x_t``, ``S_t = H(U_t - 0.5)``: the SNU without the ReLU
  on the state (the same update as ``g="identity"``); fixed threshold; arctan surrogate;
  autograd through every step (about 10 nodes per step).
- Norse ``LIFBoxCell`` (tau_mem_inv = 200/s, dt = 1 ms, v_th = 0.1, v_reset = 0):
  ``v'_t = 0.8 v_{t-1} + 0.2 W x_t``, ``z_t = H(v'_t - 0.1)``, ``v_t = (1 - z_t) v'_t``: the
  same trajectory as the snnTorch neuron with the input scaled by 0.2 (hence v_th = 0.2 * 0.5);
  SuperSpike surrogate; autograd through every step. Norse's default ``LIFCell`` adds a synaptic
  current state (input reaches the membrane one step later and low-pass filtered), which is a
  different neuron; it is timed too (``norse_lif``, default parameters but v_th chosen to fire).

Target (issue 24): analog_snu at least :data:`TARGET_SPEEDUP` times faster than each of
:data:`TARGET_PEERS` in every measured setting, by the median of the per-round ratios; the JSON
says so per setting (``target``) and over all (``target_met``), the table in its last column.

    python benchmarks/bench_peers.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import nn

from analog_snu.models import SNUNetwork

try:
    import snntorch
except ImportError:  # optional extra
    snntorch = None
try:
    import norse.torch as norse_torch
except ImportError:  # optional extra
    norse_torch = None

SIZES = (784, 256, 256, 10)
DECAY, THRESHOLD, RATE = 0.8, 0.5, 0.15
TARGET_SPEEDUP = 1.5
"""peer / analog_snu step time (median over rounds) that every setting must reach."""
TARGET_PEERS = ("snntorch_leaky", "norse_lif_box")
"""The peers the target names (Norse's LIF is another neuron, timed for information)."""


class _PerStepNet(nn.Module):
    """Linear maps over the whole (T*N, F) block, then a per-step neuron loop, time-averaged readout.

    The loop takes the steps with ``current.unbind(0)``: indexing ``current[t]`` under autograd
    gives one ``SelectBackward`` per step, each writing a zero tensor of the whole (T, N, F) block
    in the backward, which costs O(T^2) (measured: snnTorch at N = 64, T = 80 took 1.1 s a step
    against 34 ms at T = 20) and would time the harness instead of the library.
    """

    def __init__(self, cell_factory: Callable[[int], nn.Module], sizes=SIZES) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-2], sizes[1:-1]))
        self.cells = nn.ModuleList(cell_factory(b) for b in sizes[1:-1])
        self.readout = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        spikes = x
        for linear, cell in zip(self.maps, self.cells):
            current = linear(spikes.reshape(steps * batch, -1)).reshape(steps, batch, -1)
            spikes = self._run_cell(cell, current)
        return self.readout(spikes.mean(0))

    def _run_cell(self, cell: nn.Module, current: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _step_loop(cell: nn.Module, current: torch.Tensor, state) -> torch.Tensor:
        """``cell(current_t, state) -> (spikes_t, state)`` over the steps (see the class docstring); (T, N, F)."""
        out = []
        for current_t in current.unbind(0):
            spikes_t, state = cell(current_t, state)
            out.append(spikes_t)
        return torch.stack(out)


class SnnTorchNet(_PerStepNet):
    def __init__(self) -> None:
        super().__init__(lambda n: snntorch.Leaky(beta=DECAY, threshold=THRESHOLD, reset_mechanism="zero"))

    def _run_cell(self, cell, current):
        return self._step_loop(cell, current, cell.init_leaky())


class NorseBoxNet(_PerStepNet):
    def __init__(self) -> None:
        params = norse_torch.LIFBoxParameters(tau_mem_inv=torch.as_tensor(200.0), v_th=torch.as_tensor(0.2 * THRESHOLD))
        super().__init__(lambda n: norse_torch.LIFBoxCell(params))

    def _run_cell(self, cell, current):
        return self._step_loop(cell, current, None)


class NorseLIFNet(_PerStepNet):
    """Norse's default LIF (synaptic current + membrane); ``norse.torch.LIF`` loops over T itself."""

    def __init__(self) -> None:
        params = norse_torch.LIFParameters(v_th=torch.as_tensor(0.05))
        super().__init__(lambda n: norse_torch.LIF(params))

    def _run_cell(self, cell, current):
        out, _ = cell(current)
        return out


def builders() -> dict[str, Callable[[], nn.Module] | None]:
    return {
        "analog_snu": lambda: SNUNetwork(list(SIZES), threshold=THRESHOLD, decay=DECAY),
        "snntorch_leaky": SnnTorchNet if snntorch is not None else None,
        "norse_lif_box": NorseBoxNet if norse_torch is not None else None,
        "norse_lif": NorseLIFNet if norse_torch is not None else None,
    }


#: ``wall``: time.perf_counter; ``cpu``: this process's CPU time (leaves out the time a shared or
#: virtual machine deschedules it; one thread only)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _step_ms(net: nn.Module, x: torch.Tensor, labels: torch.Tensor, clock: str = "wall") -> float:
    for p in net.parameters():
        p.grad = None
    now = CLOCKS[clock]
    start = now()
    nn.functional.cross_entropy(net(x), labels).backward()
    return (now() - start) * 1e3


@torch.no_grad()
def hidden_rates(net: nn.Module, x: torch.Tensor) -> list[float]:
    """Mean spike output of every hidden layer (checks that each library's network fires)."""
    if isinstance(net, SNUNetwork):
        rates, spikes = [], x
        for layer in net.layers:
            spikes, _ = layer(spikes)
            rates.append(float(spikes.mean()))
        return rates
    rates, spikes = [], x
    steps, batch, _ = x.shape
    for linear, cell in zip(net.maps, net.cells):
        spikes = net._run_cell(cell, linear(spikes.reshape(steps * batch, -1)).reshape(steps, batch, -1))
        rates.append(float(spikes.mean()))
    return rates


def run_setting(steps: int, batch: int, rounds: int, best_of: int, seed: int = 0, clock: str = "wall") -> dict:
    generator = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((steps, batch, SIZES[0]), RATE), generator=generator)
    labels = torch.randint(0, SIZES[-1], (batch,), generator=generator)
    nets = {}
    for name, build in builders().items():
        if build is not None:
            torch.manual_seed(seed)
            nets[name] = build()
    times: dict[str, list[float]] = {name: [] for name in nets}
    for round_index in range(rounds + 1):
        for name, net in nets.items():
            elapsed = min(_step_ms(net, x, labels, clock) for _ in range(best_of))
            if round_index:
                times[name].append(elapsed)
    base = times["analog_snu"]
    out = {"steps": steps, "batch": batch,
           "ms": {name: statistics.median(v) for name, v in times.items()},
           "spike_rates": {name: hidden_rates(net, x) for name, net in nets.items()},
           "ratio_to_analog_snu": {}}
    for name, values in times.items():
        if name != "analog_snu":
            ratios = [v / b for v, b in zip(values, base)]
            out["ratio_to_analog_snu"][name] = {"min": min(ratios), "median": statistics.median(ratios),
                                                "max": max(ratios)}
    for name, build in builders().items():
        if build is None:
            out["ms"][name] = None
    out["target"] = target_check(out["ratio_to_analog_snu"])
    return out


def target_check(ratios: dict[str, dict[str, float]]) -> dict:
    """Per target peer: its median speed-up and whether it reaches :data:`TARGET_SPEEDUP`;
    ``met`` is ``None`` when a target peer is not installed."""
    speedups = {name: ratios[name]["median"] if name in ratios else None for name in TARGET_PEERS}
    met = None if None in speedups.values() else all(v >= TARGET_SPEEDUP for v in speedups.values())
    return {"min_speedup": TARGET_SPEEDUP, "median_speedup": speedups, "met": met}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 80])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--best-of", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (leaves out descheduled time; needs --threads 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        parser.error(f"--clock cpu times one thread (process CPU time sums threads); got --threads {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    settings = [run_setting(t, n, args.rounds, args.best_of, clock=args.clock)
                for t in args.steps for n in args.batches]
    result = {
        "settings": settings,
        "clock": args.clock,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__,
                     "snntorch": getattr(snntorch, "__version__", None),
                     "norse": _norse_version()},
        "load_avg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target_met": _all_met([s["target"]["met"] for s in settings]),
    }
    if args.json:
        print(json.dumps(result))
        return
    print("| T | N | " + " | ".join(f"{k} ms" for k in settings[0]["ms"])
          + f" | peer / analog_snu (min / median / max) | >= {TARGET_SPEEDUP}x {' and '.join(TARGET_PEERS)} |")
    print("|---" * (4 + len(settings[0]["ms"])) + "|")
    for s in settings:
        ms = " | ".join("–" if v is None else f"{v:.1f}" for v in s["ms"].values())
        ratios = "; ".join(f"{k}: {r['min']:.2f} / {r['median']:.2f} / {r['max']:.2f}"
                           for k, r in s["ratio_to_analog_snu"].items())
        met = {True: "met", False: "missed", None: "peer missing"}[s["target"]["met"]]
        print(f"| {s['steps']} | {s['batch']} | {ms} | {ratios} | {met} |")
    print(f"target over all settings: {result['target_met']}; load average {result['load_avg_before_after']}")


def _all_met(flags: list[bool | None]) -> bool | None:
    if any(flag is False for flag in flags):
        return False
    return None if any(flag is None for flag in flags) else True


def _norse_version() -> str | None:
    try:
        return version("norse")
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
