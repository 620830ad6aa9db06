"""A restricted, bounded unpickler for data files: numpy arrays and plain containers, nothing else.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable
and ``REDUCE`` calls it, so ``pickle.load`` on an untrusted file can run ``os.system``, and
even harmless-looking builtins amplify: ``list(bytes(10**10))`` is a 60-byte pickle that asks
for 10 GB. :class:`SafeUnpickler` therefore

- resolves only the globals numpy array reconstruction needs: ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` and ``scalar``,
  ``numpy[._]core.numeric._frombuffer``, ``_codecs.encode`` restricted to latin-1 (how
  protocols 0-2 store bytes) and ``builtins.bytes`` called without arguments (the empty
  buffer of a zero-size array). No other builtin is callable (``list``, ``bytes(n)``,
  ``set``, ``frozenset``, ``bytearray``, ...); protocol 4+ pickles build sets, frozensets
  and byte strings with opcodes instead, which read their contents from the data itself.
  Any other global is refused with a :class:`~analog_snu.errors.DataError` naming it,
  before it is imported or called;
- caps the bytes it materialises (``max_bytes``, default :data:`DEFAULT_MAX_BYTES`): the
  (decompressed) pickle is read through a counting reader that stops at the cap, so a gzip
  bomb is refused after ``max_bytes``, not after it filled the memory; every length field
  of the opcode stream is checked against the data actually present before anything is
  allocated (``pickletools.genops``), so a ``BINBYTES8`` claiming 10 GB in a short file is
  refused; and the arrays ``_reconstruct`` allocates count against the same cap.

Python 2 pickles (the classic MNIST and JSB Chorales files) are read with
``encoding="latin1"``, which turns Python 2 ``str`` into ``str`` and keeps numpy
buffers byte-exact.
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import io
import math
import os
import pickle
import pickletools
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from analog_snu.errors import DataError
from analog_snu.files import open_regular_file

__all__ = ["DEFAULT_MAX_BYTES", "SafeUnpickler", "load_pickle", "loads_pickle"]

DEFAULT_MAX_BYTES = 1 << 30
"""Default cap (bytes) on what one pickle may materialise: 1 GiB (the MNIST pickle needs ~220 MB)."""

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class _ReadableFile(Protocol):
    """What :class:`SafeUnpickler` reads from (a binary file, GzipFile, BytesIO)."""

    def read(self, size: int, /) -> bytes: ...


def _check_max_bytes(max_bytes: object) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise DataError(f"max_bytes must be a positive int (bytes), got {max_bytes!r}")
    return max_bytes


def _read_bounded(handle: _ReadableFile, max_bytes: int, source: str) -> bytes:
    """All of ``handle`` (decompressed where it is a gzip stream), refusing more than ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise DataError(
                f"{source}: the pickle holds more than max_bytes={max_bytes} bytes (decompressed); "
                "refusing to read further (raise max_bytes if the file is trusted and this large)"
            )
        chunks.append(chunk)


