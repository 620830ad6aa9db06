"""Run a sweep: every trial of a spec as a Ray task, resumable; then its tables and plots.

Layout of a sweep directory ``DIR``::

    DIR/.analog_snu-sweep         marker: analog_snu made this directory
    DIR/.lock                     held by the sweep's driver process
    DIR/sweep.json                the spec and its trials (id, grid point, seed)
    DIR/trials/<trial-id>/        a normal run directory per trial (train/eval/drift-study work on it)
    DIR/results.csv, results.json one row per trial (see :mod:`analog_snu.experiments.sweep_results`)
    DIR/summary.csv, summary.json mean and std over seeds per grid point
    DIR/plot_<key>.png            the main metric vs each grid key, error bars over seeds

Every trial is one call of :func:`run_trial`, run as a Ray task (``max_retries``: a worker
that dies is replaced and its trial started again, which resumes from the trial's last
checkpoint; the run directory's lock dies with the process that held it). A trial decides
for itself what is left to do: nothing if ``final.json`` (and the ``[eval]`` result) are
there with the same config, ``resume`` if a checkpoint exists, a fresh start otherwise. So
calling the same sweep again reruns nothing that finished and resumes what was interrupted,
and a spec with more seeds or grid values only runs the new trials.

Ray runs locally (``ray.init(num_cpus=workers)``) unless ``address`` names an existing
cluster (``ray.init(address=...)``; then analog_snu must be installed on its nodes and
``DIR`` must be on a file system they share).

Threads: trials that run side by side on a local Ray instance share its CPUs, each deciding its
threads (:mod:`analog_snu.threads`) within ``usable CPUs // trials in flight`` (at least 1);
trials run one at a time in this process may use them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from analog_snu.errors import AnalogSNUError, BackendError, CheckpointError, ConfigError
from analog_snu.experiments.config import RunConfig, config_differences
from analog_snu.experiments.device_choice import DeviceChoice
from analog_snu.experiments.evaluate import evaluate_run
from analog_snu.experiments.records import read_record
from analog_snu.experiments.run_dir import CHECKPOINT_NAME, SWEEP_MARKER, is_run_directory
from analog_snu.experiments.sweep_results import drift_column, write_outputs
from analog_snu.experiments.sweep_spec import SweepSpec, Trial, expand, format_value
from analog_snu.experiments.train import RESUMABLE_CHANGES, train_run
from analog_snu.files import atomic_write_text, read_json_file, to_json, write_json
from analog_snu.threads import cpu_share, environment_threads, usable_cpus
from analog_snu.times import parse_time
from analog_snu.training.loop import ProgressMode, format_duration

__all__ = ["SweepResult", "run_sweep", "run_trial", "SWEEP_MARKER", "MAX_RETRIES"]

#: times Ray starts a trial again after its worker died
MAX_RETRIES = 3
_QUIET = ProgressMode(bars=False, epoch_lines=False)


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: one row per trial (spec order) and the files written."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    files: list[Path]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") != "ok"]


# --- one trial (runs in a Ray worker) ------------------------------------------------------------


def _stored_config(run_dir: Path) -> RunConfig | None:
    if not os.path.lexists(run_dir / "config.json"):
        return None
    return RunConfig.from_dict(read_record(run_dir)["config"])


def _eval_done(run_dir: Path, payload: dict[str, Any], device: dict[str, Any], epochs: int) -> dict[str, Any] | None:
    """The stored ``[eval]`` result of this trial, if one covers its times on its device after its epochs."""
    spec = payload["eval"]
    wanted = set(spec["times"])
    for path in sorted((run_dir / "eval").glob(f"{spec['split']}_*_seed{payload['seed']}.json")):
        try:
            result = read_json_file(path, "evaluation")
        except AnalogSNUError:
            continue
        if result.get("device") == device and result.get("epoch") == epochs and wanted <= set(_drift_by_seconds(result)):
            return result
    return None


def _drift_by_seconds(result: dict[str, Any]) -> dict[float, Any]:
    """An eval result's ``drift`` keyed by seconds: ``"1d"`` and an older file's ``"86400"`` alike."""
    drifted = result.get("drift")
    if not isinstance(drifted, dict):
        return {}
    out = {}
    for key, value in drifted.items():
        try:
            out[parse_time(key)] = value
        except ConfigError:
            continue
    return out


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or skip) one trial and evaluate it; returns its results row.

    ``payload``: ``id``, ``point``, ``seed``, ``config`` (a RunConfig dict), ``threads`` (the
    config's thread setting, which its dict leaves out), ``cpus`` (the trial's share of the CPUs,
    see :func:`_cpu_share`), ``device_source`` (the config's, which its dict also leaves out), ``run_dir`` and ``eval`` (an EvalSpec dict or
    ``None``). Errors of analog_snu (divergence, a broken checkpoint) give a row with
    ``status = "failed"`` and the message.
    """
    share = payload.get("cpus")
    if share is not None:
        # the driver's environment set no thread count, so the OMP_NUM_THREADS a Ray worker sees is
        # Ray's default for a one-CPU task; the trial's share replaces it
        os.environ.pop("OMP_NUM_THREADS", None)
    with cpu_share(share):
        return _run_trial(payload)


