r"""Feedback alignment (FA), direct feedback alignment (DFA), and their GRAPES variants.

The learning rules of IBM's GRAPES reference code (``numpy_grapes_functions.py``, learn types
``BP``, ``BPgrapes``, ``FA``, ``FAgrapes``, ``DFA``, ``DFAgrapes``), for any network of
dense, convolution and SNU layers (:func:`~analog_snu.training.grapes.network_layers`,
layers 0 … L-1 in registration order, L-1 the output layer). With :math:`e` the error at
the output layer (``dL/dz`` of its output z) and :math:`\delta_l` the error at the output of
layer l (its pre-activation for a dense/conv layer, its spikes for an SNU layer):

.. math::

    \text{BP:}\quad \delta_l = (W_{l+1}^T \delta_{l+1}) \odot f'(a_l) \qquad
    \text{FA:}\quad \delta_l = (B_{l+1}^T \delta_{l+1}) \odot f'(a_l) \qquad
    \text{DFA:}\quad \delta_l = (D_{l+1}^T e) \odot f'(a_l)

- :math:`B_{l+1}` has the shape of :math:`W_{l+1}` (F_out, F_in) or (C_out, C_in, kH, kW): it
  replaces the layer's weights in the backward pass only (a convolution's input gradient is
  the transposed convolution with :math:`B`). The reference stores its transpose.
- :math:`D_{l+1}` has shape (C, F_in): it maps the C output errors straight onto the F_in
  inputs of layer l+1 (a convolution's input flattened, C_in * H * W). Where layer l+1 sees
  more rows than the output has (an SNU layer's T*N time-batched inputs under a
  time-averaged readout of N rows), the error of sample n is sent to all its time steps.
- The weights of every layer still learn from their own :math:`\delta`; the recurrent
  weights and the reset path of an SNU layer keep exact BPTT inside the layer.
- Feedback matrices are fixed, drawn once from a seed (``init="he_uniform"``: U(±sqrt(6 /
  fan_in)) as the reference's default ``w_init``; ``"nokland"``: U(±1/sqrt(fan_out)) for FA,
  U(±1/sqrt(C)) for DFA), one independent stream per layer, and exported/loaded as named
  tensors (:meth:`FeedbackAlignment.state_dict`).

GRAPES on top (:func:`make_learning_rule`):

- ``FAgrapes`` = FA + propagating GRAPES (:class:`~analog_snu.training.grapes.GRAPES`):
  :math:`\delta_l = M_l \odot (B_{l+1}^T \delta_{l+1}) \odot f'(a_l)`, :math:`M_l` from the row
  sums of :math:`|W_l|`; the reference does not clip here (default ``clip=False``).
- ``DFAgrapes`` follows the reference's update literally. With the *fan-out* importance
  :math:`P_k[j] = 2 \sum_n |W_k[n, j]| / \max_j(\cdot)` (column sums: the weights leaving
  node j of layer k-1 into layer k; per input channel for a convolution), the weight update
  of every hidden layer 1 ≤ l ≤ L-2 is scaled per row and per column,

  .. math::

      \Delta W_l[n, i] \propto (D_{l+1}^T e)_n f'(a_{l,n}) \; P_{l+1}[n] \; P_l[i] \; x_i,

  with :math:`P_{L-1} \equiv 1`; the first layer gets plain DFA (as in the reference, whose
  ``delta_a`` broadcasts to a matrix there). Unclipped by default, as in the reference.
  The per-column factor needs a digital weight gradient, so DFAgrapes refuses analog layers.

Use (every rule is a :class:`~analog_snu.training.rules.LearningRule`, so ``train_epoch(...,
rule=rule)`` runs it)::

    rule = make_learning_rule(model, "DFAgrapes", seed=0)
    rule.begin_batch(); loss.backward(); rule.before_step(); optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from analog_snu.errors import CheckpointError, ConfigError, ShapeError
from analog_snu.schema import check_seed
from analog_snu.tiles import is_analog
from analog_snu.training.grapes import (
    GRAPES,
    _normalise,
    is_conv_map,
    layer_maps,
    map_weight,
    network_layers,
)
from analog_snu.training.rules import Backprop, LearningRule, expect_no_state

__all__ = [
    "FEEDBACK_RULES",
    "FEEDBACK_INITS",
    "LEARNING_RULES",
    "FeedbackAlignment",
    "DFAGrapes",
    "DFA_LOCAL_REFUSAL",
    "ComposedRule",
    "make_learning_rule",
    "learning_rule_name",
    "fanout_modulation",
]

FEEDBACK_RULES = ("fa", "dfa")
#: why DFAgrapes has no "local" variant (a request for one is refused, never run as the other)
DFA_LOCAL_REFUSAL = ("--grapes local does not apply to --rule dfa: DFA sends the output error straight to every "
                     "layer, so DFAgrapes (IBM's rule) has one form, which scales each layer's own update; use "
                     "--grapes propagating")
FEEDBACK_INITS = ("he_uniform", "nokland")
#: learn types of IBM's reference code
LEARNING_RULES = ("BP", "BPgrapes", "FA", "FAgrapes", "DFA", "DFAgrapes")


def _input_map(layer: nn.Module) -> nn.Module:
    """The map applied to the layer's input: ``weight_ih`` of a neuron layer, else the layer itself."""
    return layer.weight_ih if isinstance(getattr(layer, "weight_ih", None), nn.Module) else layer


