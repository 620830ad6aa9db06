"""Threads beside other work: the package's default threads against one thread and against all threads.

Workloads, each timed in a fresh process (thread pools are per process):

- ``network_digital`` / ``network_hwa``: the network of ``bench_snu.py`` (784-256-256-10 SNU, T = 20,
  N = 64, Bernoulli input spikes), ``--steps`` training steps after one warm-up step, digital or on
  preset ``pcm_joshi2020`` HWA tiles. The process applies the package's thread policy for this
  network's work, as ``analog-snu train`` does; its steps are timed.
- ``digits_digital`` / ``digits_hwa``: ``analog-snu train --task digits`` (``--device pcm_joshi2020
  --training hwa``), timed as a whole process.

Settings: ``default`` (no thread variable in the environment: the package decides), ``one``
(``OMP_NUM_THREADS`` = ``OPENBLAS_NUM_THREADS`` = ``MKL_NUM_THREADS`` = 1), ``all`` (the same = the
usable CPUs). Cases: ``quiet`` (default, one, all) and ``busy`` (default, one) beside one busy
process this script starts (a pure-Python spin loop) and stops. One interleaved run: every round
times every workload in every case and setting, the order reversed every other round; ratios are
taken within a round, then the median (min, max) over rounds:

- ``busy default/one``: default time / one-thread time beside the busy process (target <= 1.25);
- ``quiet default/best``: default time / the better of one and all threads (target <= 1.05).

Measure on an otherwise quiet machine (the ``uptime`` before and after is in the output).

    python benchmarks/bench_contention.py                 # table
    python benchmarks/bench_contention.py --json          # one JSON object
    python benchmarks/bench_contention.py --toy --rounds 1 --workloads network_digital   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

WORKLOADS = ("network_digital", "network_hwa", "digits_digital", "digits_hwa")
CASES = {"quiet": ("default", "one", "all"), "busy": ("default", "one")}
TARGETS = {"busy default/one": 1.25, "quiet default/best": 1.05}
PRESET = "pcm_joshi2020"
#: the variables a user sets to fix the thread counts (removed for ``default``)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                    "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS")
#: a process that keeps one CPU busy
SPIN = "while True:\n    pass\n"
#: the command line's process, reporting the torch threads it ended with on its last stderr line
_CLI = ("import json, sys, torch\nfrom analog_snu.cli import main\ncode = main(sys.argv[1:])\n"
        "print(json.dumps({'threads': torch.get_num_threads()}), file=sys.stderr)\nsys.exit(code)\n")


@dataclass
class ContentionConfig:
    rounds: int = 3
    workloads: tuple[str, ...] = WORKLOADS
    steps: int = 50
    """Training steps of the network workloads (after one warm-up step)."""
    toy: bool = False
    """Toy sizes (a smoke run: network 12-8-6-3, T = 3, N = 4; digits 1 epoch of 32 images, 8 units)."""
    settle: float = 0.5
    """Seconds the busy process runs before a busy timing starts."""


# -- one timing ---------------------------------------------------------------------------------


def usable_cpus() -> int:
    from analog_snu.threads import usable_cpus as usable  # noqa: PLC0415 - the child processes import it themselves

    return usable()


def setting_env(setting: str, base: dict[str, str] | None = None, cpus: int | None = None) -> dict[str, str]:
    """The environment of a timed process: ``base`` without thread variables, plus the setting's count."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in THREAD_VARIABLES}
    if setting == "default":
        return env
    count = 1 if setting == "one" else (cpus or usable_cpus())
    return {**env, "OMP_NUM_THREADS": str(count), "OPENBLAS_NUM_THREADS": str(count), "MKL_NUM_THREADS": str(count)}


def command(workload: str, config: ContentionConfig, out: Path) -> list[str]:
    """The command line that times ``workload`` (its last output line is a JSON object)."""
    if workload.startswith("network_"):
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", workload, "--steps", str(config.steps)]
        return argv + (["--toy"] if config.toy else [])
    argv = [sys.executable, "-c", _CLI, "train", "--task", "digits", "--out", str(out), "--force", "--quiet"]
    if workload == "digits_hwa":
        argv += ["--device", PRESET, "--training", "hwa"]
    if config.toy:
        argv += ["--train-limit", "32", "--epochs", "1", "--layers", "8"]
    return argv


