"""The ``task`` part of a run config: a registered task's name plus its data-side settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from analog_snu.tasks.base import TaskOptions
from analog_snu.tasks.registry import TASK_REGISTRY, task_names

__all__ = ["TASK_NAMES", "TaskConfig"]

#: the tasks a run can name (the registry's names when the config was defined)
TASK_NAMES = task_names()


class TaskConfig(TaskOptions):
    """A task by name plus its data-side settings."""

    # the description lists the registry's summaries, so a new task describes itself in --help
    name: Literal[TASK_NAMES] = Field(  # type: ignore[valid-type]
        description="Task: " + "; ".join(f"{t.name}: {t.summary}" for t in TASK_REGISTRY.values()) + ".")

    def options(self) -> TaskOptions:
        """The settings without the name."""
        return TaskOptions.model_validate(self.model_dump(exclude={"name"}))