def _check_layers(model: nn.Module, what: str) -> list[nn.Module]:
    layers = network_layers(model)
    if len(layers) < 2:
        raise ConfigError(
            f"{what} needs a model with at least two dense/conv/SNU layers (a hidden layer and an output "
            f"layer), {type(model).__name__} has {len(layers)}"
        )
    for layer in layers:
        layer_maps(layer)  # raises on a neuron layer with an unsupported map
    return layers


class _Bridge(torch.autograd.Function):
    """Identity on ``y`` forward; backward sends ``grad_y`` on to ``y`` and ``feedback(grad_y)`` to ``x``."""

    @staticmethod
    def forward(ctx, x, y, feedback):  # type: ignore[override]
        ctx.feedback = feedback
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        return ctx.feedback(grad_y), grad_y, None


class FeedbackAlignment:
    """FA or DFA on a network: the error reaching each layer's input comes through fixed random matrices.

    Args:
        model: a network of dense/conv/SNU layers (any ``nn.Module``, see
            :func:`~analog_snu.training.grapes.network_layers`); at least two layers.
        rule: ``"fa"`` or ``"dfa"``.
        seed: seed of the feedback matrices (layer k draws from its own stream ``(seed, k)``).
        init: ``"he_uniform"`` or ``"nokland"`` (module docstring).

    The matrices of layers 1 … L-1 are drawn at construction, except DFA matrices of
    convolution inputs, whose size (C_in * H * W) is known at the first training forward.
    ``state_dict()`` / ``load_state_dict()`` export and restore them by layer name.
    ``begin_batch()``/``before_step()`` exist for the common per-batch protocol and do nothing.

    With GRAPES: ``make_learning_rule(model, "FAgrapes")`` builds IBM's FAgrapes, whose factors
    are **not** clipped. Combined by hand, pass ``clip=False`` to match it:
    ``GRAPES(model, clip=False)``; ``GRAPES(model)`` clips the factors to [1, 2] (as IBM's
    BPgrapes does).

    Shape:
        FA: ``B`` like the weight of the layer's input map. DFA: ``D`` (C, F_in) with C the
        output layer's width and F_in the per-row input size of the layer.
    """

    def __init__(self, model: nn.Module, rule: str = "fa", seed: int = 0, init: str = "he_uniform") -> None:
        if rule not in FEEDBACK_RULES:
            raise ConfigError(f"rule must be one of {list(FEEDBACK_RULES)}, got {rule!r}")
        if init not in FEEDBACK_INITS:
            raise ConfigError(f"init must be one of {list(FEEDBACK_INITS)}, got {init!r}")
        check_seed(seed)
        self.rule = rule
        self.seed = seed
        self.init = init
        self.layers = _check_layers(model, rule.upper())
        self.output_layer = self.layers[-1]
        output_map = layer_maps(self.output_layer)[0]
        if rule == "dfa" and is_conv_map(output_map):
            raise ConfigError("DFA needs a dense output layer (its error is (..., C)); the last layer is a convolution")
        self._classes = output_map.out_features if rule == "dfa" else 0
        names = {id(m): n for n, m in model.named_modules()}
        self._maps = [_input_map(layer) for layer in self.layers[1:]]
        self.names = [names[id(m)] for m in self._maps]
        self._matrices: list[Tensor | None] = [self._draw(k + 1, m, None) for k, m in enumerate(self._maps)]
        self._error: Tensor | None = None
        self._handles = []
        for k, module in enumerate(self._maps):
            self._handles.append(module.register_forward_pre_hook(self._make_pre_hook(k)))
            self._handles.append(module.register_forward_hook(self._make_hook(k), prepend=True))
        if rule == "dfa":
            self._handles.append(self.output_layer.register_forward_hook(self._capture_error))
        self._inputs: dict[int, Tensor] = {}

    # ------------------------------------------------------------ matrices

    def _draw(self, index: int, module: nn.Module, input_shape) -> Tensor | None:
        """Feedback matrix of layer ``index`` (float32 CPU), or None while a DFA conv size is unknown."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        if self.rule == "fa":
            shape = tuple(map_weight(module).shape)
            fan_in = math.prod(shape[1:])
            fan_out = shape[0] * math.prod(shape[2:])
            limit = math.sqrt(6.0 / fan_in) if self.init == "he_uniform" else 1.0 / math.sqrt(fan_out)
        else:
            if is_conv_map(module):
                if input_shape is None:
                    return None
                features = math.prod(input_shape[1:])
            else:
                features = module.in_features
            shape = (self._classes, features)
            limit = math.sqrt(6.0 / features) if self.init == "he_uniform" else 1.0 / math.sqrt(self._classes)
        return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * limit

    def state_dict(self) -> dict[str, Tensor]:
        """The feedback matrices by the name of the map they serve (e.g. ``"layers.1.weight_ih"``)."""
        missing = [name for name, m in zip(self.names, self._matrices) if m is None]
        if missing:
            raise CheckpointError(
                f"DFA feedback matrices of convolution inputs {missing} are drawn at the first training forward; "
                f"run one batch before exporting them"
            )
        return {name: matrix.clone() for name, matrix in zip(self.names, self._matrices)}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore matrices exported by :meth:`state_dict` (same model, same rule)."""
        if not isinstance(state, Mapping) or set(state) != set(self.names):
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointError(f"feedback state must hold exactly the matrices {self.names}, got {got}")
        for k, name in enumerate(self.names):
            value = state[name]
            current = self._matrices[k]
            if not isinstance(value, Tensor) or (current is not None and value.shape != current.shape):
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                want = tuple(current.shape) if current is not None else "(C, C_in*H*W)"
                raise CheckpointError(f"feedback matrix {name!r} must have shape {want}, got {got}")
            self._matrices[k] = value.detach().to(torch.float32).clone()

    @property
    def matrices(self) -> list[Tensor | None]:
        """The feedback matrices of layers 1 … L-1 (None: a DFA conv matrix not drawn yet)."""
        return list(self._matrices)

    # ------------------------------------------------------------ hooks

    def _capture_error(self, module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(out, Tensor) and torch.is_grad_enabled() and out.requires_grad:
            self._error = None

            def keep(grad: Tensor) -> None:
                self._error = grad

            out.register_hook(keep)

    def _make_pre_hook(self, k: int):
        def pre_hook(module, args):
            if not (torch.is_grad_enabled() and args and isinstance(args[0], Tensor) and args[0].requires_grad):
                return None
            self._inputs[k] = args[0]
            return (args[0].detach(),) + tuple(args[1:])

        return pre_hook

    def _make_hook(self, k: int):
        def hook(module, args, output):
            x = self._inputs.pop(k, None)
            if x is None:
                return None
            if self._matrices[k] is None:  # DFA conv: size known now
                self._matrices[k] = self._draw(k + 1, module, tuple(x.shape))
            return _Bridge.apply(x, output, self._feedback_fn(k, module, x))

        return hook

    def _feedback_fn(self, k: int, module: nn.Module, x: Tensor) -> Callable[[Tensor], Tensor]:
        matrix = self._matrices[k]
        x_shape = x.shape
        if self.rule == "fa":
            if is_conv_map(module):

                def fa_conv(grad_y: Tensor) -> Tensor:
                    weight = matrix.to(grad_y.device, grad_y.dtype)
                    return torch.nn.grad.conv2d_input(
                        x_shape, weight, grad_y, module.stride, module.padding, module.dilation, module.groups
                    )

                return fa_conv
            return lambda grad_y: grad_y @ matrix.to(grad_y.device, grad_y.dtype)

        def dfa(grad_y: Tensor) -> Tensor:
            error = self._error
            if error is None:
                raise ConfigError(
                    "DFA: the output layer received no error in this backward pass; the loss must depend on the "
                    "output of the last layer"
                )
            error = error.reshape(-1, error.shape[-1])  # (P, C)
            rows = x_shape[0]
            if rows % error.shape[0]:
                raise ShapeError(
                    f"DFA: layer input {self.names[k]!r} has {rows} rows, not a multiple of the output's "
                    f"{error.shape[0]} rows (outputs {tuple(self._error.shape)})"
                )
            signal = error @ matrix.to(error.device, error.dtype)  # (P, F_in)
            signal = signal.repeat(rows // error.shape[0], 1)  # time-major rows t * N + n
            return signal.reshape(x_shape)

        return dfa

    # ------------------------------------------------------------ protocol

    def begin_batch(self) -> None:
        """Nothing to do per batch (the matrices are fixed)."""

    def before_step(self) -> None:
        """Nothing to do before the optimizer step."""
        self._error = None

    def remove(self) -> None:
        """Detach from the model: backprop again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __repr__(self) -> str:
        return f"FeedbackAlignment(rule={self.rule!r}, seed={self.seed}, init={self.init!r}, layers={len(self.layers)})"


@torch.no_grad()
def fanout_modulation(module: nn.Module, clip: bool = False, nodes: int | None = None) -> Tensor:
    """Fan-out importance ``P[j] = 2 sum_n |W[n, j]| / max`` of the inputs of a dense or conv map.

    Args:
        module: the map; a convolution sums over output channels and kernel positions.
        clip: clip to [1, 2].
        nodes: group the inputs into this many nodes first (a dense map reading flattened
            (C, H, W) features: the C channel-major groups), summing within a group.

    Shape: returns (F_in,) for a dense map, (C_in,) for a convolution, or (nodes,).
    """
    if is_conv_map(module) and module.groups != 1:
        raise ConfigError("DFAgrapes supports convolutions with groups=1 only")
    weight = map_weight(module).abs()
    sums = weight.sum(0) if weight.dim() == 2 else weight.sum((0, 2, 3))
    if nodes is not None and sums.shape[0] != nodes:
        if sums.shape[0] % nodes:
            raise ConfigError(
                f"DFAgrapes: a layer reads {sums.shape[0]} inputs from a layer of {nodes} nodes/channels; "
                f"the fan-out factor needs a whole number of inputs per node"
            )
        sums = sums.reshape(nodes, -1).sum(1)
    return _normalise([sums], ["weight"], [weight], clip)


class DFAGrapes:
    """The reference's ``DFAgrapes`` scaling on top of :class:`FeedbackAlignment` ``rule="dfa"``.

    Per batch, hidden layer l (1 ≤ l ≤ L-2) gets a per-node factor :math:`P_{l+1}` on the error
    at its output (ones for the top hidden layer) and a per-input factor :math:`P_l` on the
    columns of its input map's weight gradient (module docstring of this file).
    """

    def __init__(self, model: nn.Module, clip: bool = False) -> None:
        if not isinstance(clip, bool):
            raise ConfigError(f"clip must be a bool, got {clip!r}")
        self.layers = _check_layers(model, "DFAgrapes")
        self.clip = clip
        for layer in self.layers:
            if any(is_analog(m) for m in layer_maps(layer)):
                raise ConfigError(
                    f"DFAgrapes scales weight-gradient columns, which analog tiles do not expose "
                    f"({type(layer).__name__} is analog); use DFA, FAgrapes or BPgrapes on analog layers"
                )
        self._maps = [_input_map(layer) for layer in self.layers]
        self._channel_dims = [-3 if is_conv_map(m) else -1 for m in self._maps]
        self._rows: dict[int, Tensor] = {}
        self._cols: dict[int, Tensor] = {}
        self._handles = [
            self.layers[l].register_forward_hook(self._make_hook(l)) for l in range(1, len(self.layers) - 1)
        ]
        self._factors_ready = False

    def compute_factors(self) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
        """Row factors ``{l: P_{l+1}}`` and column factors ``{l: P_l}`` of hidden layers 1 … L-2."""
        rows, cols = {}, {}
        top = len(self.layers) - 2
        for l in range(1, top + 1):
            cols[l] = fanout_modulation(self._maps[l], self.clip)
            if l < top:
                width = layer_maps(self.layers[l])[0]
                width = width.out_channels if is_conv_map(width) else width.out_features
                rows[l] = fanout_modulation(self._maps[l + 1], self.clip, nodes=width)
        return rows, cols

    def begin_batch(self) -> None:
        self._rows, self._cols = self.compute_factors()
        self._factors_ready = True

    def before_step(self) -> None:
        if not self._factors_ready:
            self._rows, self._cols = self.compute_factors()
        for l, factors in self._cols.items():
            weight = self._maps[l].weight
            if weight.grad is not None:
                shape = (1, -1) + (1,) * (weight.grad.dim() - 2)
                weight.grad.mul_(factors.to(weight.grad.device, weight.grad.dtype).view(shape))
        self._factors_ready = False

    def _make_hook(self, l: int):
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not (isinstance(out, Tensor) and torch.is_grad_enabled() and out.requires_grad):
                return None
            if not self._factors_ready:
                self._rows, self._cols = self.compute_factors()
                self._factors_ready = True
            factors = self._rows.get(l)
            if factors is None:
                return None
            shape = (-1,) + (1,) * (-self._channel_dims[l] - 1)
            out.register_hook(lambda grad: grad * factors.to(grad.device, grad.dtype).view(shape))
            return None

        return hook

    def state_dict(self) -> dict[str, Tensor]:
        """``{}``: the factors come from the weights of every batch."""
        return {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Accepts only the empty state."""
        expect_no_state("DFAgrapes", state)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class ComposedRule:
    """One of the reference's learn types made of parts: FA or DFA, optionally with GRAPES, or
    GRAPES alone (``"BPgrapes"``), applied in order.

    Built by :func:`make_learning_rule`; a :class:`~analog_snu.training.rules.LearningRule`. Its
    state is that of its :class:`FeedbackAlignment` part (the feedback matrices by the name of
    the map they serve), ``{}`` without one.
    """

    def __init__(self, name: str, parts: list[LearningRule]) -> None:
        self.name = name
        self.parts = parts

    @property
    def feedback(self) -> FeedbackAlignment | None:
        return next((p for p in self.parts if isinstance(p, FeedbackAlignment)), None)

    def begin_batch(self) -> None:
        for part in self.parts:
            part.begin_batch()

    def before_step(self) -> None:
        for part in self.parts:
            part.before_step()

    def state_dict(self) -> dict[str, Tensor]:
        feedback = self.feedback
        return feedback.state_dict() if feedback is not None else {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        feedback = self.feedback
        if feedback is None:
            expect_no_state(self.name, state)
            return
        feedback.load_state_dict(state)

    def remove(self) -> None:
        for part in self.parts:
            part.remove()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"ComposedRule({self.name!r}, parts={self.parts})"


def make_learning_rule(
    model: nn.Module,
    rule: str,
    *,
    seed: int = 0,
    clip: bool | None = None,
    feedback_init: str = "he_uniform",
    grapes_variant: str = "propagating",
) -> LearningRule:
    """Attach one of :data:`LEARNING_RULES` to ``model``.

    Args:
        model: any network :func:`~analog_snu.training.grapes.network_layers` accepts.
        rule: ``"BP"``, ``"BPgrapes"``, ``"FA"``, ``"FAgrapes"``, ``"DFA"`` or ``"DFAgrapes"``.
        seed: seed of the FA/DFA feedback matrices.
        clip: clip GRAPES factors to [1, 2]; ``None`` = the reference's default per rule
            (``BPgrapes`` clips, ``FAgrapes`` and ``DFAgrapes`` do not).
        feedback_init: ``"he_uniform"`` (reference default) or ``"nokland"``.
        grapes_variant: ``"propagating"`` (the reference) or ``"local"`` for BPgrapes/FAgrapes;
            DFAgrapes has one form (``"local"`` is refused, see :data:`DFA_LOCAL_REFUSAL`).

    Returns:
        a :class:`~analog_snu.training.rules.LearningRule`: for ``"BP"`` a
        :class:`~analog_snu.training.rules.Backprop` (it does nothing), else a :class:`ComposedRule`.
    """
    if rule not in LEARNING_RULES:
        raise ConfigError(f"rule must be one of {list(LEARNING_RULES)}, got {rule!r}")
    if clip is not None and not isinstance(clip, bool):
        raise ConfigError(f"clip must be a bool or None, got {clip!r}")
    if rule == "DFAgrapes" and grapes_variant != "propagating":
        raise ConfigError(f"grapes_variant={grapes_variant!r} does not apply to DFAgrapes: DFA sends the output "
                          "error straight to every layer, so DFAgrapes (IBM's rule) has one form, which scales each "
                          "layer's own update; use grapes_variant='propagating'")
    if rule == "BP":
        return Backprop()
    if clip is None:
        clip = rule == "BPgrapes"
    parts: list[LearningRule] = []
    base = rule.removesuffix("grapes")
    if base == "FA":
        parts.append(FeedbackAlignment(model, "fa", seed=seed, init=feedback_init))
    elif base == "DFA":
        parts.append(FeedbackAlignment(model, "dfa", seed=seed, init=feedback_init))
    if rule in ("BPgrapes", "FAgrapes"):
        parts.append(GRAPES(model, variant=grapes_variant, clip=clip))
    elif rule == "DFAgrapes":
        parts.append(DFAGrapes(model, clip=clip))
    return ComposedRule(rule, parts)


def learning_rule_name(rule: str, grapes: str | None) -> str:
    """The :data:`LEARNING_RULES` name of a run's ``training.rule`` (``"bp"``, ``"fa"``, ``"dfa"``) with
    its ``training.grapes`` variant (``None``: no GRAPES).

    >>> learning_rule_name("dfa", "propagating"), learning_rule_name("bp", None)
    ('DFAgrapes', 'BP')
    """
    return rule.upper() + ("grapes" if grapes else "")
