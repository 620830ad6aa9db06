"""The run config: one nested, typed, strictly validated tree that defines a run.

::

    RunConfig
      task:        TaskConfig      name + data-side settings          (analog_snu.tasks)
      model:       ModelConfig     cell, layers, unit parameters      (analog_snu.models)
      device:      PCMDevice|None  the PCM device BY VALUE; None = digital (analog_snu.pcm)
      device_source: str|None      the preset name or device file it came by; not stored in the config:
                                   recorded beside it (config.json's "device_source")
      training:    TrainingConfig  mode, optimizer, lr, epochs, seed, GRAPES, HIL, schedule
      accelerator: "cpu"|"cuda"    the torch device the run computes on
      threads:     "auto"|int      CPU threads (analog_snu.threads); not stored: it changes speed, not results

Each part is declared once, where it belongs (task options in ``tasks/``, the model in
``models/``, the device in ``pcm/``); this module only composes them and adds the
training part. Validation is pydantic v2 in strict mode (see :mod:`analog_snu.schema` for
why): wrong types are refused, never coerced. Values left open take the task's defaults
(:data:`TASK_DEFAULTS`) before validation, so a stored config is explicit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PositiveInt, model_validator

from analog_snu.errors import ConfigError
from analog_snu.models import TRAINING_MODES, TRAINING_TILE_KINDS, ModelConfig, ModelSpec
from analog_snu.pcm import PCMDevice
from analog_snu.schema import Seed, StrictModel
from analog_snu.tasks import TaskConfig
from analog_snu.threads import THREADS_RULE, is_thread_setting
from analog_snu.times import TimeSeconds
from analog_snu.training import GRAPES_VARIANTS, HIL_SCHEMES, OPTIMIZERS, WEIGHT_INITS
from analog_snu.training.feedback_alignment import DFA_LOCAL_REFUSAL
from analog_snu.training.hil_config import (
    CHIP_SECONDS_RANGE,
    GRANULARITY_RANGE,
    HEADROOM_RANGE,
    HIL_DEFAULT_HEADROOM,
    HIL_OPTIONS,
    HILConfig,
    check_hil_options,
)

__all__ = ["RunConfig", "TrainingConfig", "TASK_DEFAULTS", "HIL_SCHEMES", "HIL_DEFAULT_HEADROOM", "HILConfig",
           "ACCELERATORS", "spec_for", "flatten",
           "config_differences", "MAX_KEY_DEPTH", "check_key_depth"]

#: torch devices a run may compute on
ACCELERATORS = ("cpu", "cuda")

#: per-task defaults (dotted paths), applied where the config leaves a value open. The digits
#: defaults are the demo's: 8x8 images carry 64 pixels of 16 grey levels, and at IBM's MNIST
#: rate (6 spikes in 20 steps) too few spikes reach the network, so digits use 10.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"model.layers": [128], "training.lr": 5e-3, "task.batch_size": 32, "task.rate": 10.0,
               "training.epochs": 15},
    "mnist": {"model.layers": [256, 256], "training.lr": 1e-3, "task.batch_size": 64},
    "jsb": {"model.layers": [150], "training.lr": 1e-2, "task.batch_size": 1},
    "ptb": {"model.layers": [200], "training.lr": 1e-3, "task.batch_size": 20},
}


class TrainingConfig(StrictModel):
    """How the weights are learned."""

    mode: Literal[TRAINING_MODES] = "digital"  # type: ignore[valid-type]
    """digital floats; hwa = hardware-aware on PCM inference tiles; pulsed = in-memory PCM updates; hil = forward on the simulated chip, learning in software (default: digital, or hwa with a device)."""
    optimizer: Literal[tuple(OPTIMIZERS)] = "adam"  # type: ignore[valid-type]
    """Optimizer."""
    lr: float = Field(1e-3, gt=0.0, le=1e4)
    """Learning rate, in (0, 1e4] (default per task); torch's optimizers overflow far above that."""
    weight_decay: float = Field(0.0, ge=0.0, le=1e4)
    """Weight decay, in [0, 1e4]: torch's ``weight_decay`` of SGD and Adam, the coupled L2 term
    (weight_decay * w added to the gradient of every parameter the optimizer steps: weights, biases,
    thresholds; not AdamW's decoupled decay); not with --training pulsed, whose tiles learn by pulses."""
    epochs: int = Field(1, gt=0, le=100_000)
    """Training epochs (default per task)."""
    seed: Seed = 0
    """Seed of weights, shuffles, spikes and programming, an int in [0, 2**32 - 1]."""
    grapes: Literal[GRAPES_VARIANTS] | None = None  # type: ignore[valid-type]
    """GRAPES error-signal modulation variant (none by default); with --rule fa|dfa: FAgrapes / DFAgrapes."""
    rule: Literal["bp", "fa", "dfa"] = "bp"
    """Learning rule: backprop, feedback alignment or direct feedback alignment (fixed random feedback, seeded)."""
    weight_init: Literal[WEIGHT_INITS] = "default"  # type: ignore[valid-type]
    """Weight initialisation (he_uniform as in the GRAPES reference code)."""
    schedule: Literal["none", "step", "cosine", "plateau"] = "none"
    """Learning-rate schedule, stepped once per epoch (plateau: on the validation loss)."""
    step_size: PositiveInt | None = None
    """step schedule: epochs between decays (required for step)."""
    gamma: float | None = Field(None, gt=0.0, lt=1.0)
    """step / plateau schedules: decay factor (default 0.1)."""
    patience: PositiveInt | None = None
    """Early stopping: stop after this many epochs without a better validation loss (default: never)."""
    select: Literal["last", "best"] = "last"
    """Which epoch the run reports and evaluates: the last, or the best validation loss (checkpoint_best)."""
    hil_scheme: Literal[HIL_SCHEMES] | None = None  # type: ignore[valid-type]
    """HIL only: reprogram the chip from software weights, or mixed-precision pulses (default reprogram)."""
    program_every: PositiveInt | None = None
    """HIL reprogram only: reprogram the chip every N batches (default 1)."""
    chip_seconds_per_batch: TimeSeconds | None = Field(None, **CHIP_SECONDS_RANGE)
    """HIL only: chip clock advance per batch, seconds; a time such as 1s, 1min, 1h is accepted (default 1s)."""
    granularity: float | None = Field(None, **GRANULARITY_RANGE)
    """HIL mixed only: weight change of one SET pulse as a fraction of g_max (default: the device's dw_min)."""
    headroom: float | None = Field(None, **HEADROOM_RANGE)
    """HIL only: each tile's weight range (mapped to g_max) as a multiple of its max|W| at the first programming
    (default 1.5 reprogram, re-mapped when outgrown; 8 mixed, whose range is fixed)."""

    @model_validator(mode="after")
    def _options_fit_together(self) -> "TrainingConfig":
        given = [name for name in HIL_OPTIONS.values() if getattr(self, name) is not None]
        if given and self.mode != "hil":
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags} apply to --training hil only (training mode is {self.mode!r})")
        check_hil_options({field: getattr(self, flat) for field, flat in HIL_OPTIONS.items()})
        if self.rule == "dfa" and self.grapes == "local":
            raise ValueError(DFA_LOCAL_REFUSAL)
        if self.schedule == "step" and self.step_size is None:
            raise ValueError("--schedule step needs --step-size N (epochs between decays)")
        if self.step_size is not None and self.schedule != "step":
            raise ValueError("--step-size applies to --schedule step only")
        if self.gamma is not None and self.schedule not in ("step", "plateau"):
            raise ValueError("--gamma applies to --schedule step or plateau only")
        if self.weight_decay and self.mode == "pulsed":
            raise ValueError("--weight-decay (training.weight_decay) does not apply to --training pulsed: its tiles "
                             "learn by pulse trains that torch's weight decay never reaches (only the thresholds and "
                             "biases would decay); use --training hwa or hil, or weight decay 0")
        return self


