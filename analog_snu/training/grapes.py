r"""GRAPES: Group Responsibility for Adjusting the Propagation of Error Signals.

Dellaferrera, Woźniak, Indiveri, Pantazi, Eleftheriou, Nature Communications 13 (2022).
Each hidden node n gets a factor from the weights converging on it,

.. math::

    I_n = \sum_k \sum_i |W_k[n, i]|, \qquad M_n = 2\,\frac{I_n}{\max_m I_m}
    \quad (\text{clipped to } [1, 2] \text{ by default}),

computed once per mini-batch from the weights at its start (an SNU layer sums its
input weights W and recurrent weights H together; a convolution sums everything that
converges on output channel c, :math:`I_c = \sum_{i, u, v} |W[c, i, u, v]|`, and the
factor of channel c scales the error at every position of that channel), and the error
signal of the node is scaled by it:

- ``"propagating"``: :math:`\delta_l = M_l \odot (W_{l+1}^T \delta_{l+1}) \odot f'(a_l)`.
  The modulated error reaches the layer's own weights and flows on to the layers below,
  so the modulation compounds with depth. In an SNU layer it scales the error arriving
  from the layer above at every time step, never the error carried back through the
  layer's own recurrence (no compounding over time). With feedback alignment
  (:mod:`analog_snu.training.feedback_alignment`) :math:`W_{l+1}^T` is the fixed random
  :math:`B_{l+1}`: IBM's ``FAgrapes``.
- ``"local"``: the error is left alone; only the layer's own per-node parameter updates
  (its weight rows, bias, threshold, learnable decay) are scaled by :math:`M_l`.

The output layer is never modulated. Because GRAPES only changes error signals and
updates, it composes with any optimizer (SGD, Adam, aihwkit ``AnalogSGD`` /
``AnalogOptimizer``). With pulsed in-memory training it acts on the rows of d that the tile
update receives, with hardware-aware training on the gradient
(see :mod:`analog_snu.tiles.updates`).

Which layers: a model's ``hidden_layers()`` if it has one; otherwise every dense, convolution
or neuron (SNU-like, ``weight_ih``) layer found in registration order (:func:`network_layers`),
all but the last.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.tiles import is_analog, is_conv2d_map, is_linear_map, read_weight, scale_weight_update
from analog_snu.training.rules import expect_no_state

__all__ = [
    "GRAPES",
    "GRAPES_VARIANTS",
    "grapes_modulation",
    "network_layers",
    "hidden_layers_of",
    "layer_maps",
    "is_conv_map",
]

GRAPES_VARIANTS = ("propagating", "local")


@torch.no_grad()
def grapes_modulation(*weights: Tensor, clip: bool = True) -> Tensor:
    """The GRAPES factor of every node from the weight matrices converging on it.

    Args:
        *weights: one or more matrices (F_out, F_in_k) whose rows end on the same F_out nodes
            (e.g. an SNU layer's input weights W and recurrent weights H). A convolution kernel
            (C_out, C_in, kH, kW) is passed flattened to (C_out, C_in * kH * kW).
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
    return _normalise(sums, [f"weights[{k}]" for k in range(len(weights))], weights, clip)


def _normalise(sums: list[Tensor], names: list[str], weights, clip: bool) -> Tensor:
    """2 I / max I from per-node sums (one (F,) tensor per weight), with the finiteness checks."""
    for name, weight, node_sums in zip(names, weights, sums):
        if not torch.isfinite(node_sums).all():  # cheap check; the full one only on the error path
            if not torch.isfinite(weight).all():
                raise InputValueError(f"{name} contains NaN or inf; GRAPES factors would be undefined")
            raise InputValueError(f"GRAPES factors are not finite (|{name}| sums overflow {weight.dtype})")
    importance = sum(sums)  # (F,)
    top = importance.max()
    if not top > 0:
        raise InputValueError("all weights converging on the layer are zero; GRAPES factors (I_n / max I) undefined")
    factors = 2.0 * importance / top
    if not torch.isfinite(factors).all():  # overflow of |W| sums
        raise InputValueError("GRAPES factors are not finite (weight magnitudes overflow the dtype)")
    return factors.clamp(1.0, 2.0) if clip else factors


# ---------------------------------------------------------------- which layers, which maps


def is_conv_map(module: nn.Module) -> bool:
    """True for a 2-D convolution map: ``nn.Conv2d`` or aihwkit ``AnalogConv2d``."""
    return is_conv2d_map(module)


def _is_dense_map(module: nn.Module) -> bool:
    return is_linear_map(module)


def _is_neuron_layer(module: nn.Module) -> bool:
    """An SNU-like layer: its input map is a ``weight_ih`` sub-module (dense or convolution)."""
    return isinstance(getattr(module, "weight_ih", None), nn.Module)


def _is_layer(module: nn.Module) -> bool:
    return _is_neuron_layer(module) or _is_dense_map(module) or is_conv_map(module)


def network_layers(model: nn.Module) -> list[nn.Module]:
    """Every dense, convolution and neuron layer of ``model`` in registration order.

    A neuron layer (a module with a ``weight_ih`` sub-module, e.g. an SNU or conv-SNU layer)
    counts once; its own maps are not listed. Other modules are searched recursively. A
    leaf module with trainable parameters that is none of these (e.g. ``nn.Conv1d``,
    ``nn.LSTM``, ``nn.BatchNorm2d``) raises, since no rule here knows what converges on its
    nodes.
    """
    found: list[nn.Module] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            where = f"{prefix}{name}"
            if _is_layer(child):
                found.append(child)
            elif any(True for _ in child.children()):
                visit(child, where + ".")
            elif any(p.requires_grad for p in child.parameters(recurse=False)):
                raise ConfigError(
                    f"module {where!r} ({type(child).__name__}) has trainable parameters but is not a supported "
                    f"layer; GRAPES/FA/DFA support nn.Linear/AnalogLinear, nn.Conv2d/AnalogConv2d and neuron "
                    f"layers with a weight_ih map (SNU, ConvSNU)"
                )

    if _is_layer(model):
        raise ConfigError(f"model must be a network of layers, got a single {type(model).__name__}")
    visit(model, "")
    return found


def hidden_layers_of(model: nn.Module) -> list[nn.Module]:
    """The model's ``hidden_layers()`` if it defines one, else all of :func:`network_layers` but the last."""
    hidden = getattr(model, "hidden_layers", None)
    if callable(hidden):
        layers = list(hidden())
        if not layers:
            raise ConfigError(
                f"{type(model).__name__}.hidden_layers() returned no layers; GRAPES modulates hidden layers only"
            )
        return layers
    layers = network_layers(model)
    if len(layers) < 2:
        raise ConfigError(
            f"{type(model).__name__} has {len(layers)} dense/conv/SNU layer(s); GRAPES needs at least one hidden "
            f"layer below the output layer (or a hidden_layers() method)"
        )
    return layers[:-1]


def layer_maps(layer: nn.Module) -> list[nn.Module]:
    """The maps whose rows (output channels) end on the layer's nodes: W (and H) of a neuron layer, or the map."""
    if _is_neuron_layer(layer):
        hh = getattr(layer, "weight_hh", None)
        maps = [layer.weight_ih] + ([hh] if isinstance(hh, nn.Module) else [])
        for m in maps:
            if not (_is_dense_map(m) or is_conv_map(m)):
                raise ConfigError(
                    f"{type(layer).__name__} has a {type(m).__name__} map; GRAPES supports dense and Conv2d maps"
                )
        return maps
    if _is_dense_map(layer) or is_conv_map(layer):
        return [layer]
    raise ConfigError(
        f"GRAPES supports SNU-like layers (weight_ih/weight_hh), dense nn.Linear/AnalogLinear and "
        f"nn.Conv2d/AnalogConv2d hidden layers, got {type(layer).__name__}"
    )


def map_weight(module: nn.Module) -> Tensor:
    """The weights of a dense (F_out, F_in) or conv (C_out, C_in, kH, kW) map, analog ones via ``get_weights()``."""
    if is_analog(module):
        weight = read_weight(module)
        if is_conv_map(module):
            weight = weight.reshape(module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        return weight
    return module.weight.detach()


class GRAPES:
    """GRAPES attached to the hidden layers of a network, for use with any optimizer.

    Args:
        model: any ``nn.Module``. Hidden layers: ``model.hidden_layers()`` (bottom to top, output
            layer excluded) if defined, else every dense/conv/SNU layer but the last in
            registration order (:func:`hidden_layers_of`). Each hidden layer is an SNU-like
            layer (``weight_ih`` and optional ``weight_hh``, dense or convolutional), a dense
            ``nn.Linear`` / aihwkit ``AnalogLinear`` or a ``nn.Conv2d`` / ``AnalogConv2d``.
        variant: ``"propagating"`` or ``"local"`` (module docstring). ``"local"`` on an analog
            convolution is refused (its tile update has no per-row scaling hook here).
        clip: clip the factors to [1, 2] (the default, as IBM's ``BPgrapes``). IBM's ``FAgrapes``
            and ``DFAgrapes`` do **not** clip: next to a
            :class:`~analog_snu.training.feedback_alignment.FeedbackAlignment` made by hand, pass
            ``clip=False`` to follow them, or build the pair with
            ``make_learning_rule(model, "FAgrapes")``, which does.

    A :class:`~analog_snu.training.rules.LearningRule`: use per mini-batch
    (``analog_snu.training.train_epoch(..., rule=grapes)`` does this)::

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
        layers = hidden_layers_of(model)
        self.variant = variant
        self.clip = clip
        self.layers = layers
        self._maps = [layer_maps(layer) for layer in layers]
        if variant == "local":
            for layer, maps in zip(layers, self._maps):
                if any(is_analog(m) and is_conv_map(m) for m in maps):
                    raise ConfigError(
                        f"variant='local' cannot scale the tile update of an analog convolution "
                        f"({type(layer).__name__}); use variant='propagating'"
                    )
        self._channel_dims = [-3 if is_conv_map(maps[0]) else -1 for maps in self._maps]
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
        return [
            grapes_modulation(*(map_weight(m).flatten(1) for m in maps), clip=self.clip) for maps in self._maps
        ]

    def begin_batch(self) -> None:
        """Fix the factors of this mini-batch from the weights now."""
        self._factors = self.compute_factors()

    def before_step(self) -> None:
        """Apply the ``"local"`` scaling to the pending updates; end the batch. Call before ``optimizer.step()``."""
        if self.variant == "local":
            factors = self._factors if self._factors is not None else self.compute_factors()
            for layer, maps, layer_factors in zip(self.layers, self._maps, factors):
                for linear in maps:
                    if is_analog(linear):
                        scale_weight_update(linear, layer_factors)
                    else:
                        _scale_rows(linear.weight, layer_factors)
                        if linear.bias is not None:
                            _scale_rows(linear.bias, layer_factors)
                for param in _node_parameters(layer):
                    _scale_rows(param, layer_factors)
        self._factors = None

    def state_dict(self) -> dict[str, Tensor]:
        """``{}``: the factors come from the weights of every batch; nothing to checkpoint."""
        return {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Accepts only the empty state."""
        expect_no_state("GRAPES", state)

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
            shape = (-1,) + (1,) * (-self._channel_dims[index] - 1)  # (C, 1, 1) for conv, (F,) for dense
            # The hook sees only the error arriving at this tensor from above, not the
            # layer's own recurrence (that runs on the unstacked per-step outputs).
            out.register_hook(lambda grad: grad * factors.to(grad.device, grad.dtype).view(shape))
            return None

        return hook

    def __repr__(self) -> str:
        return f"GRAPES(variant={self.variant!r}, clip={self.clip}, layers={len(self.layers)})"


def _scale_rows(param: Tensor, factors: Tensor) -> None:
    """Multiply ``param.grad[n, ...]`` by ``factors[n]`` in place (no-op without a grad)."""
    if param.grad is None:
        return
    shape = (-1,) + (1,) * (param.grad.dim() - 1)
    param.grad.mul_(factors.to(param.grad.device, param.grad.dtype).view(shape))


def _node_parameters(layer: nn.Module) -> list[Tensor]:
    """Per-node (F_out,) parameters of an SNU layer besides its weights: threshold, learnable decay."""
    params = []
    for name in ("threshold", "decay"):
        value = getattr(layer, name, None)
        if isinstance(value, nn.Parameter) and value.dim() >= 1:
            params.append(value)
    return params
