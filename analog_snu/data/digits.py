"""scikit-learn's 8x8 handwritten digits (UCI ML hand-written digits), bundled with scikit-learn.

1,797 images of 8x8 pixels, 16 grey levels, digits 0-9, split like every other image loader
of :mod:`analog_snu.data` into ``{"train", "valid", "test"}``: by default 1,300 / 137 / 360
images, stratified by class and fixed by ``seed``. The test split is the one of earlier
versions (``train_test_split(test_size=360, stratify=labels, random_state=seed)``); the
validation images are then drawn, stratified, from the remaining 1,437.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analog_snu.errors import ConfigError

__all__ = ["DIGITS_SIZE", "load_digits"]

#: number of images in scikit-learn's digits data set
DIGITS_SIZE = 1797
_CLASSES = 10


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < _CLASSES:
        raise ConfigError(
            f"{name} must be an int >= {_CLASSES} (one image per class at least, for the stratified split), "
            f"got {value!r}"
        )
    return value


def load_digits(valid_size: int = 137, test_size: int = 360, seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """The 8x8 digits as ``{"train", "valid", "test"}`` -> ``(images, labels)``, stratified by class.

    Args:
        valid_size: images in the validation split (default 137).
        test_size: images in the test split (default 360, a fifth of the data).
        seed: seed of both stratified shuffles (the same seed gives the same split).

    Shape:
        images (N, 64) float32 in [0, 1] (row-major 8x8, grey level / 16); labels (N,) int64 in 0..9.

    Raises:
        ConfigError: a size is not an int >= 10 or the two leave fewer than 10 training images.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    valid_size, test_size = _check_size("valid_size", valid_size), _check_size("test_size", test_size)
    if DIGITS_SIZE - valid_size - test_size < _CLASSES:
        raise ConfigError(
            f"valid_size + test_size must leave at least {_CLASSES} of the {DIGITS_SIZE} images for training, "
            f"got valid_size={valid_size}, test_size={test_size}"
        )
    bunch = sklearn_digits()
    images = (bunch.data / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=test_size, random_state=seed, stratify=labels
    )
    train_x, valid_x, train_y, valid_y = train_test_split(
        rest_x, rest_y, test_size=valid_size, random_state=seed, stratify=rest_y
    )
    return {
        "train": (torch.from_numpy(train_x), torch.from_numpy(train_y)),
        "valid": (torch.from_numpy(valid_x), torch.from_numpy(valid_y)),
        "test": (torch.from_numpy(test_x), torch.from_numpy(test_y)),
    }
