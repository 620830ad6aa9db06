"""Train a run: build, resume, checkpoint every epoch, guard against divergence, finish.

Determinism: the weights are initialised from ``torch.manual_seed(seed)``; epoch ``e`` draws
its shuffle and spikes from a generator seeded with ``(seed, e)``; the global torch RNG state
is checkpointed; evaluations draw their noise from a forked RNG seeded with ``(seed, split)``,
so they neither disturb training nor depend on it. A run killed after any epoch and resumed
ends with the same weights as an uninterrupted one (bit for bit on CPU for digital training
and for HWA on torch inference tiles; aihwkit's C++ tiles draw their noise from their own
generator, which no checkpoint can capture).
"""

from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analog_snu.errors import CheckpointError, DivergenceError, InputValueError
from analog_snu.experiments.accelerator import resolve_accelerator
from analog_snu.experiments.checkpoint import (
    HARDWARE_STATE,
    RULE_STATE,
    Checkpoint,
    checkpoint_bytes,
    read_checkpoint,
    restore_model,
    restore_optimizer,
    restore_rng,
)
from analog_snu.experiments.config import RunConfig, config_differences, flatten, spec_for
from analog_snu.experiments.records import evaluate_split, read_record, record_bytes, record_config, write_record
from analog_snu.experiments.run_dir import BEST_CHECKPOINT_NAME, RunDirectory
from analog_snu.experiments.run_threads import apply_run_threads
from analog_snu.files import replace_files, to_json, write_json
from analog_snu.heap import keep_freed_memory
from analog_snu.models import ModelSpec, build_model
from analog_snu.tasks import Task, load_task
from analog_snu.tiles.crossbar import crossbars
from analog_snu.times import format_time
from analog_snu.training import (
    HILHook,
    LearningRule,
    init_weights,
    learning_rule_name,
    make_learning_rule,
    make_optimizer,
    make_scheduler,
    scheduler_step,
)
from analog_snu.training.loop import ProgressMode, epoch_line, progress_mode, train_epoch

__all__ = ["TrainResult", "train_run", "run_header", "load_task_for", "RESUMABLE_CHANGES"]

#: config fields a resumed run may change: more epochs, a lower learning rate after divergence, a
#: longer patience (a run stopped early continues as if it had been started with that patience).
#: Not the weight decay: it changes the objective the earlier epochs were trained for (a run resumed
#: with another one would be no run its record can describe), and a lower lr is the cure for divergence.
RESUMABLE_CHANGES = ("training.epochs", "training.lr", "training.patience")


@dataclass
class TrainResult:
    """What :func:`train_run` returns: the trained model, its spec and metrics."""

    model: nn.Module
    spec: ModelSpec
    history: list[dict[str, Any]]
    final: dict[str, Any]
    run_dir: Path


def load_task_for(config: RunConfig) -> Task:
    """The task's data for ``config``."""
    return load_task(config.task.name, config.task.options(), seed=config.training.seed)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _check_resumable(stored: RunConfig, config: RunConfig) -> None:
    differ = config_differences(stored, config, RESUMABLE_CHANGES)
    if differ:
        old, new = flatten(stored.to_dict()), flatten(config.to_dict())
        details = ", ".join(f"{k}: checkpoint {old.get(k)!r} vs now {new.get(k)!r}" for k in differ[:6])
        raise CheckpointError(f"the checkpoint was made with a different config ({details}); only "
                              f"{', '.join(RESUMABLE_CHANGES)} may change on --resume")