def _run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    run_dir = Path(payload["run_dir"])
    row: dict[str, Any] = {**payload["point"], "seed": payload["seed"], "trial": payload["id"]}
    try:
        config = RunConfig.from_dict({**payload["config"], "threads": payload.get("threads", "auto"),
                                      "device_source": payload.get("device_source")}, where=f"trial {payload['id']}")
        stored = _stored_config(run_dir)
        finished = (run_dir / "final.json").is_file()
        if finished and stored is not None and not config_differences(stored, config):
            state = "done"
        else:
            resume = (run_dir / CHECKPOINT_NAME).is_file()
            force = not resume and stored is not None  # killed in its first epoch: nothing to keep
            train_run(config, run_dir, resume=resume, force=force, progress=_QUIET)
            state = "resumed" if resume else "trained"
        row.update(read_json_file(run_dir / "final.json", "final.json", error=CheckpointError))
        if payload["eval"] is not None:
            spec = payload["eval"]
            choice = DeviceChoice.of(spec["device"] or None)  # resolved once: compared, then evaluated on
            device = choice.applied_to(config.device).to_dict()
            result = _eval_done(run_dir, payload, device, config.training.epochs)
            if result is None:
                result = evaluate_run(run_dir, device=choice, drift_times=list(spec["times"]),
                                      split=spec["split"], seed=payload["seed"])
                state = "evaluated" if state == "done" else state
            for seconds in spec["times"]:
                row[drift_column(seconds)] = _drift_by_seconds(result)[seconds]
        row.update(status="ok", state=state)
    except AnalogSNUError as exc:
        row.update(status="failed", state="failed", error=f"{type(exc).__name__}: {exc}")
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


# --- the driver -------------------------------------------------------------------------------------


def _claim(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and not (out / SWEEP_MARKER).is_file():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            raise ConfigError(f"--out {out} is not a sweep directory of analog-snu (no {SWEEP_MARKER}) and is not "
                              f"empty ({', '.join(entries[:5])}); choose a new or empty directory")
    try:
        (out / "trials").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create sweep directory {out}: {exc.strerror or exc}") from None
    atomic_write_text(out / SWEEP_MARKER, to_json({"format": "analog_snu.sweep", "version": 1}) + "\n")


def _check_existing(trials: Sequence[Trial], out: Path) -> None:
    """Refuse, before anything runs, trial directories that hold a run of another config."""
    for trial in trials:
        run_dir = out / "trials" / trial.id
        if not run_dir.exists():
            continue
        if not is_run_directory(run_dir) and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir} is not a run directory of analog-snu; remove it or use another --out")
        stored = _stored_config(run_dir)
        if stored is None:
            continue
        differ = config_differences(stored, trial.config, RESUMABLE_CHANGES)
        if differ:
            raise ConfigError(f"{run_dir} holds a run of another config (fields {differ[:6]}); the spec changed "
                              "since it ran: use a new --out, or remove that trial's directory")
        if (run_dir / "final.json").is_file() and trial.config.training.epochs < stored.training.epochs:
            raise ConfigError(f"{run_dir} already ran {stored.training.epochs} epochs, the spec asks for "
                              f"{trial.config.training.epochs}; use a new --out")


