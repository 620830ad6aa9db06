"""Task metrics: frame NLL of polyphonic music, perplexity, accuracy.

All functions are pure torch; accumulate ``(sum, count)`` pairs over a split and divide
once, so every frame (or token) weighs the same whatever the batching.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from analog_snu.errors import InputValueError, ShapeError

__all__ = ["frame_nll", "frame_nll_sum", "NLLAverages", "perplexity", "accuracy", "correct_count",
           "format_metric"]


def frame_nll(logits: Tensor, frames: Tensor) -> Tensor:
    r"""Negative log-likelihood of each frame under independent Bernoulli keys, in nats.

    .. math:: \mathrm{NLL}_t = -\sum_{k=1}^{K} \left[ v_{t,k} \log \sigma(z_{t,k})
              + (1 - v_{t,k}) \log (1 - \sigma(z_{t,k})) \right]

    with ``z`` the logits, ``v`` the 0/1 frame and K = 88 keys (Boulanger-Lewandowski et al.
    2012). Computed from logits (``binary_cross_entropy_with_logits``), stable for any z.

    Shape:
        logits, frames: (..., K) -> per-frame NLL (...).
    """
    if logits.shape != frames.shape:
        raise ShapeError(f"logits {tuple(logits.shape)} and frames {tuple(frames.shape)} must have the same shape")
    frames = frames.to(logits.dtype)
    if ((frames != 0) & (frames != 1)).any():
        raise InputValueError("frames must hold only 0 and 1 (notes off/on)")
    return F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)


def frame_nll_sum(logits: Tensor, frames: Tensor, mask: Tensor | None = None) -> tuple[Tensor, int]:
    """Sum of :func:`frame_nll` over the frames where ``mask`` is true, and how many frames that is.

    Divide the split's total sum by its total count for the paper's "NLL per frame".

    Shape: logits, frames (T, N, K); mask (T, N) bool (``None``: every frame counts).
    """
    per_frame = frame_nll(logits, frames)
    if mask is None:
        return per_frame.sum(), per_frame.numel()
    if mask.shape != per_frame.shape:
        raise ShapeError(f"mask must have shape {tuple(per_frame.shape)}, got {tuple(mask.shape)}")
    return per_frame[mask].sum(), int(mask.sum())


class NLLAverages:
    """The four averages of the frame NLL that JSB results are reported in, accumulated over batches.

    Papers differ in two choices (Boulanger-Lewandowski et al. 2012 average over all frames of
    the split; a pipeline scoring one sequence per batch averages each sequence, then the
    sequences; and the first frame, predicted from silence, is scored or left out):

    ``nll``                        per frame over the split, first frames included
    ``nll_no_first``               per frame over the split, first frames left out
    ``nll_per_sequence``           mean over sequences of each sequence's mean, first frames included
    ``nll_per_sequence_no_first``  the same with first frames left out

    Shape (of :meth:`add`): logits, frames (T, N, K); mask (T, N) bool, True on the real frames
    of each sequence, which start at t = 0.
    """

    def __init__(self) -> None:
        self.frame_sum = {"all": 0.0, "no_first": 0.0}
        self.frame_count = {"all": 0, "no_first": 0}
        self.sequence_means: dict[str, list[float]] = {"all": [], "no_first": []}

    def add(self, logits: Tensor, frames: Tensor, mask: Tensor) -> None:
        per_frame = frame_nll(logits, frames).to(torch.float64)
        if mask.shape != per_frame.shape:
            raise ShapeError(f"mask must have shape {tuple(per_frame.shape)}, got {tuple(mask.shape)}")
        later = mask.clone()
        later[0] = False
        for key, keep in (("all", mask), ("no_first", later)):
            sums = (per_frame * keep).sum(0)  # (N,)
            counts = keep.sum(0)
            self.frame_sum[key] += float(sums.sum())
            self.frame_count[key] += int(counts.sum())
            self.sequence_means[key].extend((sums[counts > 0] / counts[counts > 0]).tolist())

    def result(self) -> dict[str, float]:
        """The four averages (nats); a sequence of one frame has no frame after its first."""
        out = {}
        for key, suffix in (("all", ""), ("no_first", "_no_first")):
            means = self.sequence_means[key]
            out[f"nll{suffix}"] = self.frame_sum[key] / max(self.frame_count[key], 1)
            out[f"nll_per_sequence{suffix}"] = sum(means) / max(len(means), 1)
        return out


def perplexity(mean_nll: float) -> float:
    """``exp(mean NLL per token)`` (NLL in nats); ``inf`` when it overflows."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


def correct_count(logits: Tensor, labels: Tensor) -> int:
    """How many ``argmax(logits) == labels``. Shape: logits (N, C), labels (N,)."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ShapeError(f"need logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return int((logits.argmax(-1) == labels).sum())


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of ``argmax(logits) == labels`` in [0, 1]. Shape: logits (N, C), labels (N,)."""
    return correct_count(logits, labels) / max(len(labels), 1)



def format_metric(name: str, value: float) -> str:
    """A metric as people read it: accuracy (a fraction in results files) in percent, perplexity to
    2 decimals, NLL and losses to 4. Every line the package prints and its report use this.

    >>> format_metric("test_accuracy", 0.92777), format_metric("nll", 8.71234), format_metric("perplexity", 137.712)
    ('92.78 %', '8.7123', '137.71')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    if name.endswith("accuracy"):
        return f"{100 * value:.2f} %"
    if name.endswith("perplexity"):
        return f"{value:.2f}"
    return f"{value:.4f}"
