r"""GRAPES: Group Responsibility for Adjusting the Propagation of Error Signals.

Dellaferrera, Woźniak, Indiveri, Pantazi, Eleftheriou, Nature Communications 13 (2022).
Each hidden node n gets a factor from the weights converging on it,

.. math::

    I_n = \sum_k \sum_i |W_k[n, i]|, \qquad M_n = 2\,\frac{I_n}{\max_m I_m}
    \quad (\text{clipped to } [1, 2] \text{ by default}),

computed once per mini-batch from the weights at its start (an SNU layer sums its
input weights W and recurrent weights H together), and the error signal of the node is
scaled by it:

- ``"propagating"``: :math:`\delta_l = M_l \odot (W_{l+1}^T \delta_{l+1}) \odot f'(a_l)`.
  The modulated error reaches the layer's own weights and flows on to the layers below,
  so the modulation compounds with depth. In an SNU layer it scales the error arriving
  from the layer above at every time step, never the error carried back through the
  layer's own recurrence (no compounding over time).
- ``"local"``: the error is left alone; only the layer's own per-node parameter updates
  (its weight rows, bias, threshold, learnable decay) are scaled by :math:`M_l`.

The output layer is never modulated. Because GRAPES only changes error signals and
updates, it composes with any optimizer (SGD, Adam, aihwkit ``AnalogSGD`` /
``AnalogOptimizer``). With pulsed in-memory training it acts on the rows of d that the tile
update receives, with hardware-aware training on the gradient
(see :mod:`analog_snu.tiles.updates`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.tiles import is_analog, read_weight, scale_weight_update

__all__ = ["GRAPES", "GRAPES_VARIANTS", "grapes_modulation"]

GRAPES_VARIANTS = ("propagating", "local")


@torch.no_grad()
def grapes_modulation(*weights: Tensor, clip: bool = True) -> Tensor:
    """The GRAPES factor of every node from the weight matrices converging on it.

    Args:
        *weights: one or more matrices (F_out, F_in_k) whose rows end on the same F_out nodes
            (e.g. an SNU layer's input weights W and recurrent weights H).
        clip: clip the factors to [1, 2] (the default GRAPES); ``False`` keeps (0, 2].

    Returns:
        ``M`` of shape (F_out,), same dtype as the first matrix, detached.

    Shape:
        weights: (F_out, F_in_k) each; returns (F_out,).

    Example:
        >>> grapes_modulation(torch.tensor([[1.0, -1.0], [0.5, 0.0]]), clip=False)
        tensor([2.0000, 0.5000])
    """
    if not weights:
        raise ConfigError("grapes_modulation needs at least one weight matrix (F_out, F_in), got none")
    for k, weight in enumerate(weights):
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
            raise ShapeError(f"weights[{k}] must be a 2-D tensor (F_out, F_in), got {got}")
        if weight.shape[0] != weights[0].shape[0]:
            raise ShapeError(
                f"all weight matrices must converge on the same F_out={weights[0].shape[0]} nodes, "
                f"weights[{k}] has shape {tuple(weight.shape)}"
            )
    sums = [weight.detach().abs().sum(1).to(weights[0].dtype) for weight in weights]  # (F_out,) each
    for k, (weight, row_sums) in enumerate(zip(weights, sums)):
        if not torch.isfinite(row_sums).all():  # cheap check; the full one only on the error path
            if not torch.isfinite(weight).all():
                raise InputValueError(f"weights[{k}] contains NaN or inf; GRAPES factors would be undefined")
            raise InputValueError(f"GRAPES factors are not finite (|weights[{k}]| row sums overflow {weight.dtype})")
    importance = sum(sums)  # (F_out,)
    top = importance.max()
    if not top > 0:
        raise InputValueError("all weights converging on the layer are zero; GRAPES factors (I_n / max I) undefined")
    factors = 2.0 * importance / top
    if not torch.isfinite(factors).all():  # overflow of |W| sums
        raise InputValueError("GRAPES factors are not finite (weight magnitudes overflow the dtype)")
    return factors.clamp(1.0, 2.0) if clip else factors


class GRAPES:
    """GRAPES attached to the hidden layers of a network, for use with any optimizer.

    Args:
        model: a network with ``hidden_layers()`` (bottom to top, output layer excluded), e.g.
            :class:`~analog_snu.layers.SNUNetwork` or :class:`~analog_snu.layers.MLP`. Each hidden
            layer is an SNU layer (``weight_ih`` and optional ``weight_hh``) or a dense
            ``nn.Linear`` / aihwkit ``AnalogLinear``, digital or analog.
        variant: ``"propagating"`` or ``"local"`` (module docstring).
        clip: clip the factors to [1, 2].

    Use per mini-batch (``analog_snu.training.train_epoch(..., grapes=grapes)`` does this)::

        grapes.begin_batch()        # factors from the weights at the start of the batch
        loss = loss_fn(model(x), y)
        loss.backward()
        grapes.before_step()        # "local": scale the layers' own updates
        optimizer.step()

    If a training forward runs without ``begin_batch()``, the factors are computed then,
    from the weights at that moment. :meth:`remove` detaches GRAPES from the model.
    """

    def __init__(self, model: nn.Module, variant: str = "propagating", clip: bool = True) -> None:
        if variant not in GRAPES_VARIANTS:
            raise ConfigError(f"variant must be one of {list(GRAPES_VARIANTS)}, got {variant!r}")
        if not isinstance(clip, bool):
            raise ConfigError(f"clip must be a bool, got {clip!r}")
        hidden = getattr(model, "hidden_layers", None)
        if not callable(hidden):
            raise ConfigError(
                f"GRAPES needs a model with a hidden_layers() method (e.g. SNUNetwork, MLP), "
                f"got {type(model).__name__}"
            )
        layers = list(hidden())
        if not layers:
            raise ConfigError(f"{type(model).__name__}.hidden_layers() returned no layers; GRAPES modulates hidden layers only")
        self.variant = variant
        self.clip = clip
        self.layers = layers
        self._maps = [_linear_maps(layer) for layer in layers]
        self._factors: list[Tensor] | None = None
        self._handles = []
        if variant == "propagating":
            self._handles = [layer.register_forward_hook(self._make_hook(i)) for i, layer in enumerate(layers)]

    @property
    def factors(self) -> list[Tensor] | None:
        """The current factors, one (F_out,) tensor per hidden layer, or None between batches."""
        return self._factors

    def compute_factors(self) -> list[Tensor]:
        """Factors of every hidden layer from its current weights (analog ones via ``get_weights()``)."""
        return [grapes_modulation(*(_weight(m) for m in maps), clip=self.clip) for maps in self._maps]

    def begin_batch(self) -> None:
        """Fix the factors of this mini-batch from the weights now."""
        self._factors = self.compute_factors()

    def before_step(self) -> None:
        """Apply the ``"local"`` scaling to the pending updates; end the batch. Call before ``optimizer.step()``."""
        if self.variant == "local":
            factors = self._factors if self._factors is not None else self.compute_factors()
            for layer, maps, layer_factors in zip(self.layers, self._maps, factors):
                for linear in maps:
                    scale_weight_update(linear, layer_factors)
                for param in _node_parameters(layer):
                    if param.grad is not None:
                        param.grad.mul_(layer_factors.to(param.grad.device, param.grad.dtype))
        self._factors = None

    def remove(self) -> None:
        """Detach the hooks from the model (GRAPES no longer acts)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not (isinstance(out, Tensor) and torch.is_grad_enabled() and out.requires_grad):
                return None
            if self._factors is None:
                self._factors = self.compute_factors()
            factors = self._factors[index]
            # The hook sees only the error arriving at this tensor from above, not the
            # layer's own recurrence (that runs on the unstacked per-step outputs).
            out.register_hook(lambda grad: grad * factors.to(grad.device, grad.dtype))
            return None

        return hook

    def __repr__(self) -> str:
        return f"GRAPES(variant={self.variant!r}, clip={self.clip}, layers={len(self.layers)})"


def _linear_maps(layer: nn.Module) -> list[nn.Module]:
    """The linear maps whose rows end on the layer's nodes: W (and H) of an SNU, or the dense map."""
    if isinstance(getattr(layer, "weight_ih", None), nn.Module):
        hh = getattr(layer, "weight_hh", None)
        return [layer.weight_ih] + ([hh] if isinstance(hh, nn.Module) else [])
    if isinstance(layer, nn.Linear):  # includes aihwkit AnalogLinear
        return [layer]
    raise ConfigError(
        f"GRAPES supports SNU layers (weight_ih/weight_hh) and dense nn.Linear/AnalogLinear hidden layers, "
        f"got {type(layer).__name__}"
    )


def _weight(linear: nn.Module) -> Tensor:
    """(F_out, F_in) weights: aihwkit ``get_weights()`` for analog maps (all tiles), the parameter otherwise."""
    return read_weight(linear) if is_analog(linear) else linear.weight.detach()


def _node_parameters(layer: nn.Module) -> list[Tensor]:
    """Per-node (F_out,) parameters of an SNU layer besides its weights: threshold, learnable decay."""
    params = []
    for name in ("threshold", "decay"):
        value = getattr(layer, name, None)
        if isinstance(value, nn.Parameter) and value.dim() == 1:
            params.append(value)
    return params