def _metrics_files(run_dir: Path, history: list[dict[str, Any]]) -> dict[Path, bytes]:
    """``metrics.json`` and ``metrics.csv`` of ``history``, as file contents."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return {run_dir / "metrics.json": (to_json(history) + "\n").encode(),
            run_dir / "metrics.csv": buffer.getvalue().encode()}


def _non_finite_weights(model: nn.Module) -> list[str]:
    # aihwkit's placeholder parameters hold no data; tile weights are read through their crossbar handles
    bad = [name for name, p in model.named_parameters()
           if type(p) is nn.Parameter and p.is_floating_point() and not torch.isfinite(p).all()]
    for crossbar in crossbars(model):
        if not torch.isfinite(crossbar.weights()).all():
            bad.append(f"{crossbar.layer} (tile weights)")
    return bad


def _divergence(run_dir: Path, epoch: int, train_loss: float, valid_loss: float, model: nn.Module,
                config: RunConfig) -> DivergenceError | None:
    problems = []
    if not math.isfinite(train_loss):
        problems.append(f"train loss {train_loss}")
    if not math.isfinite(valid_loss):
        problems.append(f"valid loss {valid_loss}")
    bad = _non_finite_weights(model)
    if bad:
        problems.append(f"non-finite weights in {', '.join(bad[:3])}")
    return _diverged(run_dir, epoch, problems, config) if problems else None


def _diverged(run_dir: Path, epoch: int, problems: list[str], config: RunConfig) -> DivergenceError:
    """The error of a run that diverged in ``epoch``, saying what is kept and how to go on."""
    lower = config.training.lr / 10
    if epoch > 1:
        kept = (f"the checkpoint of epoch {epoch - 1} is kept; resume with a lower learning rate: "
                f"analog-snu train --resume {run_dir} --lr {lower:g}")
    else:
        kept = f"nothing was saved; start again with a lower learning rate (--lr {lower:g} --force)"
    return DivergenceError(f"training diverged in epoch {epoch} ({'; '.join(problems)}); {kept}")


@dataclass
class _Trainee:
    """What a run trains and how: the network, its optimizer and schedule, the learning rule and
    the hardware in the loop (``None``: the network alone)."""

    model: nn.Module
    spec: ModelSpec
    optimizer: torch.optim.Optimizer
    scheduler: Any
    rule: LearningRule
    hardware: HILHook | None


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool | ProgressMode = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    task: Task | None = None,
    label: str | None = None,
) -> TrainResult:
    """Train ``config`` in ``run_dir`` (created if needed), checkpointing after every epoch.

    ``resume`` continues from the checkpoint (its config must match, but for
    :data:`RESUMABLE_CHANGES`); ``force`` replaces an existing run, but only after the new one
    has been validated and built. ``on_epoch_end(epoch, row)`` is called after each epoch's
    checkpoint is on disk. ``task`` reuses already loaded data. The name the device came by
    (:attr:`RunConfig.device_source <analog_snu.experiments.config.RunConfig.device_source>`) is
    recorded with the run; a resumed run keeps the one it has when the config names none. Unless ``progress`` is off, one line
    says what is trained before the first epoch line (:func:`run_header`); ``label`` goes in front
    of it and of every epoch line, so several trainings in one output tell apart.
    """
    mode = progress if isinstance(progress, ProgressMode) else progress_mode(no_progress=not progress)
    accelerator = resolve_accelerator(config.accelerator)
    with RunDirectory(run_dir, create=True) as run:
        run.check_request(resume=resume, force=force)
        task = task or load_task_for(config)
        trainee = _build(config, task, accelerator)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if resume:
            history, start_epoch, config = _resume(run, config, trainee)
        else:
            if force:
                run.clear()
            write_record(run.path, config)
        if mode.epoch_lines:
            print(run_header(config, trainee.spec, run.path, start_epoch=start_epoch, label=label), flush=True)
        record = record_bytes(config)
        started = time.perf_counter()
        for epoch in range(start_epoch, config.training.epochs):
            row = _train_and_validate(run.path, config, task, trainee, epoch, mode)
            history.append(row)
            _save_epoch(run, config, trainee, history, record)
            if mode.epoch_lines:
                print(epoch_line(epoch + 1, config.training.epochs, row, elapsed=time.perf_counter() - started,
                                 label=label), flush=True)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
            if trainee.scheduler is not None:
                scheduler_step(trainee.scheduler, row["valid_loss"])
            if _stops_early(config, history, mode, label):
                break
        final = _final(run.path, config, task, trainee, history)
        if trainee.hardware is not None and mode.epoch_lines:
            print(hil_line(final["hil"]), flush=True)
        write_json(run.path / "final.json", final)
    return TrainResult(trainee.model, trainee.spec, history, final, run.path)


def _build(config: RunConfig, task: Task, accelerator: torch.device) -> _Trainee:
    """The network (seeded, initialised, on the run's accelerator), optimizer, schedule, learning rule
    and hardware of ``config``."""
    spec = spec_for(config, task.head, task.input_size, task.output_size)
    apply_run_threads(config, task)  # threads for the size of this run's work (analog_snu.threads)
    keep_freed_memory()  # each step reuses the last one's freed memory (analog_snu.heap)
    torch.manual_seed(config.training.seed)
    model = build_model(spec).to(accelerator)
    if config.training.weight_init != "default":
        init_weights(model, config.training.weight_init, seed=config.training.seed)
    optimizer = make_optimizer(model, config.training.optimizer, lr=config.training.lr,
                               weight_decay=config.training.weight_decay)
    return _Trainee(model, spec, optimizer, _scheduler(config, optimizer), _learning_rule(config, model),
                    _hardware(config, model))


def _resume(run: RunDirectory, config: RunConfig, trainee: _Trainee) -> tuple[list[dict[str, Any]], int, RunConfig]:
    """Restore ``trainee`` and the RNG from the run's checkpoint; the history so far, the number of
    epochs done and ``config`` with the run's device source when it names none."""
    checkpoint = read_checkpoint(run.checkpoint)
    extra = checkpoint.meta["extra"]
    stored = RunConfig.from_dict(extra.get("config"), where=f"{run.checkpoint} config")
    recorded = read_record(run.path, expect=stored)
    _check_resumable(stored, config)
    if config.device_source is None:  # the device is the checkpoint's: so is the name it came by
        config = config.with_device_source(record_config(recorded).device_source)
    restore_model(trainee.model, checkpoint)
    _restore_optimizer(trainee, checkpoint, lr=config.training.lr if stored.training.lr != config.training.lr else None)
    trainee.rule.load_state_dict(checkpoint.state(RULE_STATE))
    restore_rng(checkpoint)
    if trainee.hardware is not None:
        trainee.hardware.load_state_dict(checkpoint.state(HARDWARE_STATE))
    done = int(extra["epoch"])
    if run.finished and config.training.epochs <= done:
        raise CheckpointError(
            f"{run.path} already holds a finished run of {done} epochs; pass --epochs N with "
            f"N > {done} to extend it, or --force to overwrite it"
        )
    return list(extra["history"]), done, config


def _restore_optimizer(trainee: _Trainee, checkpoint: Checkpoint, lr: float | None) -> None:
    """The optimizer's state from ``checkpoint`` and its schedule's, replayed from the history;
    ``lr``: a new learning rate (a lower one after divergence)."""
    optimizer, scheduler = trainee.optimizer, trainee.scheduler
    if scheduler is not None:  # the schedule's state, replayed from the history
        with warnings.catch_warnings():  # replayed steps come before any optimizer step by design
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            for row in checkpoint.meta["extra"]["history"]:
                scheduler_step(scheduler, row["valid_loss"])
    scheduled = [group["lr"] for group in optimizer.param_groups]
    restore_optimizer(optimizer, checkpoint)
    if scheduler is not None:
        # the checkpoint holds the rate its epoch ran at, written before that epoch's scheduler
        # step: the next epoch runs at the replayed rate (else a resume on a step boundary
        # would repeat the old rate for one epoch)
        for group, rate in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = rate
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr


def _train_and_validate(run_dir: Path, config: RunConfig, task: Task, trainee: _Trainee, epoch: int,
                        mode: ProgressMode) -> dict[str, Any]:
    """Train epoch ``epoch`` (from 0) and validate; its metrics row. A diverged epoch raises
    :class:`~analog_snu.errors.DivergenceError`."""
    start = time.perf_counter()
    batches = task.train_batches(_epoch_generator(config.training.seed, epoch))
    desc = f"{config.task.name} epoch {epoch + 1}/{config.training.epochs}"
    if trainee.hardware is not None:
        desc += " (HIL)"
    try:
        train_loss = train_epoch(trainee.model, batches, trainee.optimizer, task.loss_fn(), trainee.rule,
                                 trainee.hardware, desc=desc, progress=mode)
    except InputValueError as exc:  # non-finite weights refused (by the chip, by GRAPES)
        raise _diverged(run_dir, epoch + 1, [str(exc)], config) from None
    train_s = time.perf_counter() - start
    valid = evaluate_split(task, trainee.model, "valid", config.training.seed)
    diverged = _divergence(run_dir, epoch + 1, train_loss, valid["loss"], trainee.model, config)
    if diverged is not None:
        raise diverged
    return {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid["loss"],
            f"valid_{task.metric}": valid[task.metric], "train_s": round(train_s, 3),
            "epoch_s": round(time.perf_counter() - start, 3)}


def _save_epoch(run: RunDirectory, config: RunConfig, trainee: _Trainee, history: list[dict[str, Any]],
                record: bytes) -> None:
    """The checkpoint (and the best one), record, metrics and hardware summary after the last epoch of
    ``history``, replaced together."""
    epoch = history[-1]["epoch"]
    states = {RULE_STATE: trainee.rule.state_dict()}
    if trainee.hardware is not None:
        states[HARDWARE_STATE] = trainee.hardware.state_dict()
    checkpoint_file = checkpoint_bytes(trainee.model, trainee.spec, optimizer=trainee.optimizer,
                                       extra={"config": config.to_dict(), "epoch": epoch, "history": history},
                                       states=states)
    # One epoch's files change together, or not at all (files.replace_files): a failed write
    # (disk full, no permission) leaves the previous epoch's checkpoint, record and metrics
    # agreeing with each other. On --resume, config.json (epochs, lr may have changed) goes with
    # the first new checkpoint, and a finished run's final.json is removed only with it.
    files = {run.checkpoint: checkpoint_file, run.path / "config.json": record, **_metrics_files(run.path, history)}
    if _best_epoch(history) == epoch:
        files[run.path / BEST_CHECKPOINT_NAME] = checkpoint_file
    if trainee.hardware is not None:
        files[run.path / "hil.json"] = (to_json(trainee.hardware.summary()) + "\n").encode()
    replace_files(files, remove=[run.path / "final.json"])


def _stops_early(config: RunConfig, history: list[dict[str, Any]], mode: ProgressMode, label: str | None) -> bool:
    """True when the validation loss has not improved for ``training.patience`` epochs (said in a line)."""
    patience = config.training.patience
    if patience is None or history[-1]["epoch"] - _best_epoch(history) < patience:
        return False
    if mode.epoch_lines:
        print(f"{f'[{label}] ' if label else ''}early stop: no better validation loss for {patience} epochs",
              flush=True)
    return True


def _final(run_dir: Path, config: RunConfig, task: Task, trainee: _Trainee,
           history: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's ``final.json``: test metrics of the selected epoch (the best one's weights restored
    into the model when ``training.select`` is ``"best"``), and the hardware's summary."""
    model, seed = trainee.model, config.training.seed
    test = evaluate_split(task, model, "test", seed)
    last = {"epoch": history[-1]["epoch"], f"test_{task.metric}": test[task.metric], "test_loss": test["loss"]}
    best_epoch = _best_epoch(history)
    if config.training.select == "best" and best_epoch != last["epoch"]:
        restore_model(model, read_checkpoint(run_dir / BEST_CHECKPOINT_NAME))
        test = evaluate_split(task, model, "test", seed)
    final = {"task": config.task.name, "metric": task.metric, f"test_{task.metric}": test[task.metric],
             # every figure the task reports (JSB: the four NLL averages papers use)
             **{f"test_{key}": value for key, value in test.items()},
             "test_loss": test["loss"], "epochs": config.training.epochs,
             "epoch": best_epoch if config.training.select == "best" else last["epoch"],
             "select": config.training.select, "best_valid_epoch": best_epoch, "last": last,
             "stopped_early": last["epoch"] < config.training.epochs,
             "mean_train_s_per_epoch": sum(r["train_s"] for r in history) / max(len(history), 1)}
    if trainee.hardware is not None:
        final["hil"] = trainee.hardware.summary()
    return final


def run_header(config: RunConfig, spec: ModelSpec, run_dir: Path, *, start_epoch: int = 0,
               label: str | None = None) -> str:
    """What is trained, in one line: task, network, device and mode, optimizer (and weight decay, when
    there is one), epochs, run directory.

    >>> from analog_snu.experiments import build_config, spec_for
    >>> config = build_config(flags={"task": "digits", "device": "pcm_joshi2020"})
    >>> run_header(config, spec_for(config, "mean", 64, 10), Path("runs/x"))
    'training digits: snu 64-128-10, hwa on pcm_joshi2020; adam lr 0.005, 15 epochs, seed 0; run directory runs/x'
    """
    t = config.training
    sizes = "-".join(str(n) for n in (spec.input_size, *spec.hidden, spec.output_size))
    if config.device is None:
        where = "digital"
    else:
        name = config.device.name
        source = config.device_source
        source = f" ({source})" if source and Path(source).stem != name else ""
        where = f"{t.mode} on {name}{source}"
    if t.mode == "hil":
        where += f", {config.hil.scheme} scheme"
    rule = {"bp": "", "fa": ", feedback alignment", "dfa": ", direct feedback alignment"}[t.rule]
    rule += f", {t.grapes} GRAPES" if t.grapes else ""
    decay = f", weight decay {t.weight_decay:g}" if t.weight_decay else ""
    start = f", from epoch {start_epoch + 1}" if start_epoch else ""
    head = f"[{label}] " if label else ""
    what = "resuming" if start_epoch else "training"
    return (f"{head}{what} {config.task.name}: {config.model.cell} {sizes}, {where}{rule}; {t.optimizer} lr {t.lr:g}{decay}, "
            f"{t.epochs} epoch{'s' if t.epochs != 1 else ''}{start}, seed {t.seed}; run directory {run_dir}")


def _best_epoch(history: list[dict[str, Any]]) -> int:
    """The epoch with the lowest validation loss (the first of equals)."""
    return min(history, key=lambda row: row["valid_loss"])["epoch"]


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer) -> Any:
    t = config.training
    params: dict[str, Any] = {}
    if t.schedule == "step":
        params = {"step_size": t.step_size, **({"gamma": t.gamma} if t.gamma is not None else {})}
    elif t.schedule == "cosine":
        params = {"t_max": t.epochs}
    elif t.schedule == "plateau" and t.gamma is not None:
        params = {"factor": t.gamma}
    return make_scheduler(optimizer, t.schedule, **params)