def parse_result(workload: str, wall: float, stdout: str, stderr: str) -> dict:
    """``{"seconds", "threads"}`` of a finished process: the network child's own step time, or the
    command line's wall time with the threads it reported."""
    stream = stdout if workload.startswith("network_") else stderr
    lines = [line for line in stream.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{workload}: no result line in its output:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    reported = json.loads(lines[-1])
    seconds = reported["seconds"] if "seconds" in reported else wall
    return {"seconds": seconds, "threads": reported.get("threads")}


def run_process(workload: str, setting: str, config: ContentionConfig, out: Path) -> dict:
    """Time ``workload`` under ``setting`` in a fresh process."""
    started = time.perf_counter()
    proc = subprocess.run(command(workload, config, out), env=setting_env(setting), capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} ({setting}) failed with code {proc.returncode}:\n{proc.stderr[-2000:]}")
    return parse_result(workload, wall, proc.stdout, proc.stderr)


@contextmanager
def busy_process(settle: float) -> Iterator[None]:
    """One process spinning on a CPU for the duration of the block (started and stopped here)."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(settle)
        yield
    finally:
        spinner.kill()
        spinner.wait()


# -- the network child ----------------------------------------------------------------------------


def time_network(workload: str, steps: int, toy: bool) -> dict:
    """``steps`` training steps of the benchmark network after one warm-up, with the package's thread policy."""
    import torch  # noqa: PLC0415 - the parent process does not need torch
    from torch import nn  # noqa: PLC0415

    from analog_snu.models import SNUNetwork  # noqa: PLC0415
    from analog_snu.pcm import preset  # noqa: PLC0415
    from analog_snu.threads import apply_threads  # noqa: PLC0415
    from analog_snu.tiles import device_rpu_config  # noqa: PLC0415

    sizes, time_steps, batch = ((12, 8, 6, 3), 3, 4) if toy else ((784, 256, 256, 10), 20, 64)
    torch.manual_seed(0)
    rpu_config = device_rpu_config(preset(PRESET), "hwa") if workload == "network_hwa" else None
    net = SNUNetwork(list(sizes), threshold=0.5, rpu_config=rpu_config)
    generator = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((time_steps, batch, sizes[0]), 0.15), generator=generator)
    labels = torch.randint(0, sizes[-1], (batch,), generator=generator)
    # as a run does: the work is the largest product of a batch (analog_snu.experiments.run_threads)
    decision = apply_threads("auto", work=time_steps * batch * max(a * b for a, b in zip(sizes, sizes[1:])))

    def step() -> None:
        for p in net.parameters():
            p.grad = None
        nn.functional.cross_entropy(net(x), labels).backward()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"seconds": time.perf_counter() - started, "threads": torch.get_num_threads(), "decision": decision.reason}


# -- the interleaved run ----------------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def ratios(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per-round ratios (see the module docstring) from ``{"<case> <setting>": [seconds per round]}``."""
    busy = [d / o for d, o in zip(times["busy default"], times["busy one"])]
    quiet = [d / min(o, a) for d, o, a in zip(times["quiet default"], times["quiet one"], times["quiet all"])]
    return {"busy default/one": _spread(busy), "quiet default/best": _spread(quiet)}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run(config: ContentionConfig, timer: Callable[[str, str, ContentionConfig, Path], dict] = run_process,
        busy: Callable[[float], object] = busy_process) -> dict:
    """Every round: every workload, quiet then busy (reversed every other round); see the module docstring."""
    result: dict = {"uptime_before": _uptime(), "cpus": usable_cpus(), "config": asdict(config), "commit": _commit()}
    times = {w: {f"{c} {s}": [] for c, settings in CASES.items() for s in settings} for w in config.workloads}
    threads = {w: {key: [] for key in times[w]} for w in config.workloads}
    with tempfile.TemporaryDirectory(prefix="bench_contention_") as folder:
        for round_index in range(config.rounds):
            reverse = round_index % 2 == 1
            for workload in config.workloads:
                cases = list(CASES)[::-1] if reverse else list(CASES)
                for case in cases:
                    settings = CASES[case][::-1] if reverse else CASES[case]
                    with busy(config.settle) if case == "busy" else _nothing():
                        for setting in settings:
                            timed = timer(workload, setting, config, Path(folder) / workload)
                            times[workload][f"{case} {setting}"].append(timed["seconds"])
                            threads[workload][f"{case} {setting}"].append(timed["threads"])
    result["uptime_after"] = _uptime()
    result["workloads"] = {w: {"seconds": times[w], "threads": threads[w], "ratios": ratios(times[w])}
                           for w in config.workloads}
    result["targets"] = TARGETS
    result["within_target"] = {w: {name: spread["median"] <= TARGETS[name] for name, spread in entry["ratios"].items()}
                               for w, entry in result["workloads"].items()}
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def table(result: dict) -> str:
    lines = ["| workload | busy default/one (<= 1.25) | quiet default/best (<= 1.05) | threads: busy default, "
             "quiet default |", "|---|---|---|---|"]
    for name, entry in result["workloads"].items():
        cells = []
        for ratio, spread in entry["ratios"].items():
            mark = "ok" if result["within_target"][name][ratio] else "MISSED"
            cells.append("{median:.2f} ({min:.2f}-{max:.2f}) {mark}".format(**spread, mark=mark))
        used = f"{entry['threads']['busy default']}, {entry['threads']['quiet default']}"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {used} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=ContentionConfig.rounds)
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=ContentionConfig.steps, help="training steps of the network workloads")
    parser.add_argument("--toy", action="store_true", help="toy sizes: a smoke run, not a measurement")
    parser.add_argument("--child", choices=[w for w in WORKLOADS if w.startswith("network_")], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be >= 1, got {args.rounds} and {args.steps}")
    if args.child:
        print(json.dumps(time_network(args.child, args.steps, args.toy)))
        return
    config = ContentionConfig(rounds=args.rounds, workloads=tuple(args.workloads), steps=args.steps, toy=args.toy)
    result = run(config)
    if args.json:
        print(json.dumps(result))
        return
    print(f"threads beside other work: {config.rounds} round(s), {result['cpus']} usable CPUs, commit {result['commit']}")
    print(table(result))
    print(f"uptime before: {result['uptime_before']}\nuptime after:  {result['uptime_after']}")


if __name__ == "__main__":
    main()
