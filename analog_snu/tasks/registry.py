"""The registry of tasks: a name -> its one-line summary and how to load it.

Every list of task names derives from here: the run config's ``task.name`` (and so the CLI's
``--task`` choices), :func:`analog_snu.tasks.load_task` and the help texts. Adding a task is
one :class:`~analog_snu.tasks.base.Task` subclass plus one :func:`register_task` line at the
bottom of this module (before :class:`~analog_snu.tasks.config.TaskConfig` is defined, whose
``name`` field lists the names registered by then).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from analog_snu.errors import ConfigError
from analog_snu.tasks.base import Task, TaskOptions
from analog_snu.tasks.images import ImageTask
from analog_snu.tasks.language import LanguageTask
from analog_snu.tasks.music import MusicTask

__all__ = ["TaskDef", "TASK_REGISTRY", "register_task", "task_def", "task_names"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TaskDef:
    """One registered task."""

    name: str
    """Registry key: lowercase letters, digits and ``_``, starting with a letter."""
    summary: str
    """One line for listings and ``--help``: the data and the main figure."""
    load: Callable[[TaskOptions, int], Task]
    """``load(options, seed) -> Task``: the task with its data loaded (``seed`` fixes evaluation spikes)."""


#: name -> task; fill it with :func:`register_task`, read it with :func:`task_def`
TASK_REGISTRY: dict[str, TaskDef] = {}


def register_task(task: TaskDef) -> TaskDef:
    """Add ``task`` to :data:`TASK_REGISTRY`; a bad or taken name raises ConfigError."""
    if not isinstance(task, TaskDef):
        raise ConfigError(f"register_task takes a TaskDef, got {type(task).__name__}")
    if not isinstance(task.name, str) or not _NAME.match(task.name):
        raise ConfigError(f"task name must be lowercase letters, digits and '_' (e.g. 'jsb'), got {task.name!r}")
    if task.name in TASK_REGISTRY:
        raise ConfigError(f"task {task.name!r} is registered already; registered: {list(task_names())}")
    if not callable(task.load):
        raise ConfigError(f"task {task.name!r}: load must be callable, got {task.load!r}")
    TASK_REGISTRY[task.name] = task
    return task


def task_names() -> tuple[str, ...]:
    """The registered task names, in registration order."""
    return tuple(TASK_REGISTRY)


def task_def(name: str) -> TaskDef:
    """The registered task called ``name``; a ConfigError lists the valid names otherwise."""
    task = TASK_REGISTRY.get(name) if isinstance(name, str) else None
    if task is None:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {sorted(TASK_REGISTRY)}")
    return task


def _digits(options: TaskOptions, seed: int) -> Task:
    return ImageTask("digits", options, seed)


def _mnist(options: TaskOptions, seed: int) -> Task:
    return ImageTask("mnist", options, seed)


def _jsb(options: TaskOptions, seed: int) -> Task:
    return MusicTask(options)


def _ptb(options: TaskOptions, seed: int) -> Task:
    return LanguageTask(options)


register_task(TaskDef("digits", "scikit-learn's 8x8 handwritten digits, rate-coded (accuracy)", _digits))
register_task(TaskDef("mnist", "MNIST 50k/10k/10k, rate-coded (accuracy)", _mnist))
register_task(TaskDef("jsb", "polyphonic music, next 88-key frame (NLL per frame, nats)", _jsb))
register_task(TaskDef("ptb", "word-level language modelling, PTB file format (perplexity)", _ptb))
