"""The JSON-serialisable description of a task model; :func:`~analog_snu.models.build.build_model` builds it.

A checkpoint stores the spec next to the tensors, so loading rebuilds the very same
architecture (and the same aihwkit RPU config, derived from ``device`` and ``training``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from analog_snu.errors import ConfigError

__all__ = ["ModelSpec", "CELLS", "HEADS", "TRAINING_MODES"]

#: recurrent unit of the hidden layers
CELLS = ("snu", "ssnu", "lstm", "gru")
#: how the hidden sequence is read out: time-averaged class logits, per-step logits, or a language model
HEADS = ("mean", "sequence", "language")
#: how the weights are trained: digital floats, hardware-aware (PCM inference tiles), pulsed PCM updates
TRAINING_MODES = ("digital", "hwa", "pulsed")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, unit parameters and hardware of a task model (plain data, JSON round trip).

    Shape conventions of the built model: inputs (T, N, F_in) for ``head="mean"`` and
    ``"sequence"``, token ids (T, N) for ``"language"``; outputs (N, F_out), (T, N, F_out)
    and (T, N, vocab) logits respectively.
    """

    cell: str
    """Hidden unit: ``"snu"`` (Heaviside spikes), ``"ssnu"`` (sigmoid), ``"lstm"``, ``"gru"``."""
    head: str
    """``"mean"`` (classifier on time-averaged outputs), ``"sequence"`` (per-step readout), ``"language"``."""
    input_size: int
    """F_in: features per step, or the vocabulary size for ``head="language"``."""
    hidden: tuple[int, ...]
    """Widths of the hidden layers, bottom to top (at least one)."""
    output_size: int
    """F_out: classes, keys, or the vocabulary size."""
    device: str = "digital"
    """``"digital"``, ``"pcm"`` (aihwkit's stock PCM configs) or a device preset name."""
    training: str = "digital"
    """``"digital"``, ``"hwa"`` (hardware-aware, PCM inference tiles) or ``"pulsed"`` (PCM updates)."""
    recurrent: bool = False
    """SNU/sSNU only: add recurrent weights H to every hidden layer."""
    tie_weights: bool = False
    """Language model only: the decoder reuses the embedding matrix (needs hidden[-1] == embedding_size)."""
    embedding_size: int = 0
    """Language model only: embedding width; 0 means hidden[0]."""
    decay: float = 0.8
    """SNU/sSNU membrane decay l(tau), in [0, 1]."""
    g: str = "relu"
    """SNU/sSNU input activation: ``"relu"``, ``"leaky_relu"``, ``"identity"``."""
    threshold: float = 1.0
    """SNU/sSNU initial firing threshold (trainable per neuron)."""
    surrogate: str = "tanh"
    """SNU pseudo-derivative of the step function."""
    extra: dict = field(default_factory=dict)
    """Free-form JSON metadata (e.g. the device preset's own dict); not used to build."""

    def __post_init__(self) -> None:
        _check_choice("cell", self.cell, CELLS)
        _check_choice("head", self.head, HEADS)
        _check_choice("training", self.training, TRAINING_MODES)
        _check_positive_int("input_size", self.input_size)
        _check_positive_int("output_size", self.output_size)
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else self.hidden
        if not isinstance(hidden, tuple) or not hidden:
            raise ConfigError(f"hidden must list at least one layer width, got {self.hidden!r}")
        for i, width in enumerate(hidden):
            _check_positive_int(f"hidden[{i}]", width)
        object.__setattr__(self, "hidden", hidden)
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be 'digital' or a device preset name, got {self.device!r}")
        if (self.device == "digital") != (self.training == "digital"):
            raise ConfigError(
                f"device {self.device!r} does not fit training {self.training!r}: use device 'digital' with "
                "training 'digital', and a PCM device ('pcm' or a preset) with training 'hwa' or 'pulsed'"
            )
        if self.recurrent and self.cell in ("lstm", "gru"):
            raise ConfigError(f"recurrent=True is for snu/ssnu cells; {self.cell} is recurrent already")
        if self.head != "language" and (self.tie_weights or self.embedding_size):
            raise ConfigError("tie_weights and embedding_size apply to head 'language' only")
        if self.embedding_size < 0:
            raise ConfigError(f"embedding_size must be >= 0, got {self.embedding_size}")
        if self.head == "language" and self.input_size != self.output_size:
            raise ConfigError(
                f"a language model predicts its own vocabulary: input_size ({self.input_size}) must equal "
                f"output_size ({self.output_size})"
            )
        if self.tie_weights and self.hidden[-1] != self.embedding_width:
            raise ConfigError(
                f"tie_weights needs the last hidden width ({self.hidden[-1]}) to equal the embedding size "
                f"({self.embedding_width})"
            )
        if not 0.0 <= float(self.decay) <= 1.0:
            raise ConfigError(f"decay must be in [0, 1], got {self.decay}")

    @property
    def embedding_width(self) -> int:
        """Width of the language model's embedding (``embedding_size`` or ``hidden[0]``)."""
        return self.embedding_size or self.hidden[0]

    @property
    def soft(self) -> bool:
        """True for the sSNU."""
        return self.cell == "ssnu"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``hidden`` as a list)."""
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model spec must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model spec fields {unknown}; valid fields: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
