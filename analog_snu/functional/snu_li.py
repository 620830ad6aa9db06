r"""The lateral-inhibition SNU (registered as ``"snu_li"``): the layer's strongest output resets every neuron.

The SNU of :mod:`analog_snu.functional.snu` resets each neuron by its own previous output.
In the lateral-inhibition variant (the ``SNULICell`` of IBM's neuroaikit, used in its
``MNIST_LatInh`` example) the reset gate is shared by all neurons of a layer: once any
neuron of the layer fires, every neuron of that layer starts again from its input, a
winner-take-all competition. Per sample n, with zero initial state:

.. math::

    s_{t,n} = g\left(W x_{t,n} + H y_{t-1,n}
              + d \odot s_{t-1,n} \left(1 - \max_j y_{t-1,n,j}\right)\right), \qquad
    y_{t,n} = h(s_{t,n} - \theta)

==========================  ===================================================================
symbol                      meaning (unit)
==========================  ===================================================================
:math:`x_{t,n}`             input of sample n at step t (spikes, dimensionless), (F_in,)
:math:`s_{t,n}`             membrane state (dimensionless, scale of :math:`W x`), (F,)
:math:`y_{t,n}`             output, (F,): spikes in {0, 1} (``soft=False``) or (0, 1) (``soft=True``)
:math:`W, H`                input and (optional) recurrent weights; ``current`` below is
                            :math:`W x_{t,n} + H y_{t-1,n}`
:math:`d`                   membrane decay ``decay`` in [0, 1], scalar or per neuron
:math:`\max_j y_{t-1,n,j}`  largest previous output among the layer's F neurons, for sample n
                            alone: :math:`1 - \max_j y` is the shared reset gate, a scalar per sample
:math:`\theta`              firing threshold ``threshold``, per neuron
:math:`g`                   ``"relu"``, ``"leaky_relu"`` (slope 0.1) or ``"identity"``
:math:`h`                   Heaviside step (surrogate gradient backward) or sigmoid (``soft``)
==========================  ===================================================================

Shape letters: T time steps, N batch, F neurons (F_out of the layer).

Differences from neuroaikit (read, not copied): its cell computes the gate as
``1 - tf.reduce_max(out_prev)``, a maximum over the whole (N, F) batch, so one sample's spike
resets the membranes of every other sample in the batch and a sample's output depends on
what it is batched with. Here the maximum runs over the F neurons of each sample only (the
lateral inhibition the cell models), so samples are independent. neuroaikit's default ``g`` is
the identity; the parameters (:class:`~analog_snu.functional.snu.SNUParameters`) default to
ReLU like the other SNU cells here, and ``g="identity"`` gives neuroaikit's choice.
Backward, the maximum passes its gradient to the neuron(s) holding it (split evenly between
ties, as :func:`torch.amax` does); with spikes the surrogate of :math:`h` carries it on.
"""

from __future__ import annotations

from torch import Tensor

from analog_snu.functional.snu import SNUState, snu_step

__all__ = ["snu_li_step"]


def snu_li_step(
    current: Tensor,
    state: SNUState,
    threshold: Tensor,
    decay: Tensor | float,
    g: str = "relu",
    soft: bool = False,
    surrogate: str = "tanh",
) -> tuple[Tensor, SNUState]:
    """One lateral-inhibition SNU step, differentiable through torch autograd (module docstring).

    Args:
        current: :math:`W x_t + H y_{t-1}`, shape (N, F).
        state: previous :class:`~analog_snu.functional.snu.SNUState` (zeros at t = 0).
        threshold: shape (F,).
        decay: scalar or shape (F,).
        g: membrane non-linearity, as :attr:`~analog_snu.functional.snu.SNUParameters.g`.
        soft: sigmoid output instead of spikes, as :attr:`~analog_snu.functional.snu.SNUParameters.soft`.
        surrogate: pseudo-derivative of the spike, as
            :attr:`~analog_snu.functional.snu.SNUParameters.surrogate`.

    Returns:
        ``(y_t, SNUState(s_t, y_t))`` with ``y_t`` of shape (N, F).
    """
    # the SNU step with every neuron's previous output replaced by the layer's largest: the reset
    # gate 1 - y_{t-1} becomes one per sample, (N, 1), broadcast over the F neurons
    return snu_step(current, SNUState(state.s, state.y.amax(dim=-1, keepdim=True)), threshold, decay, g, soft,
                    surrogate)
