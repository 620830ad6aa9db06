"""Where the preset HWA step's cost over digital comes from: the output bound and each periphery part.

The network, input and step of ``bench_snu.py`` (784-256-256-10 SNU, T = 20, N = 64, input rate
0.15, threshold 0.5), on variants of preset ``pcm_joshi2020`` with ``device_rpu_config(device, "hwa")``, timed
in one process against the digital network (interleaved rounds, best of 3 per variant and round,
medians; forward and backward apart). For every variant the script also counts the input vectors
whose outputs saturate the ADC at the first conversion (bound management converts them again).

    python benchmarks/preset_periphery.py                      # bound sweep and ablation
    python benchmarks/preset_periphery.py --bounds 12 24 --no-ablation --rounds 15
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

import torch
from torch.nn.functional import cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_snu  # noqa: E402  (the benchmark's network, input and configuration)

from analog_snu.functional import periphery_loops  # noqa: E402
from analog_snu.pcm import preset  # noqa: E402
from analog_snu.tiles import (
    device_rpu_config,  # noqa: E402
    spike_mvm,  # noqa: E402
)

PRESET = bench_snu.PRESET  # the preset whose variants are compared

#: name -> changes over the preset with the bound raised so far that nothing saturates, so the
#: parts below are measured without bound-management reruns
ABLATION = {
    "no output noise": {"periphery": {"out_noise": 0.0}},
    "no ADC quantisation": {"periphery": {"adc_bits": 0}},
    "no HWA weight noise": {"hwa": {"weight_noise": 0.0}},
    "no HWA weight clip": {"hwa": {"clip": 0.0}},
    "no HWA (noise, clip, learned out scaling)": {"hwa": {"enabled": False}},
    "ideal periphery (HWA on)": {"periphery": {"enabled": False}},
}


class SaturationCounter:
    """Counts, per tile output width, the spike-input vectors that needed more than one conversion.

    Both periphery paths are counted: the compiled loop (``periphery_loops.spike_rounds``, the
    default on CPU) and the torch operations (``SpikeAnalogMVM._spike_rounds``)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[float, int], list[int]] = collections.defaultdict(lambda: [0, 0])
        self._rounds = spike_mvm.SpikeAnalogMVM.__dict__["_spike_rounds"].__func__
        self._loop = periphery_loops.spike_rounds

    def __enter__(self) -> SaturationCounter:
        rounds, loop, rows = self._rounds, self._loop, self.rows

        def counted(cls, product, io_pars, fwd_pars, *args):
            result = rounds(cls, product, io_pars, fwd_pars, *args)
            count = rows[(io_pars.out_bound, product.shape[1])]
            count[0] += product.shape[0]
            count[1] += int((result[4] > 1).sum())  # the reduction f of each row's last conversion
            return result

        def counted_loop(product, *args):
            loop(product, *args)
            bound, last_rounds = args[5], args[-3]  # (see spike_rounds' signature)
            count = rows[(float(bound), product.shape[1])]
            count[0] += product.shape[0]
            count[1] += int((last_rounds > 0).sum())

        spike_mvm.SpikeAnalogMVM._spike_rounds = classmethod(counted)
        periphery_loops.spike_rounds = counted_loop
        return self

    def __exit__(self, *exc: object) -> None:
        spike_mvm.SpikeAnalogMVM._spike_rounds = classmethod(self._rounds)
        periphery_loops.spike_rounds = self._loop


def build(config: bench_snu.BenchConfig, variants: dict[str, dict]) -> dict[str, torch.nn.Module]:
    nets = {}
    torch.manual_seed(config.seed)
    nets["digital"] = bench_snu.SNUNetwork(list(config.sizes), threshold=config.threshold)
    for name, changes in variants.items():
        torch.manual_seed(config.seed)
        rpu_config = device_rpu_config(preset(PRESET).updated(changes), "hwa")
        nets[name] = bench_snu.SNUNetwork(list(config.sizes), threshold=config.threshold, rpu_config=rpu_config)
    return nets


def time_steps(nets, x, labels, rounds: int, best_of: int, clock: str = "wall") -> dict[str, tuple[float, float]]:
    """name -> (median forward ms, median step ms); round 0 is a warm-up."""
    now = bench_snu.CLOCKS[clock]
    forward, step = collections.defaultdict(list), collections.defaultdict(list)
    for round_ in range(rounds + 1):
        for name, net in nets.items():
            best_forward = best_step = float("inf")
            for _ in range(best_of):
                for p in net.parameters():
                    p.grad = None
                start = now()
                loss = cross_entropy(net(x), labels)
                middle = now()
                loss.backward()
                end = now()
                best_forward, best_step = min(best_forward, middle - start), min(best_step, end - start)
            if round_:
                forward[name].append(best_forward * 1e3)
                step[name].append(best_step * 1e3)
    return {name: (statistics.median(forward[name]), statistics.median(step[name])) for name in nets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bounds", type=float, nargs="+", default=[12.0, 24.0, 48.0, 96.0],
                        help="output bounds to compare (the preset's is 12)")
    parser.add_argument("--ablation-bound", type=float, default=96.0,
                        help="bound of the ablation variants (high enough that nothing saturates)")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--best-of", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(bench_snu.CLOCKS), default="wall",
                        help="wall time, or process CPU time (leaves out the time the machine deschedules this process)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = bench_snu.BenchConfig()
    x, labels = bench_snu.make_input(config)
    variants = {f"bound {b:g}": {"periphery": {"out_bound": b}} for b in args.bounds}
    if not args.no_ablation:
        for name, changes in ABLATION.items():
            periphery = {"out_bound": args.ablation_bound, **changes.get("periphery", {})}
            variants[f"bound {args.ablation_bound:g}, {name}"] = {**changes, "periphery": periphery}
    nets = build(config, variants)
    with SaturationCounter() as counter:
        times = time_steps(nets, x, labels, args.rounds, args.best_of, args.clock)
    digital = times["digital"][1]
    print(f"{args.clock} clock, 1 thread, median of {args.rounds} rounds (best of {args.best_of})")
    print(f"{'variant':58s} {'forward ms':>10s} {'step ms':>8s} {'x digital':>9s}")
    for name, (forward_ms, step_ms) in times.items():
        print(f"{name:58s} {forward_ms:10.1f} {step_ms:8.1f} {step_ms / digital:9.2f}")
    print("\nspike-input vectors saturating at the first conversion (bound, tile outputs): fraction")
    for (bound, width), (rows, saturating) in sorted(counter.rows.items()):
        print(f"  bound {bound:g}, {width} outputs: {saturating / rows:.3f} of {rows}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
