"""One task vocabulary: the registry is what the config, the CLI and load_task accept."""

from __future__ import annotations

import typing

import pytest

from analog_snu.cli import build_parser
from analog_snu.errors import ConfigError
from analog_snu.experiments import TASK_DEFAULTS
from analog_snu.tasks import TASK_NAMES, TASKS, TaskConfig, TaskDef, load_task, register_task, task_def, task_names
from analog_snu.tasks.images import ImageTask
from analog_snu.tasks.registry import TASK_REGISTRY


def test_the_paper_tasks_are_registered_in_order():
    assert task_names() == ("digits", "mnist", "jsb", "ptb")
    assert TASK_NAMES == task_names()
    assert list(TASKS) == list(task_names())


def test_config_accepts_exactly_the_registered_names():
    assert typing.get_args(TaskConfig.model_fields["name"].annotation) == task_names()
    with pytest.raises(ConfigError, match="name"):
        TaskConfig(name="cifar10")


def test_cli_task_choices_are_the_registered_names():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    task_flag = next(a for a in train._actions if "--task" in a.option_strings)
    assert task_flag.choices == list(task_names())


def test_task_defaults_name_registered_tasks_only():
    assert set(TASK_DEFAULTS) <= set(task_names())


def test_load_task_goes_through_the_registry():
    task = load_task("digits")
    assert isinstance(task, ImageTask) and task.name == "digits"
    with pytest.raises(ConfigError, match=r"unknown task 'cifar10'; valid tasks: \['digits', 'jsb', 'mnist', 'ptb'\]"):
        load_task("cifar10")
    assert task_def("jsb").name == "jsb"


@pytest.mark.parametrize("name", ["Digits", "1task", "", None])
def test_register_task_refuses_bad_names(name):
    with pytest.raises(ConfigError, match="task name must be"):
        register_task(TaskDef(name, "x", lambda options, seed: None))  # type: ignore[arg-type]
    assert task_names() == ("digits", "mnist", "jsb", "ptb")


def test_register_task_refuses_a_taken_name_and_a_non_callable_loader():
    with pytest.raises(ConfigError, match="registered already"):
        register_task(TaskDef("digits", "again", TASK_REGISTRY["digits"].load))
    with pytest.raises(ConfigError, match="load must be callable"):
        register_task(TaskDef("fresh", "x", "not a function"))  # type: ignore[arg-type]
    assert "fresh" not in TASK_REGISTRY
