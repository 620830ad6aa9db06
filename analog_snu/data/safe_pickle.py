"""A restricted unpickler for data files: numpy arrays and plain containers, nothing else.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable
and ``REDUCE`` calls it, so ``pickle.load`` on an untrusted file can run ``os.system``.
:class:`SafeUnpickler` resolves only the globals that numpy array reconstruction needs
(``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` and
``scalar``, ``numpy[._]core.numeric._frombuffer``), the builtin container and number
types, and ``_codecs.encode`` restricted to latin-1 (how protocols 0-2 store bytes).
Any other global is refused with a :class:`~analog_snu.errors.DataError` naming it,
before it is imported or called.

Python 2 pickles (the classic MNIST and JSB Chorales files) are read with
``encoding="latin1"``, which turns Python 2 ``str`` into ``str`` and keeps numpy
buffers byte-exact.
"""

from __future__ import annotations

import builtins
import codecs
import gzip
import importlib
import io
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from analog_snu.errors import DataError

__all__ = ["SafeUnpickler", "load_pickle", "loads_pickle"]

_GZIP_MAGIC = b"\x1f\x8b"


class _ReadableFile(Protocol):
    """What :class:`pickle.Unpickler` reads from (a binary file, GzipFile, BytesIO)."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self) -> bytes: ...

_BUILTIN_NAMES = frozenset(
    {"set", "frozenset", "bytearray", "bytes", "complex", "list", "dict", "tuple", "int", "float", "bool", "str"}
)


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` (numpy >= 2) or ``numpy.core.<submodule>`` (numpy 1.x)."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to latin-1, which is all protocols 0-2 use it for."""
    if codecs.lookup(encoding).name != "iso8859-1" or errors != "strict" or not isinstance(text, str):
        raise DataError(
            f"pickle calls _codecs.encode with encoding {encoding!r}; only 'latin1' (bytes in protocols 0-2) is allowed"
        )
    return codecs.encode(text, "latin1")


def _resolve(module: str, name: str) -> Callable[..., Any] | type | None:
    """The object a pickle may reference as ``module.name``, or None when it is not allowed."""
    if module in ("builtins", "__builtin__") and name in _BUILTIN_NAMES:
        return getattr(builtins, name)
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
        return getattr(_numpy_core("multiarray"), name)
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _numpy_core("numeric")._frombuffer
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    return None


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that reconstructs numpy arrays and plain containers and refuses everything else.

    Args:
        file: a binary file object positioned at the start of the pickle.
        source: a name for the data (usually the file path), used in error messages.
    """

    def __init__(self, file: _ReadableFile, *, source: str = "<stream>") -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle hook)
        found = _resolve(module, name)
        if found is None:
            raise DataError(
                f"{self.source}: refusing to unpickle the global '{module}.{name}': only numpy array "
                "reconstruction (numpy.ndarray, numpy.dtype, numpy.core.multiarray._reconstruct/scalar) "
                "and plain containers are allowed; this file may be malicious or not a data file"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle hook)
        raise DataError(f"{self.source}: refusing a pickle with persistent ids (got {pid!r})")


def loads_pickle(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler` (gzip-compressed data is detected and inflated)."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: corrupt gzip data ({exc})") from exc
    return _load(io.BytesIO(data), source)


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle the file at ``path`` with :class:`SafeUnpickler`; ``.gz`` files are recognised by content.

    Raises:
        DataError: the file is missing, not a pickle, truncated, or references a refused global.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pickle file not found: {path}")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as handle:
            return _load(handle, str(path))
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the {'gzip ' if compressed else ''}pickle ({exc})") from exc


def _load(handle: _ReadableFile, source: str) -> Any:
    try:
        return SafeUnpickler(handle, source=source).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{source}: not a valid pickle of numpy arrays / plain containers ({exc!r})") from exc
