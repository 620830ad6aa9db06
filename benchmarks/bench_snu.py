"""Time one SNU training step (forward + backward) on every execution path, side by side.

784-256-256-10 SNU network (time-averaged readout), T = 20, N = 64, Bernoulli input spikes.
Paths (``*_ms`` keys of the JSON object):

- ``digital``: ``SNUNetwork`` with ``nn.Linear`` maps (batched input products + fused recurrence);
- ``preset_hwa``: preset ``pcm_joshi2020``, ``device_rpu_config(device, "hwa")`` (the default for hardware-aware
  training: aihwkit torch tiles, PCM periphery, weight noise);
- ``torch_inference`` / ``cpp_inference`` / ``cpp_float``: stock aihwkit
  ``TorchInferenceRPUConfig``, ``InferenceRPUConfig`` (C++ tiles), ``FloatingPointRPUConfig``;
- ``naive_digital``: the digital network as a per-step, per-layer loop under autograd;
- ``digital_torch_loops``: the digital network with its recurrence in torch kernels (what a GPU
  runs) instead of the compiled CPU loops of ``analog_snu.functional.snu_loops``;
- ``digital_torch_gemm``: the digital network with its products through torch's ``F.linear``
  (MKL) instead of oneDNN (``analog_snu.functional.linear``);
- ``digital_dense_spikes``: the digital network with every product dense (oneDNN), the products
  whose operand is spikes included, instead of the gather-sums of
  ``analog_snu.functional.spike_linear`` (what exploiting spike sparsity saves;
  ``digital_dense_spikes/gemm_floor`` is the step's cost beyond its products, measured as before);
- ``digital_time_major``: the digital network with its spiking layers' currents and outputs stored
  time-major, (T, N, F) memory, as before the feature-major layout (``analog_snu.layers.SNU``: the
  products then copy a transposed operand; ``digital_time_major/digital`` is what the layout saves);
- ``preset_hwa_dense_spikes``: ``preset_hwa`` with every crossbar product dense, as
  ``digital_dense_spikes`` (``preset_hwa_dense_spikes/digital_dense_spikes``: what the simulated
  periphery costs over the same products);
- ``preset_hwa_ssnu`` / ``preset_hwa_ssnu_torch_gemm``: ``preset_hwa`` with sSNU layers (soft outputs, so the
  second layer's and the readout's tiles take the general (soft-input) path, not the spike path), its
  crossbar products on oneDNN / through torch's ``F.linear`` (MKL, aihwkit's own product);
- ``preset_hwa_ssnu_torch_general``: ``preset_hwa_ssnu`` with the soft inputs' periphery (DAC, noise
  management, output noise, ADC, bound-management reruns) as aihwkit's torch operations
  (``SpikeAnalogMVM._per_vector_rounds``) instead of the compiled general path of
  ``analog_snu.tiles.fused_periphery`` (spike inputs keep the compiled spike path): what that path saves;
- ``preset_hwa_torch_periphery``: ``preset_hwa`` with the tiles' periphery (output noise, ADC,
  bound management, scalings, HWA weight noise) as aihwkit's torch operations and draws instead
  of the compiled loops of ``analog_snu.functional.periphery_loops``;
- ``gemm_floor``: the step's matrix products alone (3 forward, 5 backward), each on the fastest
  backend measured here (MKL through ``torch.mm`` or oneDNN through
  ``torch.ops.mkldnn._linear_pointwise``), operands already in that backend's best layout.

Targets (issue 24, ``targets`` in the JSON, medians of the per-round ratios):
``digital/gemm_floor`` <= 1.3 and ``preset_hwa/digital`` <= 2.0.

Fair timing on a shared machine: every round runs every path in turn (interleaved), each path
best of ``--best-of`` steps; reported figures are medians over ``--rounds`` rounds, ratios are
taken within a round (min / median / max over rounds). One torch thread unless ``--threads``.
The input rate and threshold are chosen so that every hidden layer fires (``spike_rates``: mean
output of each SNU layer per path, all must be > 0: aihwkit skips the tile work for all-zero
inputs, which would flatter the analog paths).

    python benchmarks/bench_snu.py                  # table
    python benchmarks/bench_snu.py --json           # one JSON object
    python benchmarks/bench_snu.py --memory --steps 80 --json   # peak RSS of one step per path
    python benchmarks/bench_snu.py --memory --steps 80 --json --malloc-mmap-threshold 131072
    python benchmarks/bench_snu.py --markdown results.json      # README table from a JSON file
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from unittest import mock

# aihwkit's C++ tiles run their products through OpenBLAS, which starts one thread per core
# unless told otherwise (torch.set_num_threads does not reach it): measured, the C++ inference
# step took 129 ms of CPU with OpenBLAS's default threads and 81 ms with one, so the "one
# thread" benchmark was not. Set before aihwkit loads OpenBLAS; OPENBLAS_NUM_THREADS in the
# environment wins (--threads does not change it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS") or "1")

import aihwkit  # noqa: E402
import torch  # noqa: E402
from aihwkit.simulator.configs import FloatingPointRPUConfig, InferenceRPUConfig, TorchInferenceRPUConfig  # noqa: E402
from torch import nn  # noqa: E402

from analog_snu.functional import SNUState, snu_step  # noqa: E402
from analog_snu.functional import linear as linear_module  # noqa: E402
from analog_snu.functional import snu as snu_module  # noqa: E402
from analog_snu.functional import spike_linear as spike_linear_module  # noqa: E402
from analog_snu.heap import keep_freed_memory  # noqa: E402
from analog_snu.layers import SNU  # noqa: E402
from analog_snu.models import SNUNetwork  # noqa: E402
from analog_snu.pcm import preset  # noqa: E402
from analog_snu.tiles import (
    device_rpu_config,  # noqa: E402
    fused_periphery,  # noqa: E402
)
from analog_snu.tiles.spike_tile import SpikeTorchInferenceTile  # noqa: E402

PATHS = ("digital", "preset_hwa", "torch_inference", "cpp_inference", "cpp_float", "naive_digital",
         "digital_torch_loops", "digital_torch_gemm", "digital_time_major", "digital_dense_spikes", "preset_hwa_dense_spikes", "preset_hwa_torch_periphery",
         "preset_hwa_ssnu", "preset_hwa_ssnu_torch_gemm", "preset_hwa_ssnu_torch_general")
DIGITAL_PATHS = ("digital", "naive_digital", "digital_torch_loops", "digital_torch_gemm", "digital_time_major",
                 "digital_dense_spikes")
PRESET = "pcm_joshi2020"
TARGETS = {"digital/gemm_floor": 1.3, "preset_hwa/digital": 2.0}
"""Upper bounds on the median per-round ratios (issue 24)."""


@dataclass
class BenchConfig:
    steps: int = 20
    """T, time steps."""
    batch: int = 64
    """N, batch size."""
    sizes: tuple[int, ...] = (784, 256, 256, 10)
    rate: float = 0.15
    """Probability of an input spike per step and input."""
    threshold: float = 0.5
    """Initial SNU threshold (1.0, the layer default, leaves the second layer silent at rate 0.15)."""
    rounds: int = 15
    """Timed rounds (one untimed warm-up round before them)."""
    best_of: int = 3
    """Steps per path and round; the fastest counts."""
    threads: int = 1
    """torch threads (0: torch's default)."""
    paths: tuple[str, ...] = PATHS
    seed: int = 0
    clock: str = "wall"
    """``"wall"`` (``time.perf_counter``) or ``"cpu"`` (``time.process_time``: this process's CPU
    time, which leaves out the time a shared or virtual machine deschedules it; one thread only)."""


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


def with_env(variable: str, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with ``variable=1`` in the environment (the backward follows the forward's choice)."""
    before = os.environ.get(variable)
    os.environ[variable] = "1"
    try:
        return net(x)
    finally:
        if before is None:
            del os.environ[variable]
        else:
            os.environ[variable] = before


def with_torch_loops(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with the SNU recurrence in torch kernels."""
    return with_env(snu_module.TORCH_LOOPS_ENV, net, x)


def with_torch_gemm(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with the products of ``functional.linear`` (digital layers; the tiles' general-path crossbar) through ``F.linear`` (MKL) instead of oneDNN."""
    return with_env(linear_module.TORCH_GEMM_ENV, net, x)


def with_dense_spikes(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with every product dense, spike operands included (no gather-sums)."""
    return with_env(spike_linear_module.DENSE_SPIKES_ENV, net, x)


def with_time_major(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with the spiking layers' currents and outputs stored time-major (an ablation: the
    layer's choice of a feature-major map switched off; the backward follows the forward's layouts)."""
    with mock.patch.object(SNU, "_feature_major_map", lambda self, x: None):
        return net(x)


def with_torch_periphery(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with the tiles' periphery in aihwkit's torch operations."""
    return with_env(fused_periphery.TORCH_PERIPHERY_ENV, net, x)


def with_torch_general_periphery(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with the tiles' soft (non-spike) inputs through aihwkit's torch operations, not the
    compiled general path (an ablation: the tile's choice of that path switched off)."""
    with mock.patch.object(SpikeTorchInferenceTile, "_general_path_applies", lambda self: False):
        return net(x)


def _rpu_config(path: str):
    return {
        "preset_hwa": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "preset_hwa_torch_periphery": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "preset_hwa_dense_spikes": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "preset_hwa_ssnu": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "preset_hwa_ssnu_torch_gemm": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "preset_hwa_ssnu_torch_general": lambda: device_rpu_config(preset(PRESET), "hwa"),
        "torch_inference": TorchInferenceRPUConfig,
        "cpp_inference": InferenceRPUConfig,
        "cpp_float": FloatingPointRPUConfig,
    }[path]()


def build_paths(config: BenchConfig) -> dict[str, tuple[Callable, nn.Module]]:
    """``path -> (forward, network)``; every network starts from the same seed."""
    out: dict[str, tuple[Callable, nn.Module]] = {}
    digital = None
    for path in config.paths:
        torch.manual_seed(config.seed)
        if path in DIGITAL_PATHS:
            if digital is None:
                digital = SNUNetwork(list(config.sizes), threshold=config.threshold)
            net = digital
            forward = {"digital": net, "naive_digital": lambda inp, net=net: naive_forward(net, inp),
                       "digital_torch_loops": lambda inp, net=net: with_torch_loops(net, inp),
                       "digital_torch_gemm": lambda inp, net=net: with_torch_gemm(net, inp),
                       "digital_time_major": lambda inp, net=net: with_time_major(net, inp),
                       "digital_dense_spikes": lambda inp, net=net: with_dense_spikes(net, inp)}[path]
        else:
            cell = "ssnu" if path.startswith("preset_hwa_ssnu") else "snu"
            net = SNUNetwork(list(config.sizes), cell=cell, threshold=config.threshold, rpu_config=_rpu_config(path))
            forward = {"preset_hwa_torch_periphery": lambda inp, net=net: with_torch_periphery(net, inp),
                       "preset_hwa_dense_spikes": lambda inp, net=net: with_dense_spikes(net, inp),
                       "preset_hwa_ssnu_torch_gemm": lambda inp, net=net: with_torch_gemm(net, inp),
                       "preset_hwa_ssnu_torch_general": lambda inp, net=net: with_torch_general_periphery(net, inp),
                       }.get(path, net)
        out[path] = (forward, net)
    return out


def make_input(config: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.bernoulli(torch.full((config.steps, config.batch, config.sizes[0]), config.rate), generator=generator)
    labels = torch.randint(0, config.sizes[-1], (config.batch,), generator=generator)
    return x, labels


def train_step(forward: Callable, net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    """zero_grad + forward + cross-entropy + backward (what is timed)."""
    for p in net.parameters():
        p.grad = None
    nn.functional.cross_entropy(forward(x), labels).backward()


@torch.no_grad()
def spike_rates(net: SNUNetwork, x: torch.Tensor) -> list[float]:
    """Mean output of every SNU layer on ``x`` (training mode, as in the timed step)."""
    rates = []
    spikes = x
    for layer in net.layers:
        spikes, _ = layer(spikes)
        rates.append(float(spikes.mean()))
    return rates


# -- the GEMM floor -------------------------------------------------------------------------------

def _gemm_operands(config: BenchConfig) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """The step's products as ``(name, A, B, bias)`` meaning ``A @ B.T (+ bias)``, B given (out, in)."""
    generator = torch.Generator().manual_seed(config.seed)
    rows, n_in, h1, h2, n_out = config.steps * config.batch, *config.sizes
    x, _ = make_input(config)
    x = x.reshape(rows, n_in)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    w1, w2, wr, br = rand(h1, n_in), rand(h2, h1), rand(n_out, h2), rand(n_out)
    s1, mean2 = (rand(rows, h1) > 1.0).float(), rand(config.batch, h2)
    g1, g2, gr = rand(rows, h1), rand(rows, h2), rand(config.batch, n_out)
    return [
        ("fwd layer 1: x W1^T", x, w1, None),
        ("fwd layer 2: y1 W2^T", s1, w2, None),
        ("fwd readout", mean2, wr, br),
        ("bwd readout input", gr, wr.t(), None),
        ("bwd readout weight", gr.t(), mean2.t(), None),
        ("bwd layer 2 input", g2, w2.t(), None),
        ("bwd layer 2 weight", g2.t(), s1.t(), None),
        ("bwd layer 1 weight", g1.t(), x.t(), None),
    ]


def _gemm_backends() -> dict[str, Callable]:
    backends: dict[str, Callable] = {
        "mkl": lambda a, b, bias: torch.addmm(bias, a, b.t()) if bias is not None else torch.mm(a, b.t()),
    }
    onednn = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available() and onednn is not None:
        backends["onednn"] = lambda a, b, bias: onednn(a, b, bias, "none", [], "")
    return backends


class GemmFloor:
    """Times every product of the step on every backend; the floor is the sum of the per-product minima."""

    def __init__(self, config: BenchConfig) -> None:
        self.backends = _gemm_backends()
        self.cases = []
        for name, a, b, bias in _gemm_operands(config):
            reference = torch.mm(a, b.t()) + (bias if bias is not None else 0)
            for backend, fn in self.backends.items():
                # each backend gets the layout it likes (contiguous copies made here, not timed)
                operands = (a.contiguous(), b.contiguous(), bias) if backend == "onednn" else (a, b, bias)
                torch.testing.assert_close(fn(*operands), reference, rtol=1e-4, atol=1e-3)
                self.cases.append((name, backend, fn, operands))
        self.choice: dict[str, str] = {}

    def time_round(self, best_of: int, clock: str = "wall") -> float:
        """ms of the floor in this round (per product: best of ``best_of`` on the fastest backend)."""
        best: dict[str, tuple[float, str]] = {}
        for name, backend, fn, operands in self.cases:
            elapsed = min(_timed(lambda: fn(*operands), clock) for _ in range(best_of))
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, backend)
        self.choice = {name: backend for name, (_, backend) in best.items()}
        return sum(t for t, _ in best.values())


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(fn: Callable, clock: str = "wall") -> float:
    now = CLOCKS[clock]
    start = now()
    fn()
    return (now() - start) * 1e3


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return {"commit": commit, "torch": torch.__version__, "aihwkit": aihwkit.__version__, "device": "cpu",
            "cpu_count": os.cpu_count()}


def run(config: BenchConfig) -> dict:
    """Median step time of every path and of the GEMM floor, spike rates and per-round ratios."""
    if config.threads:
        torch.set_num_threads(config.threads)
    load_before = os.getloadavg()
    x, labels = make_input(config)
    paths = build_paths(config)
    floor = GemmFloor(config)
    rates = {path: spike_rates(net, x) for path, (_, net) in paths.items()
             if path not in DIGITAL_PATHS[1:]}

    times: dict[str, list[float]] = {f"{path}_ms": [] for path in paths}
    times["gemm_floor_ms"] = []
    for round_index in range(config.rounds + 1):  # round 0 warms up and is dropped
        for path, (forward, net) in paths.items():
            elapsed = min(_timed(lambda: train_step(forward, net, x, labels), config.clock)
                          for _ in range(config.best_of))
            if round_index:
                times[f"{path}_ms"].append(elapsed)
        elapsed = floor.time_round(config.best_of, config.clock)
        if round_index:
            times["gemm_floor_ms"].append(elapsed)

    result: dict = {key: statistics.median(values) for key, values in times.items()}
    result["spike_rates"] = rates.get("digital") or next(iter(rates.values()), [])
    result["spike_rates_by_path"] = rates
    result["threads"] = torch.get_num_threads()
    ratios = {}
    if "digital_ms" in times:
        base = times["digital_ms"]
        for key, values in times.items():
            if key != "digital_ms":
                ratios[f"{key.removesuffix('_ms')}/digital"] = _spread([v / b for v, b in zip(values, base)])
        ratios["digital/gemm_floor"] = _spread([b / f for b, f in zip(base, times["gemm_floor_ms"])])
    if "digital_dense_spikes_ms" in times:  # the step's cost beyond its products, all of them dense
        dense = times["digital_dense_spikes_ms"]
        ratios["digital_dense_spikes/gemm_floor"] = _spread([b / f for b, f in zip(dense, times["gemm_floor_ms"])])
        if "preset_hwa_dense_spikes_ms" in times:  # the periphery's cost over the same (dense) products
            ratios["preset_hwa_dense_spikes/digital_dense_spikes"] = _spread(
                [p / b for p, b in zip(times["preset_hwa_dense_spikes_ms"], dense)])
    result["ratios"] = ratios
    result["targets"] = {name: {"median": ratios[name]["median"], "limit": limit,
                                "met": ratios[name]["median"] <= limit}
                         for name, limit in TARGETS.items() if name in ratios}
    result["gemm_backend"] = floor.choice
    result["rounds"] = config.rounds
    result["clock"] = config.clock
    result["best_of"] = config.best_of
    result["config"] = {k: v for k, v in asdict(config).items() if k not in ("rounds", "best_of", "threads")}
    result["load_avg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["environment"] = environment()
    return result


# -- peak memory --------------------------------------------------------------------------------

def _status_mib(key: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")


class SavedForBackward:
    """Context manager: MiB of the distinct storages autograd saves for the backward inside it.

    Counted through ``torch.autograd.graph.saved_tensors_hooks`` (each storage once, however many
    nodes save it or views of it): the memory the backward needs, independent of the allocator.
    Keeps no reference to the tensors (only their storage addresses and sizes)."""

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        self._sizes[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def mib(self) -> float:
        return sum(self._sizes.values()) / 2**20

    def __enter__(self) -> SavedForBackward:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def memory_of_path(config: BenchConfig, path: str) -> dict[str, float]:
    """Peak RSS rise (MiB) during the first training step of ``path`` (network and input built).

    The peak resident set (``VmHWM``) is reset just before the step, after one step of a toy-sized
    network of the same path (lazy set-up is not the step's memory). The first full step counts:
    after it the allocator keeps its freed pages resident, so later steps show no rise. Run once
    per path in a fresh process (``--memory`` does) so that no other path's pages are resident.
    Also ``saved_mib``: what the step's forward saves for its backward (:class:`SavedForBackward`),
    the part of the peak that does not depend on how the C library's allocator lays out its heap."""
    torch.set_num_threads(config.threads or torch.get_num_threads())
    # one step of a toy network of the same path first: lazy set-up (numba loading the compiled
    # loops, aihwkit's first tile call) would otherwise count as the step's memory
    toy = BenchConfig(**{**asdict(config), "paths": (path,), "steps": 2, "batch": 2, "sizes": (4, 3, 3, 2)})
    train_step(*build_paths(toy)[path], *make_input(toy))
    x, labels = make_input(config)
    forward, net = build_paths(BenchConfig(**{**asdict(config), "paths": (path,)}))[path]
    before = _status_mib("VmRSS")
    _reset_peak()
    with SavedForBackward() as saved:
        train_step(forward, net, x, labels)
    return {"rss_before_mib": before, "peak_rise_mib": _status_mib("VmHWM") - before, "saved_mib": saved.mib}


def run_memory(config: BenchConfig, repeats: int = 5, mmap_threshold: int | None = None) -> dict:
    """Peak RSS rise of one step for every path, each in its own interpreter, ``repeats`` times.

    A single process is not a measurement: with glibc's default ``malloc`` the peak varies by up
    to ~35 MiB between runs of the same code, following ``PYTHONHASHSEED`` (how the heap gets laid
    out). So every path runs once per hash seed 0..repeats-1, paths interleaved, and the median is
    reported (with min/max); ratios are median over digital's median. ``mmap_threshold`` (bytes)
    sets glibc's ``MALLOC_MMAP_THRESHOLD_`` in those processes: blocks from that size on are
    mapped and returned to the system when freed, and the dynamic threshold, which lets freed
    large blocks stay in a fragmented heap, is off. The peak is then what the step's tensors need.
    ``saved_mib`` (what the forward saves for the backward) is reported either way.
    """
    out: dict = {"steps": config.steps, "batch": config.batch, "repeats": repeats,
                 "malloc_mmap_threshold": mmap_threshold, "paths": {}}
    runs: dict[str, list[dict]] = {path: [] for path in config.paths}
    for seed in range(repeats):
        for path in config.paths:
            args = [sys.executable, __file__, "--memory-path", path, "--steps", str(config.steps),
                    "--batch", str(config.batch), "--threads", str(config.threads)]
            env = {**os.environ, "PYTHONHASHSEED": str(seed)}
            if mmap_threshold is not None:
                env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
            proc = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
            runs[path].append(json.loads(proc.stdout))
    for path, results in runs.items():
        rises = [r["peak_rise_mib"] for r in results]
        out["paths"][path] = {"peak_rise_mib": statistics.median(rises), "min_mib": min(rises), "max_mib": max(rises),
                              "rss_before_mib": statistics.median(r["rss_before_mib"] for r in results),
                              "saved_mib": statistics.median(r["saved_mib"] for r in results)}
    if "digital" in out["paths"]:
        base = out["paths"]["digital"]
        out["ratio_to_digital"] = {p: v["peak_rise_mib"] / base["peak_rise_mib"] for p, v in out["paths"].items()}
        out["saved_ratio_to_digital"] = {p: v["saved_mib"] / base["saved_mib"] for p, v in out["paths"].items()}
    return out


# -- output ------------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    """README table: median ms, x digital (min / median / max over rounds)."""
    clock = "CPU ms" if result.get("clock") == "cpu" else "ms"
    lines = [f"| path | {clock} (median of {result['rounds']} rounds) | x digital: min / median / max |", "|---|---|---|"]
    for key, value in result.items():
        if not key.endswith("_ms"):
            continue
        name = key.removesuffix("_ms")
        spread = result["ratios"].get(f"{name}/digital")
        if name == "digital":
            ratio = "1.00"
        else:  # no ratio without the digital path in the run
            ratio = "{min:.2f} / {median:.2f} / {max:.2f}".format(**spread) if spread else "-"
        lines.append(f"| {name} | {value:.1f} | {ratio} |")
    floor = result["ratios"].get("digital/gemm_floor")
    if floor:
        lines.append("")
        dense = result["ratios"].get("digital_dense_spikes/gemm_floor")
        lines.append("digital / gemm_floor: {min:.2f} / {median:.2f} / {max:.2f}; ".format(**floor)
                     + ("digital_dense_spikes / gemm_floor: {min:.2f} / {median:.2f} / {max:.2f}; ".format(**dense)
                        if dense else "")
                     + "".join(f"target {name} <= {t['limit']}: {'met' if t['met'] else 'missed'}; "
                               for name, t in result.get("targets", {}).items())
                     + "spike rates per hidden layer: " + ", ".join(f"{r:.3f}" for r in result["spike_rates"])
                     + f"; {result['threads']} thread(s); load average {result['load_avg_before_after']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    parser.add_argument("--best-of", type=int, default=BenchConfig.best_of)
    parser.add_argument("--threads", type=int, default=BenchConfig.threads, help="torch threads (0: default)")
    parser.add_argument("--steps", type=int, default=BenchConfig.steps, help="T")
    parser.add_argument("--batch", type=int, default=BenchConfig.batch, help="N")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=BenchConfig.clock,
                        help="wall time, or process CPU time (leaves out descheduled time; needs --threads 1)")
    parser.add_argument("--memory", action="store_true", help="peak RSS rise of one step per path instead of time")
    parser.add_argument("--memory-path", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--memory-repeats", type=int, default=5,
                        help="--memory: processes per path (hash seeds 0..N-1); the median is reported")
    parser.add_argument("--malloc-mmap-threshold", type=int, metavar="BYTES",
                        help="--memory: glibc MALLOC_MMAP_THRESHOLD_ for the measured processes (e.g. 131072: "
                             "freed large blocks go back to the system, no heap fragmentation in the peak)")
    parser.add_argument("--markdown", metavar="JSON", help="print the README table of a saved --json result")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="keep freed heap for the next step, as training runs do (analog_snu.heap); the "
                             "steps of --best-of after the first reuse memory anyway, so see it with --best-of 1")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as handle:
            print(markdown(json.load(handle)))
        return
    config = BenchConfig(rounds=args.rounds, best_of=args.best_of, threads=args.threads, steps=args.steps,
                         batch=args.batch, paths=tuple(args.paths), clock=args.clock)
    if args.clock == "cpu" and args.threads != 1:
        parser.error(f"--clock cpu times one thread (process CPU time sums threads); got --threads {args.threads}")
    if args.memory_path:
        print(json.dumps(memory_of_path(config, args.memory_path)))
        return
    if args.memory:
        if args.memory_repeats < 1:
            parser.error(f"--memory-repeats must be >= 1, got {args.memory_repeats}")
        if args.malloc_mmap_threshold is not None and args.malloc_mmap_threshold < 0:
            parser.error(f"--malloc-mmap-threshold must be >= 0 bytes, got {args.malloc_mmap_threshold}")
        result = run_memory(config, args.memory_repeats, args.malloc_mmap_threshold)
        print(json.dumps(result) if args.json else json.dumps(result, indent=1))
        return
    kept = keep_freed_memory() if args.keep_freed_memory else False
    result = run(config)
    result["keep_freed_memory"] = kept
    if args.json:
        print(json.dumps(result))
        return
    print(f"SNU training step, T={config.steps} N={config.batch} {'-'.join(map(str, config.sizes))}, "
          f"torch {torch.__version__}, {result['threads']} thread(s)")
    print(markdown(result))


if __name__ == "__main__":
    main()