def _check_opcodes(data: bytes, source: str) -> None:
    """Walk the opcode stream without executing it: every length field must fit the data."""
    try:
        for opcode, _, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("EXT1", "EXT2", "EXT4"):
                raise DataError(f"{source}: refusing a pickle that uses the copyreg extension registry ({opcode.name})")
    except DataError:
        raise
    except (ValueError, EOFError, OverflowError) as exc:
        raise DataError(f"{source}: not a valid pickle of numpy arrays / plain containers ({exc})") from exc


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


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` (the empty buffer of a zero-size array in protocols 0-2); any argument is refused."""
    if args:
        raise DataError(
            f"pickle calls builtins.bytes with arguments {args[:1]!r}...; only bytes() is allowed "
            "(bytes(n) would allocate n bytes from a few bytes of pickle)"
        )
    return b""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that reconstructs numpy arrays and plain containers and refuses everything else.

    The whole stream is read first (at most ``max_bytes``; see the module docstring) and its
    opcodes are checked without executing them; :meth:`load` then unpickles it.

    Args:
        file: a binary file object positioned at the start of the pickle (read to its end here).
        source: a name for the data (usually the file path), used in error messages.
        max_bytes: cap on the pickle's size plus the arrays it allocates, bytes.

    Raises:
        DataError: the stream is larger than ``max_bytes`` or its opcodes are malformed.
    """

    def __init__(self, file: _ReadableFile, *, source: str = "<stream>", max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.source = source
        self.max_bytes = _check_max_bytes(max_bytes)
        data = _read_bounded(file, self.max_bytes, source)
        _check_opcodes(data, source)
        self._budget = self.max_bytes - len(data)
        super().__init__(io.BytesIO(data), encoding="latin1")

    # -- budgeted numpy constructors ----------------------------------------------------------------
    def _charge(self, nbytes: int, what: str) -> None:
        if nbytes > self._budget:
            raise DataError(
                f"{self.source}: {what} asks for {nbytes} bytes, more than the {self._budget} left of "
                f"max_bytes={self.max_bytes}; refusing (raise max_bytes if the file is trusted)"
            )
        self._budget -= nbytes

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
        if subtype is not np.ndarray:
            raise DataError(f"{self.source}: _reconstruct of {subtype!r}; only numpy.ndarray is allowed")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise DataError(f"{self.source}: _reconstruct with shape {shape!r}; expected a tuple of ints >= 0")
        try:
            itemsize = np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype).itemsize
        except (TypeError, ValueError) as exc:
            raise DataError(f"{self.source}: _reconstruct with dtype {dtype!r}: {exc}") from exc
        self._charge(math.prod(shape) * max(itemsize, 1), f"an array of shape {shape}")
        return _numpy_core("multiarray")._reconstruct(subtype, shape, dtype)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> Any:
        self._charge(len(memoryview(buffer).cast("B")), "an array buffer")
        return _numpy_core("numeric")._frombuffer(buffer, dtype, shape, order)

    def _resolve(self, module: str, name: str) -> Callable[..., Any] | type | None:
        """The object a pickle may reference as ``module.name``, or None when it is not allowed."""
        if module in ("builtins", "__builtin__") and name == "bytes":
            return _empty_bytes
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return self._reconstruct
            if name == "scalar":  # copies itemsize bytes out of a buffer already in memory
                return _numpy_core("multiarray").scalar
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return self._frombuffer
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        return None

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle hook)
        found = self._resolve(module, name)
        if found is None:
            raise DataError(
                f"{self.source}: refusing to unpickle the global '{module}.{name}': only numpy array "
                "reconstruction (numpy.ndarray, numpy.dtype, numpy.core.multiarray._reconstruct/scalar, "
                "numpy.core.numeric._frombuffer, _codecs.encode as latin-1) is allowed; this file may be "
                "malicious or not a data file"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle hook)
        raise DataError(f"{self.source}: refusing a pickle with persistent ids (got {pid!r})")


def loads_pickle(data: bytes, *, source: str = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler` (gzip-compressed data is detected and inflated).

    Raises:
        DataError: not a pickle, truncated, larger than ``max_bytes`` (decompressed), or it
            references a refused global.
    """
    max_bytes = _check_max_bytes(max_bytes)
    if data[:2] == _GZIP_MAGIC:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
                return _load(handle, source, max_bytes)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{source}: corrupt gzip data ({exc})") from exc
    return _load(io.BytesIO(data), source, max_bytes)


def load_pickle(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Unpickle the file at ``path`` with :class:`SafeUnpickler`; ``.gz`` files are recognised by content.

    Raises:
        DataError: the file is missing, not a pickle, truncated, larger than ``max_bytes``
            (decompressed), or references a refused global.
    """
    path = Path(path)
    max_bytes = _check_max_bytes(max_bytes)
    if not os.path.lexists(path):
        raise DataError(f"pickle file not found: {path}")
    with open_regular_file(path, "pickle file", error=DataError) as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) if compressed else raw as handle:
                return _load(handle, str(path), max_bytes)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: cannot read the {'gzip ' if compressed else ''}pickle ({exc})") from exc


def _load(handle: _ReadableFile, source: str, max_bytes: int) -> Any:
    unpickler = SafeUnpickler(handle, source=source, max_bytes=max_bytes)
    try:
        return unpickler.load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError) as exc:
        raise DataError(f"{source}: not a valid pickle of numpy arrays / plain containers ({exc!r})") from exc
