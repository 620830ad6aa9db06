"""Initial values that a cast to float64 keeps exact."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["ExactInitialValues"]


class ExactInitialValues:
    """Mixin for an ``nn.Module`` whose parameters or buffers start as one Python float each
    (an SNU layer's ``decay`` and ``threshold``): a cast to float64 keeps that float exactly.

    Torch creates them in float32 (the default dtype), and ``.double()`` widens the float32
    rounding: a decay of 0.8 became 0.800000011920929. After a cast to float64, a tensor that
    still holds the float32 rounding of its initial value everywhere gets the value itself;
    trained values are left as they are. Call :meth:`_remember_exact` in ``__init__``.
    """

    def _remember_exact(self, **values: float) -> None:
        self._exact_initial = {name: float(value) for name, value in values.items()}

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        module = super()._apply(fn, recurse)  # type: ignore[misc]
        for name, value in getattr(self, "_exact_initial", {}).items():
            tensor = getattr(self, name, None)
            if isinstance(tensor, Tensor) and tensor.dtype == torch.float64:
                rounded = float(torch.tensor(value, dtype=torch.float32))
                with torch.no_grad():
                    if bool((tensor == rounded).all()):
                        tensor.fill_(value)
        return module