def _thread_setting(value: Any) -> Any:
    if is_thread_setting(value):
        return value
    raise ValueError(f"must be {THREADS_RULE}, got {value!r}")


class RunConfig(StrictModel):
    """Everything that defines a run (stored in the run directory and in every checkpoint)."""

    task: TaskConfig
    """The task and its data-side settings."""
    model: ModelConfig
    """Architecture and unit parameters."""
    device: PCMDevice | None = None
    """The PCM device by value (a preset or device file resolved at creation); null = digital."""
    device_source: str | None = Field(None, exclude=True)
    """The preset name or device file :attr:`device` came by (``None``: given by value, or digital), set where
    the name is resolved (:func:`~analog_snu.experiments.sources.build_config`); it names the device for
    people and result folders. Not stored with the config (the device is, by value): a run records it
    beside the config, as ``device_source`` in ``config.json``."""
    training: TrainingConfig = TrainingConfig()
    """How the weights are learned."""
    accelerator: Literal[ACCELERATORS] = "cpu"  # type: ignore[valid-type]
    """Torch device to compute on."""
    threads: Annotated[Literal["auto"] | int, BeforeValidator(_thread_setting)] = Field("auto", exclude=True)
    """CPU threads: auto (1 for small work or beside busy processes, else the CPUs this process may use;
    OMP_NUM_THREADS respected) or a count; not stored with the run (it changes the speed, not the results)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {key: value.to_dict() if isinstance(value, StrictModel) else value for key, value in data.items()}
        task = data.get("task")
        name = task.get("name") if isinstance(task, dict) else None
        for path, value in (TASK_DEFAULTS.get(name, {}) if isinstance(name, str) else {}).items():
            section, field = path.split(".")
            part = data.get(section, {})
            if isinstance(part, dict) and part.get(field) is None:
                data[section] = {**part, field: value}
        training = data.get("training", {})
        if isinstance(training, dict) and training.get("mode") is None:
            mode = "digital" if data.get("device") is None else "hwa"
            data["training"] = {**training, "mode": mode}
        return data

    @model_validator(mode="after")
    def _mode_fits_device(self) -> "RunConfig":
        mode = self.training.mode
        if self.device is None and mode != "digital":
            raise ValueError(f"--training {mode} needs a PCM device: pass --device PRESET or --device FILE.toml")
        if self.device is not None and mode == "digital":
            raise ValueError("--training digital runs without a PCM device: drop --device, or train with "
                             "--training hwa|pulsed|hil (a digital run can be evaluated on any device with "
                             "`analog-snu eval RUN --device ...`)")
        _check_device_source(self.device_source, self.device)
        return self

    def with_device_source(self, source: str | None) -> RunConfig:
        """This config with ``source`` as the name its device came by (a run's record restores it)."""
        _check_device_source(source, self.device)
        return self.model_copy(update={"device_source": source})

    @property
    def hil(self) -> HILConfig | None:
        """The HIL settings with their defaults filled in (``None`` unless training mode is hil).

        Stored flat (``training.hil_scheme``, ``training.program_every``, ...: the layout of every
        run directory and of the flags), built into one :class:`HILConfig` here.
        """
        return HILConfig.from_training(self.training) if self.training.mode == "hil" else None


def _check_device_source(source: Any, device: PCMDevice | None) -> None:
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"device_source must be a preset name or device file, got {type(source).__name__}")
    if source is not None and device is None:
        raise ConfigError(f"device_source {source!r} names where a PCM device came from; this run has none")