def _learning_rule(config: RunConfig, model: nn.Module) -> LearningRule:
    """The run's learning rule on ``model``: backprop, FA or DFA, with GRAPES or not."""
    t = config.training
    return make_learning_rule(model, learning_rule_name(t.rule, t.grapes), seed=t.seed,
                              grapes_variant=t.grapes or "propagating")


def _hardware(config: RunConfig, model: nn.Module) -> HILHook | None:
    """The chip in the loop of a ``--training hil`` run (``None`` otherwise), made of the device
    the model's tiles were built for (the run's, through its spec)."""
    settings = config.hil
    if settings is None:
        return None
    return HILHook(model, settings, seed=config.training.seed)


def hil_line(summary: dict[str, Any]) -> str:
    """Device wear of a HIL run in one line."""
    parts = [f"HIL ({summary['scheme']}): {summary['devices']:,} devices, chip clock {format_time(summary['chip_seconds'])}"]
    if "programming_events" in summary:
        events = summary["programming_events"]
        parts.append(f"programming events per device mean {events['mean']:.2f}, max {events['max']}")
    if "set_pulses" in summary:
        pulses = summary["set_pulses"]
        parts.append(f"SET pulses per device mean {pulses['mean']:.2f}, max {pulses['max']}")
        parts.append(f"refreshes {summary['refreshes']['total']}")
    return "; ".join(parts)

