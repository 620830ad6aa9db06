"""The paper's tasks: data, batching, loss and evaluation for the training CLI.

The names come from one registry (:mod:`analog_snu.tasks.registry`).
"""

from __future__ import annotations

from analog_snu.tasks.base import Task, TaskOptions
from analog_snu.tasks.config import TASK_NAMES, TaskConfig
from analog_snu.tasks.images import ImageTask
from analog_snu.tasks.language import LanguageTask
from analog_snu.tasks.music import MusicTask
from analog_snu.tasks.registry import TASK_REGISTRY, TaskDef, register_task, task_def, task_names

__all__ = ["TASKS", "TASK_NAMES", "TASK_REGISTRY", "Task", "TaskConfig", "TaskDef", "TaskOptions", "load_task",
           "register_task", "task_def", "task_names", "ImageTask", "LanguageTask", "MusicTask"]

#: task name -> one-line description (from :data:`TASK_REGISTRY`)
TASKS: dict[str, str] = {name: task.summary for name, task in TASK_REGISTRY.items()}


def load_task(name: str, options: TaskOptions | None = None, seed: int = 0) -> Task:
    """Load the data of task ``name``; an unknown name raises ConfigError listing the registered tasks.

    ``seed`` fixes the evaluation spike trains of the image tasks.
    """
    options = options if options is not None else TaskOptions()
    return task_def(name).load(options, seed)
