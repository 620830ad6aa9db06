"""A training run on disk: config, per-epoch checkpoints and metrics, final metrics, resume.

Run directory layout::

    RUN_DIR/config.json              the RunConfig, model spec, device preset, versions
    RUN_DIR/checkpoint.safetensors   weights, optimizer, RNG and history after the last epoch
    RUN_DIR/metrics.csv, metrics.json  one row per finished epoch
    RUN_DIR/final.json               test metrics; its presence marks a finished run

Every file is written atomically. Determinism: the weights are initialised from
``torch.manual_seed(seed)``; epoch ``e`` draws its shuffle and spikes from a generator seeded
with ``(seed, e)``; the global torch RNG state is checkpointed. So a run killed after any epoch
and resumed ends with the same weights as an uninterrupted run (bit for bit on CPU for digital
training and for HWA on torch inference tiles; aihwkit's C++ tiles draw their noise from their
own generator, which no checkpoint can capture).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analog_snu.checkpoint import (
    CHECKPOINT_NAME,
    atomic_write_bytes,
    read_checkpoint,
    restore_model,
    restore_optimizer,
    restore_rng,
    save_checkpoint,
)
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.models import CELLS, TRAINING_MODES, ModelSpec, build_model
from analog_snu.models.devices import device_preset_dict, list_devices
from analog_snu.tasks import TASKS, Task, TaskOptions, load_task
from analog_snu.training.loop import train_epoch
from analog_snu.training.optimizers import OPTIMIZERS, make_optimizer

__all__ = ["RunConfig", "TrainResult", "train_run", "load_task_for", "spec_for", "GRAPES_VARIANTS", "RUN_FILES"]

GRAPES_VARIANTS = ("propagating", "local")
RUN_FILES = ("config.json", CHECKPOINT_NAME, "metrics.csv", "metrics.json", "final.json", "eval.json")

#: per-task defaults: hidden widths, learning rate, batch size
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"layers": (128,), "lr": 5e-3, "batch_size": 32},
    "mnist": {"layers": (256, 256), "lr": 1e-3, "batch_size": 64},
    "jsb": {"layers": (150,), "lr": 1e-2, "batch_size": 1},
    "ptb": {"layers": (200,), "lr": 1e-3, "batch_size": 20},
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (plain data; stored as JSON in ``config.json``).

    ``layers``, ``lr`` and ``batch_size`` left as ``None``/empty take the task's defaults
    (:data:`TASK_DEFAULTS`) in ``__post_init__``, so the stored config is explicit.
    """

    task: str
    model: str = "snu"
    layers: tuple[int, ...] = ()
    device: str = "digital"
    training: str = "digital"
    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int | None = None
    epochs: int = 1
    seed: int = 0
    grapes: str | None = None
    data: str | None = None
    steps: int = 20
    rate: float = 6.0
    bptt: int = 35
    eval_batch_size: int = 256
    train_limit: int = 0
    recurrent: bool = False
    tie_weights: bool = False
    embedding_size: int = 0
    decay: float = 0.8
    g: str = "relu"
    threshold: float = 1.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; valid tasks: {sorted(TASKS)}")
        if self.model not in CELLS:
            raise ConfigError(f"unknown model {self.model!r}; valid models: {list(CELLS)}")
        if self.training not in TRAINING_MODES:
            raise ConfigError(f"unknown training {self.training!r}; valid: {list(TRAINING_MODES)}")
        if self.device not in list_devices():
            raise ConfigError(f"unknown device {self.device!r}; valid devices: {list_devices()}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid: {sorted(OPTIMIZERS)}")
        if self.grapes is not None and self.grapes not in GRAPES_VARIANTS:
            raise ConfigError(f"grapes must be one of {list(GRAPES_VARIANTS)}, got {self.grapes!r}")
        defaults = TASK_DEFAULTS[self.task]
        layers = tuple(self.layers) if self.layers else defaults["layers"]
        object.__setattr__(self, "layers", tuple(int(w) for w in layers))
        if self.lr is None:
            object.__setattr__(self, "lr", defaults["lr"])
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", defaults["batch_size"])
        for name in ("epochs", "batch_size", "steps", "bptt", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.train_limit, int) or self.train_limit < 0:
            raise ConfigError(f"train_limit must be an int >= 0, got {self.train_limit!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)

    def task_options(self) -> TaskOptions:
        return TaskOptions(data=self.data, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
                           steps=self.steps, rate=self.rate, bptt=self.bptt, train_limit=self.train_limit,
                           seed=self.seed)


@dataclass
class TrainResult:
    """What :func:`train_run` returns: the trained model, its spec and metrics."""

    model: nn.Module
    spec: ModelSpec
    history: list[dict[str, Any]]
    final: dict[str, Any]


def load_task_for(config: RunConfig) -> Task:
    """The task's data for ``config``."""
    return load_task(config.task, config.task_options())


def spec_for(config: RunConfig, task: Task) -> ModelSpec:
    """The model spec of ``config`` with the task's input/output sizes."""
    return ModelSpec(
        cell=config.model, head=task.head, input_size=task.input_size, hidden=config.layers,
        output_size=task.output_size, device=config.device, training=config.training,
        recurrent=config.recurrent, tie_weights=config.tie_weights, embedding_size=config.embedding_size,
        decay=config.decay, g=config.g, threshold=config.threshold,
    )


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _make_grapes(model: nn.Module, variant: str | None):
    if variant is None:
        return None
    grapes_cls = getattr(importlib.import_module("analog_snu.training"), "GRAPES", None)
    if grapes_cls is None:
        raise ConfigError("--grapes needs analog_snu.training.GRAPES, which this installation does not provide yet")
    return grapes_cls(model, variant)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    _write_json(run_dir / "metrics.json", history)
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    atomic_write_bytes(run_dir / "metrics.csv", buffer.getvalue().encode())


def _versions() -> dict[str, str]:
    from analog_snu import __version__
    from analog_snu.tiles import aihwkit_version

    return {"analog_snu": __version__, "torch": torch.__version__, "aihwkit": aihwkit_version()}


def _compare(stored: dict[str, Any], config: RunConfig) -> None:
    current = config.to_dict()
    ignore = {"epochs"}  # a resumed run may be extended
    differ = sorted(k for k in set(stored) | set(current) if k not in ignore and stored.get(k) != current.get(k))
    if differ:
        details = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs now {current.get(k)!r}" for k in differ[:6])
        raise CheckpointError(f"the checkpoint was made with a different config ({details})")


def prepare_run_dir(run_dir: Path, *, resume: bool, force: bool) -> None:
    """Check what ``run_dir`` holds against the request; clear it when ``force``."""
    finished = (run_dir / "final.json").exists()
    started = (run_dir / CHECKPOINT_NAME).exists()
    if force and not resume:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        return
    if finished and not resume:
        raise CheckpointError(f"{run_dir} already holds a finished run (final.json); pass --force to overwrite it")
    if resume and not started:
        raise CheckpointError(f"cannot resume: {run_dir} holds no {CHECKPOINT_NAME}")
    if not resume and started:
        raise CheckpointError(f"{run_dir} holds an unfinished run; pass --resume to continue it or --force to restart")


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Train ``config`` in ``run_dir`` (created if needed), checkpointing after every epoch.

    ``resume`` continues from the checkpoint (its config must match, ``epochs`` may grow);
    ``force`` wipes an existing run. ``on_epoch_end(epoch, row)`` is called after each epoch's
    checkpoint is on disk (tests use it to kill a run). ``task`` reuses already loaded data.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    prepare_run_dir(run_dir, resume=resume, force=force)
    task = task or load_task_for(config)
    spec = spec_for(config, task)

    torch.manual_seed(config.seed)
    model = build_model(spec)
    optimizer = make_optimizer(model, config.optimizer, lr=config.lr)
    grapes = _make_grapes(model, config.grapes)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume:
        checkpoint = read_checkpoint(run_dir / CHECKPOINT_NAME)
        _compare(checkpoint.meta["extra"].get("config", {}), config)
        restore_model(model, checkpoint)
        restore_optimizer(optimizer, checkpoint)
        restore_rng(checkpoint)
        history = list(checkpoint.meta["extra"]["history"])
        start_epoch = int(checkpoint.meta["extra"]["epoch"])
        if (run_dir / "final.json").exists():
            if config.epochs <= start_epoch:
                raise CheckpointError(
                    f"{run_dir} already holds a finished run of {start_epoch} epochs; pass --epochs N with "
                    f"N > {start_epoch} to extend it, or --force to overwrite it"
                )
            # Extending: the old final metrics no longer describe the run (the checkpoint keeps the state).
            (run_dir / "final.json").unlink()
    record = {"config": config.to_dict(), "spec": spec.to_dict(), "device_preset": device_preset_dict(config.device),
              "versions": _versions()}
    _write_json(run_dir / "config.json", record)

    loss_fn = task.loss_fn()
    for epoch in range(start_epoch, config.epochs):
        start = time.perf_counter()
        batches = task.train_batches(_epoch_generator(config.seed, epoch))
        train_loss = train_epoch(model, batches, optimizer, loss_fn, grapes=grapes,
                                 desc=f"{config.task} epoch {epoch + 1}/{config.epochs}", progress=progress)
        train_s = time.perf_counter() - start
        valid = task.evaluate(model, "valid")
        row = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid["loss"],
               f"valid_{task.metric}": valid[task.metric], "train_s": round(train_s, 3),
               "epoch_s": round(time.perf_counter() - start, 3)}
        history.append(row)
        save_checkpoint(run_dir / CHECKPOINT_NAME, model, spec, optimizer=optimizer,
                        extra={"config": config.to_dict(), "epoch": epoch + 1, "history": history})
        _write_metrics(run_dir, history)
        if progress:
            print(f"epoch {epoch + 1}/{config.epochs}: train loss {train_loss:.4f}, "
                  f"valid {task.metric} {valid[task.metric]:.4f} ({row['epoch_s']:.1f} s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    test = task.evaluate(model, "test")
    final = {"task": config.task, "metric": task.metric, f"test_{task.metric}": test[task.metric],
             "test_loss": test["loss"], "epochs": config.epochs,
             "mean_train_s_per_epoch": sum(r["train_s"] for r in history) / max(len(history), 1)}
    _write_json(run_dir / "final.json", final)
    return TrainResult(model, spec, history, final)
