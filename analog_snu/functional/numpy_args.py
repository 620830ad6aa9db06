"""Tensors and scalars as the compiled (numba) loops take them: numpy views and numpy scalars.

The SNU recurrence loops (:mod:`~analog_snu.functional.snu_loops`, :mod:`~analog_snu.functional.snu_pool_loops`)
and the PCM periphery loops (:mod:`~analog_snu.functional.periphery_loops`, called from
:mod:`analog_snu.tiles.fused_periphery`) take their tensors as numpy views and their scalars in the
arrays' own float type: a Python float would make numba widen float32 arithmetic to float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["numpy_scalar", "numpy_view"]

_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64}  # the dtypes the loops take


def numpy_view(tensor: Tensor) -> np.ndarray:
    """A C-ordered numpy view of a CPU tensor (a copy only if it is not contiguous)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.numpy()


def numpy_scalar(value: float, dtype: torch.dtype) -> Any:
    """``value`` as a numpy scalar of the float ``dtype`` (torch, too, rounds a Python scalar operand
    to the tensor's type)."""
    scalar = _NUMPY_FLOAT.get(dtype)
    return scalar(value) if scalar is not None else np.dtype(str(dtype).removeprefix("torch.")).type(value)
