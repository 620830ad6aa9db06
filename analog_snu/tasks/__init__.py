"""The paper's tasks: data, batching, loss and evaluation for the training CLI."""

from __future__ import annotations

from analog_snu.errors import ConfigError
from analog_snu.tasks.base import TASK_NAMES, Task, TaskConfig, TaskOptions
from analog_snu.tasks.images import ImageTask
from analog_snu.tasks.language import LanguageTask
from analog_snu.tasks.music import MusicTask

__all__ = ["TASKS", "TASK_NAMES", "Task", "TaskConfig", "TaskOptions", "load_task", "ImageTask", "LanguageTask", "MusicTask"]

#: task name -> one-line description
TASKS: dict[str, str] = {
    "digits": "scikit-learn's 8x8 handwritten digits, rate-coded (accuracy)",
    "mnist": "MNIST 50k/10k/10k, rate-coded (accuracy)",
    "jsb": "polyphonic music, next 88-key frame (NLL per frame, nats)",
    "ptb": "word-level language modelling, PTB file format (perplexity)",
}


def load_task(name: str, options: TaskOptions | None = None, seed: int = 0) -> Task:
    """Load the data of task ``name``; an unknown name raises ConfigError listing :data:`TASKS`.

    ``seed`` fixes the evaluation spike trains of the image tasks.
    """
    options = options if options is not None else TaskOptions()
    if name in ("digits", "mnist"):
        return ImageTask(name, options, seed)
    if name == "jsb":
        return MusicTask(options)
    if name == "ptb":
        return LanguageTask(options)
    raise ConfigError(f"unknown task {name!r}; valid tasks: {sorted(TASKS)}")
