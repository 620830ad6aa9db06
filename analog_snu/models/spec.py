"""What a task model is: :class:`ModelConfig` (the user's choices) and :class:`ModelSpec` (what gets built).

``ModelConfig`` is the ``model`` part of a run config. ``ModelSpec`` adds what the task and the
hardware decide (head, input/output sizes, the PCM device by value, the training mode and the tile kind);
a checkpoint stores it next to the tensors, so loading rebuilds the very same architecture on
the very same device, whatever happened to preset names or device files since.
Both are strict pydantic models (see :mod:`analog_snu.schema`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from analog_snu.errors import ConfigError
from analog_snu.functional import ACTIVATIONS, SURROGATES, neuron_cell, neuron_cell_names
from analog_snu.pcm import PCMDevice
from analog_snu.schema import StrictModel

__all__ = ["ModelConfig", "ModelSpec", "CELLS", "BASELINE_CELLS", "HEADS", "TRAINING_MODES", "TILE_KINDS",
           "TRAINING_TILE_KINDS", "cell_options_of", "upgrade_stored_spec"]

#: recurrent baselines next to the spiking cells of :mod:`analog_snu.functional`
BASELINE_CELLS = ("lstm", "gru")
#: every valid ``cell``: the registered neuron cells, then the baselines
CELLS = (*neuron_cell_names(), *BASELINE_CELLS)
#: how the hidden sequence is read out: time-averaged class logits, per-step logits, or a language model
HEADS = ("mean", "sequence", "language")
#: how the weights are trained: digital floats, hardware-aware (PCM inference tiles), pulsed PCM
#: updates, or hardware in the loop (forward on the simulated chip, learning in software)
TRAINING_MODES = ("digital", "hwa", "pulsed", "hil")
#: what the weights live on: plain torch tensors, or aihwkit tiles of the PCM device for hardware-aware
#: training (noisy forward), pulsed updates, or inference (programming, drift, read noise); the analog
#: kinds are the modes of ``analog_snu.tiles.device_rpu_config(device, mode)``
TILE_KINDS = ("digital", "hwa", "pulsed", "inference")
#: training mode -> the tile kind it trains on (hardware in the loop: inference tiles, the chip supplies the noise)
TRAINING_TILE_KINDS = {"digital": "digital", "hwa": "hwa", "pulsed": "pulsed", "hil": "inference"}


#: cell parameters that are keys of the model config themselves (not of ``cell_options``)
_OWN_KEYS = ("g", "surrogate")


def _parameter_names(parameters: type) -> list[str]:
    return [field.name for field in dataclasses.fields(parameters)]


def cell_options_of(cell: str) -> list[str]:
    """The ``cell_options`` a registered neuron cell takes: its parameter fields but ``g`` and ``surrogate``."""
    return [name for name in _parameter_names(neuron_cell(cell).parameters) if name not in _OWN_KEYS]


class ModelConfig(StrictModel):
    """Architecture and unit parameters of a task model (the ``model`` part of a run config)."""

    cell: str = "snu"
    """Hidden unit: a neuron cell (snu, ssnu, ...) or an lstm/gru baseline."""
    layers: list[Annotated[int, Field(gt=0, le=65_536)]] = Field(min_length=1, max_length=64)
    """Widths of the hidden layers, bottom to top (default per task); at most 64 layers of 65,536."""
    recurrent: bool = False
    """Spiking cells only: add recurrent weights H to every hidden layer."""
    tie_weights: bool = False
    """Language model only: the decoder reuses the embedding matrix (needs layers[-1] == embedding width)."""
    embedding_size: NonNegativeInt = 0
    """Language model only: embedding width; 0 means layers[0]."""
    decay: float = Field(0.8, ge=0.0, le=1.0)
    """Membrane decay l(tau) of spiking cells, in [0, 1]."""
    g: Literal[tuple(ACTIVATIONS)] = "relu"  # type: ignore[valid-type]
    """Input activation g of spiking cells."""
    threshold: float = 1.0
    """Initial firing threshold of spiking cells (trainable per neuron)."""
    surrogate: Literal[tuple(SURROGATES)] = "tanh"  # type: ignore[valid-type]
    """Pseudo-derivative of the SNU's step function in the backward pass."""
    cell_options: dict[str, bool | int | float | str] = {}
    """Neuron cells only: fields of the cell's own parameter type, e.g. soft=true, validated by that type (g and surrogate are keys of their own); empty: the cell's defaults."""
    conv_channels: list[PositiveInt] = []
    """Convolutional SNU layers before the dense ones: output channels of each (empty: none; image tasks)."""
    conv_kernel: PositiveInt = 5
    """Kernel size of the convolutional SNU layers."""
    conv_pool: PositiveInt = 2
    """Max-pooling window after each convolutional SNU layer (1: none)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability in [0, 1) on the activations between layers (input of every hidden layer but the first, and of the readout), one mask per sequence (the same units dropped at every step), training only; 0 = off."""

    @field_validator("cell")
    @classmethod
    def _known_cell(cls, value: str) -> str:
        cells = (*neuron_cell_names(), *BASELINE_CELLS)  # read now: a cell registered after import is valid too
        if value not in cells:
            raise ValueError(f"unknown cell {value!r}; valid cells: {list(cells)}")
        return value

    @model_validator(mode="after")
    def _cell_options_fit_the_cell(self) -> "ModelConfig":
        if not self.cell_options:
            return self
        if not self.spiking:
            raise ValueError(f"cell_options: the {self.cell} baseline takes no cell options, got "
                             f"{sorted(self.cell_options)}")
        for name in self.cell_options:
            if name in _OWN_KEYS:
                raise ValueError(f"cell_options: {name!r} is set by model.{name}, not by cell_options")
        options = cell_options_of(self.cell)
        unknown = sorted(set(self.cell_options) - set(options))
        if unknown:
            raise ValueError(f"cell_options: unknown option {unknown[0]!r} of cell {self.cell!r}; valid options: "
                             f"{options}")
        try:
            self.cell_parameters()  # the cell's parameter type checks the values (and the ones its name fixes)
        except ConfigError as exc:
            raise ValueError(f"cell_options: {exc}") from None
        return self

    def cell_parameters(self) -> Any:
        """The neuron cell's parameters (its own frozen dataclass) from ``g``, ``surrogate`` and ``cell_options``.

        Raises:
            ConfigError: a value the cell's parameter type refuses.
        """
        cell = neuron_cell(self.cell)
        own = {key: getattr(self, key) for key in _OWN_KEYS if key in _parameter_names(cell.parameters)}
        return cell.make_parameters(**own, **self.cell_options)

    @property
    def spiking(self) -> bool:
        """True for the neuron cells of :mod:`analog_snu.functional` (not the lstm/gru baselines)."""
        return self.cell not in BASELINE_CELLS