def _cpu_share(in_flight: int | None) -> int | None:
    """Each trial's share of this machine's CPUs when ``in_flight`` trials run side by side here
    (None: not limited, as for trials run one at a time in this process, on a cluster's nodes, or
    where the user's OMP_NUM_THREADS/MKL_NUM_THREADS decides)."""
    if in_flight is None or in_flight <= 1 or environment_threads() is not None:
        return None
    return max(1, usable_cpus() // in_flight)


def _payload(trial: Trial, out: Path, spec: SweepSpec, cpus: int | None) -> dict[str, Any]:
    return {"id": trial.id, "point": trial.point, "seed": trial.seed, "config": trial.config.to_dict(),
            "threads": trial.config.threads, "cpus": cpus, "device_source": trial.config.device_source,
            "run_dir": str((out / "trials" / trial.id).resolve()),
            "eval": None if spec.eval is None else spec.eval.to_dict()}


def _progress_line(row: dict[str, Any], done: int, total: int, ran: int, remaining: int, elapsed: float) -> str:
    point = ", ".join(f"{k}={format_value(row[k])}" for k in row.get("_keys", [])) or "base"
    if row.get("status") != "ok":
        what = f"FAILED: {row.get('error', '?')}"
    else:
        metric = row.get("metric")
        parts = [f"test {metric} {row[f'test_{metric}']:.4f}"] if metric and f"test_{metric}" in row else []
        parts += [f"{k.replace('_', ' ')} {v:.4f}" for k, v in row.items() if k.startswith("drift_")]
        what = ", ".join(parts) + ("" if row.get("state") != "done" else " (already done)")
    eta = format_duration(elapsed / ran * remaining) if ran and remaining else "0.0 s"
    return (f"trial {done}/{total} [{point}, seed={row['seed']}]: {what} ({format_duration(row.get('seconds', 0.0))}); "
            f"elapsed {format_duration(elapsed)}, ETA {eta}")


def _run_in_process(payloads: list[dict[str, Any]], on_done: Callable[[dict[str, Any]], None]) -> None:
    for payload in payloads:
        on_done(run_trial(payload))


def _run_on_ray(payloads: list[dict[str, Any]], on_done: Callable[[dict[str, Any]], None], *,
                address: str | None, workers: int | None) -> None:
    try:
        import ray  # noqa: PLC0415 - Ray is heavy; only sweeps need it
    except ImportError as exc:
        raise ConfigError(f"analog-snu sweep needs Ray: pip install 'ray>=2.9' ({exc})") from None
    started_here = not ray.is_initialized()
    if started_here:
        # on a loaded machine Ray's metrics agent can take a minute to start; the raylet's default
        # wait for it is shorter and it then aborts (Ray 2.60)
        os.environ.setdefault("RAY_agent_register_timeout_ms", "600000")
        try:
            if address:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, logging_level="ERROR",
                         log_to_driver=False)
        except Exception as exc:  # Ray raises plain Exceptions (ConnectionError, timeouts, ...)
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise BackendError(f"could not start or reach {where}: {type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    try:
        task = ray.remote(run_trial)
        limit = workers if (address and workers) else len(payloads)
        queue = list(payloads)
        in_flight: dict[Any, dict[str, Any]] = {}
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                payload = queue.pop(0)
                gpus = 1 if payload["config"].get("accelerator") == "cuda" else 0
                ref = task.options(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES,
                                   retry_exceptions=False).remote(payload)
                in_flight[ref] = payload
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            payload = in_flight.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except Exception as exc:  # a bug in a trial, or a worker that died MAX_RETRIES + 1 times
                row = {**payload["point"], "seed": payload["seed"], "trial": payload["id"], "status": "failed",
                       "state": "failed", "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"}
            on_done(row)
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    use_ray: bool = True,
    progress: bool = True,
) -> SweepResult:
    """Run every trial of ``spec`` under ``out`` (see the module docstring) and write the tables and plots.

    All trial configs are validated, and existing trial directories checked against them,
    before anything runs. ``workers``: CPUs of a local Ray instance (default: all), or the
    most trials in flight on a cluster at ``address``. ``use_ray=False`` runs the trials one
    after the other in this process (same results; ``analog-snu sweep --in-process``: for a
    machine with few cores, tests and debugging).
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be an int >= 1, got {workers!r}")
    if not use_ray and (address is not None or workers is not None):
        raise ConfigError("--in-process runs without Ray: --address and --workers do not apply")
    trials = expand(spec)
    out = Path(out)
    _claim(out)
    lock = FileLock(str(out / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise CheckpointError(f"sweep {out} is in use by another analog-snu process (lock {out / '.lock'})") from None
    try:
        _check_existing(trials, out)
        write_json(out / "sweep.json", {"spec": spec.to_dict(), "trials": [
            {"id": t.id, "point": t.point, "seed": t.seed} for t in trials]})
        in_flight = min(workers or os.cpu_count() or 1, len(trials)) if use_ray and address is None else None
        share = _cpu_share(in_flight)
        payloads = [_payload(trial, out, spec, share) for trial in trials]
        rows: dict[str, dict[str, Any]] = {}
        keys = list(spec.grid)
        started = time.perf_counter()
        ran = 0

        def on_done(row: dict[str, Any]) -> None:
            nonlocal ran
            rows[row["trial"]] = row
            if row.get("state") != "done":
                ran += 1
            if progress:
                remaining = len(trials) - len(rows)
                line = _progress_line({**row, "_keys": keys}, len(rows), len(trials), ran, remaining,
                                      time.perf_counter() - started)
                print(line, flush=True)

        if use_ray:
            _run_on_ray(payloads, on_done, address=address, workers=workers)
        else:
            _run_in_process(payloads, on_done)
        ordered = [rows[t.id] for t in trials]
        summary, files = write_outputs(out, ordered, keys, spec)
    finally:
        lock.release()
    return SweepResult(ordered, summary, files)
