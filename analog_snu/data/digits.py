"""scikit-learn's 8x8 handwritten digits (UCI ML hand-written digits), bundled with scikit-learn.

1,797 images of 8x8 pixels, 16 grey levels, digits 0-9. A fixed stratified split
(seed 0): 1,437 train / 360 test.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["DigitsSplit", "load_digits"]


class DigitsSplit(NamedTuple):
    """Images (N, 64) as float32 in [0, 1] and labels (N,) as int64."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """The 8x8 digits, scaled to [0, 1], split into train and test (stratified by class)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = (bunch.data / 16.0).astype(np.float32)
    train_x, test_x, train_y, test_y = train_test_split(
        images, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    return DigitsSplit(
        torch.from_numpy(train_x),
        torch.from_numpy(train_y.astype(np.int64)),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y.astype(np.int64)),
    )