class ModelSpec(ModelConfig):
    """Everything :func:`~analog_snu.models.build.build_model` needs: the model config, the task's
    head and sizes, the PCM device by value (``None``: digital), the training mode and the tile kind.

    Shape conventions of the built model: inputs (T, N, F_in) for ``head="mean"`` and
    ``"sequence"``, token ids (T, N) for ``"language"``; outputs (N, F_out), (T, N, F_out)
    and (T, N, vocab) logits respectively.
    """

    head: Literal[HEADS]  # type: ignore[valid-type]
    """``"mean"`` (classifier on time-averaged outputs), ``"sequence"`` (per-step readout), ``"language"``."""
    input_size: PositiveInt
    """F_in: features per step, or the vocabulary size for ``head="language"``."""
    output_size: PositiveInt
    """F_out: classes, keys, or the vocabulary size."""
    device: PCMDevice | None = None
    """The PCM device, by value; ``None`` for a digital model."""
    training: Literal[TRAINING_MODES] = "digital"  # type: ignore[valid-type]
    """How the weights were (or are being) trained."""
    tile_kind: Literal[TILE_KINDS] = "digital"  # type: ignore[valid-type]
    """What the weights live on: the training mode's tiles (:data:`TRAINING_TILE_KINDS`) for a run,
    ``"inference"`` for a trained model deployed on the device (programmed, drifted); ``"digital"``
    exactly when there is no device."""

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        if (self.device is None) != (self.training == "digital"):
            raise ValueError(
                f"training {self.training!r} does not fit "
                f"{'a digital model' if self.device is None else 'a PCM device'}: use training 'digital' "
                "without a device, and a PCM device with training 'hwa', 'pulsed' or 'hil'"
            )
        kinds = [TRAINING_TILE_KINDS[self.training]] + ([] if self.device is None else ["inference"])
        if self.tile_kind not in kinds:
            raise ValueError(f"tile_kind {self.tile_kind!r} does not fit training {self.training!r}; "
                             f"valid tile kinds: {sorted(set(kinds))} (the training tiles, or deployed on inference tiles)")
        if self.conv_channels:
            side = round(self.input_size ** 0.5)
            if self.head != "mean" or not self.spiking or side * side != self.input_size:
                raise ValueError("conv_channels need a spiking cell and square single-channel images "
                                 f"(head 'mean'); got cell {self.cell!r}, head {self.head!r}, input_size {self.input_size}")
        if self.recurrent and not self.spiking:
            raise ValueError(f"recurrent is for spiking cells; {self.cell} is recurrent already")
        if self.head != "language" and (self.tie_weights or self.embedding_size):
            raise ValueError("tie_weights and embedding_size apply to head 'language' only")
        if self.head == "language" and self.input_size != self.output_size:
            raise ValueError(
                f"a language model predicts its own vocabulary: input_size ({self.input_size}) must equal "
                f"output_size ({self.output_size})"
            )
        if self.tie_weights and self.layers[-1] != self.embedding_width:
            raise ValueError(
                f"tie_weights needs the last hidden width ({self.layers[-1]}) to equal the embedding size "
                f"({self.embedding_width})"
            )
        return self

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden widths as a tuple."""
        return tuple(self.layers)

    @property
    def embedding_width(self) -> int:
        """Width of the language model's embedding (``embedding_size`` or ``layers[0]``)."""
        return self.embedding_size or self.layers[0]

    def replace(self, **changes: Any) -> "ModelSpec":
        """A copy with some fields changed (validated again; a device may be given as a PCMDevice)."""
        plain = {key: value.to_dict() if isinstance(value, PCMDevice) else value for key, value in changes.items()}
        return ModelSpec.from_dict({**self.to_dict(), **plain})


def upgrade_stored_spec(stored: Any) -> Any:
    """A spec as stored by an older analog_snu, in today's layout (anything else is returned as it is).

    Specs written before ``tile_kind`` existed built their tiles from the training mode alone:
    their tile kind is that mode's (:data:`TRAINING_TILE_KINDS`). This is the only place that derives it.
    """
    if not isinstance(stored, dict) or "tile_kind" in stored:
        return stored
    training = stored.get("training", "digital")
    return {**stored, "tile_kind": TRAINING_TILE_KINDS[training]} if training in TRAINING_TILE_KINDS else stored
