"""The torch device a run computes on (``accelerator``; ``device`` is the PCM device)."""

from __future__ import annotations

import torch

from analog_snu.errors import ConfigError

__all__ = ["resolve_accelerator"]


def resolve_accelerator(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"`` as a ``torch.device``; CUDA without a GPU is refused in one line."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            built = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"--accelerator cuda: no CUDA GPU is available (torch {torch.__version__}, {built}); "
                              "use --accelerator cpu")
        return torch.device("cuda")
    raise ConfigError(f"accelerator must be 'cpu' or 'cuda', got {name!r}")
