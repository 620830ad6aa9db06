"""IDX files (the MNIST / Fashion-MNIST distribution format), gzip-compressed or raw.

Layout (big-endian): two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), a byte with the number of dimensions D, D uint32
sizes, then the values in C order. Compression is recognised by content (gzip magic), not
by the file name.

:func:`load_idx_dataset` reads the four files of a directory in the usual naming
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``; a ``.`` before ``idx`` is accepted
too), e.g. Debian's ``dataset-fashion-mnist`` package under
``/usr/share/datasets/fashion-mnist``. IDX has no validation split, so the last
``valid_size`` training examples (default 10,000, as in the classic MNIST pickle) become
``valid`` and the rest ``train``; ``t10k`` is ``test``.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from analog_snu.errors import ConfigError, DataError
from analog_snu.files import read_regular_file

__all__ = ["IDX_DTYPES", "load_idx", "load_idx_dataset"]

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type byte -> big-endian numpy dtype."""

#: most dimensions an IDX file may declare (images are 3, labels 1; numpy stops at 32 or 64)
MAX_IDX_DIMS = 8

_FILE_PATTERN = re.compile(r"^(train|t10k)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$")


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in one IDX file (gzip or raw), in native byte order.

    Shape: as stored, e.g. images (N, 28, 28) uint8, labels (N,) uint8.

    Raises:
        DataError: missing file, bad magic number, unknown type, or a size that does not match
            the header (truncated or trailing bytes); the message names the file.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError(f"IDX file not found: {path}")
    raw = read_regular_file(path, "IDX file", error=DataError)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number must start with two zero bytes, got {raw[:4]!r})")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        valid = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type byte 0x{type_code:02X}; valid: {valid}")
    if ndim == 0 or ndim > MAX_IDX_DIMS:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions; IDX data has 1 to {MAX_IDX_DIMS}")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, {header_size} needed for {ndim} dims)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    got = len(raw) - header_size
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(f"{path}: IDX data {what}: header dims {dims} need {expected} bytes, file holds {got}")
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def load_idx_dataset(
    directory: str | os.PathLike[str], valid_size: int = 10_000
) -> dict[str, tuple[Tensor, Tensor]]:
    """An MNIST-format image dataset from the four IDX files of ``directory``.

    Args:
        directory: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
        valid_size: the last ``valid_size`` training examples form ``valid`` (0: empty valid).

    Returns:
        ``{"train", "valid", "test"}`` -> ``(images, labels)``, as :func:`~analog_snu.data.load_mnist`.

    Shape:
        images (N, H*W) float32 in [0, 1] (uint8 pixel / 255); labels (N,) int64.

    Raises:
        DataError: a file is missing, ambiguous, corrupt, or the images and labels disagree.
        ConfigError: ``valid_size`` is negative or not smaller than the training set.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"IDX dataset directory not found: {directory}")
    if isinstance(valid_size, bool) or not isinstance(valid_size, int) or valid_size < 0:
        raise ConfigError(f"valid_size must be a non-negative int, got {valid_size!r}")
    files = _find_files(directory)
    train_x, train_y = _read_pair(files["train", "images"], files["train", "labels"])
    test = _read_pair(files["t10k", "images"], files["t10k", "labels"])
    n_train = train_x.shape[0] - valid_size
    if n_train <= 0:
        raise ConfigError(
            f"valid_size={valid_size} leaves no training examples: {files['train', 'images']} holds "
            f"{train_x.shape[0]}; choose valid_size < {train_x.shape[0]}"
        )
    return {
        "train": (train_x[:n_train], train_y[:n_train]),
        "valid": (train_x[n_train:], train_y[n_train:]),
        "test": test,
    }


def _find_files(directory: Path) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        match = _FILE_PATTERN.match(entry.name)
        if match and entry.is_file():
            found.setdefault((match.group(1), match.group(2)), []).append(entry)
    files = {}
    for split in ("train", "t10k"):
        for kind in ("images", "labels"):
            candidates = found.get((split, kind), [])
            if not candidates:
                rank = 3 if kind == "images" else 1
                raise DataError(
                    f"{directory}: no {split} {kind} file (expected {split}-{kind}-idx{rank}-ubyte[.gz])"
                )
            if len(candidates) > 1:
                # The same file compressed and raw: prefer the raw one (faster), never mix up two copies.
                raw = [path for path in candidates if path.suffix != ".gz"]
                if len(raw) != 1:
                    raise DataError(f"{directory}: several {split} {kind} files: {[p.name for p in candidates]}")
                candidates = raw
            files[split, kind] = candidates[0]
    return files


def _read_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: images must be (N, H, W) uint8, got {images.shape} {images.dtype}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_path}: labels must be (N,) integers, got {labels.shape} {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise DataError(f"{labels_path}: labels must be non-negative, got {int(labels.min())}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path.name}"
        )
    pixels = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))