def spec_for(config: RunConfig, head: str, input_size: int, output_size: int) -> ModelSpec:
    """The :class:`ModelSpec` of ``config`` with the task's head and sizes (the device passed on as
    the validated object it is, not validated again from a dict)."""
    return ModelSpec.from_dict({
        **config.model.to_dict(), "head": head, "input_size": input_size, "output_size": output_size,
        "device": config.device, "training": config.training.mode,
        "tile_kind": TRAINING_TILE_KINDS[config.training.mode],
    })


#: most levels of a dotted key (the deepest config field, ``device.drift.nu_mean_slope``, has 3)
MAX_KEY_DEPTH = 16


def check_key_depth(path: str) -> str:
    """``path`` if it has at most :data:`MAX_KEY_DEPTH` dotted levels, else a ConfigError."""
    if path.count(".") >= MAX_KEY_DEPTH:
        shown = path if len(path) <= 60 else f"{path[:57]}..."
        raise ConfigError(f"key {shown!r} has {path.count('.') + 1} dotted levels; config keys have at most "
                          f"{MAX_KEY_DEPTH}")
    return path


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{dotted.path: leaf}`` (at most :data:`MAX_KEY_DEPTH` levels deep)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = check_key_depth(f"{prefix}.{key}" if prefix else key)
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def config_differences(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths where two configs differ (``ignore``-d paths left out)."""
    old, new = flatten(a.to_dict()), flatten(b.to_dict())
    return sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
