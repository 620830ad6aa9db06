"""Where derived datasets are cached (built once from installed packages, then read in seconds).

Order of precedence: an explicit ``cache_dir`` argument, the ``ANALOG_SNU_CACHE_DIR``
environment variable, ``$XDG_CACHE_HOME/analog_snu``, ``~/.cache/analog_snu``.
Cache files are ``.npz`` archives written atomically and read with :func:`load_npz`, a bounded
reader: no pickles, and every member's size is checked against a cap from the zip headers and
its ``.npy`` header before anything is decompressed, so a small zip bomb is refused, not inflated.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from analog_snu.errors import DataError
from analog_snu.files import read_regular_file

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_MAX_NPZ_BYTES",
    "default_cache_dir",
    "load_npz",
    "resolve_cache_dir",
    "save_npz_atomic",
]

DEFAULT_MAX_NPZ_BYTES = 1 << 30
"""Default cap (bytes) on the decompressed size of all members of one ``.npz``: 1 GiB."""

_NPY_FORMATS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}

CACHE_ENV_VAR = "ANALOG_SNU_CACHE_DIR"
"""Environment variable overriding the default cache directory."""


def default_cache_dir() -> Path:
    """``$ANALOG_SNU_CACHE_DIR``, else ``$XDG_CACHE_HOME/analog_snu``, else ``~/.cache/analog_snu``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "analog_snu"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` if given, else :func:`default_cache_dir`."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed npz via a temporary file and a rename.

    A crash mid-write leaves no partial file under ``path``; concurrent writers each rename a
    complete file into place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _check_members(archive: zipfile.ZipFile, max_bytes: int, source: str) -> list[zipfile.ZipInfo]:
    """The ``.npy`` members, after checking their declared sizes against ``max_bytes``."""
    infos, names, total = archive.infolist(), set(), 0
    for info in infos:
        if info.filename in names:
            raise DataError(f"{source}: member {info.filename!r} appears twice in the archive")
        names.add(info.filename)
        if not info.filename.endswith(".npy"):
            raise DataError(f"{source}: member {info.filename!r} is not a .npy array")
        if info.flag_bits & 0x1:
            raise DataError(f"{source}: member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(f"{source}: member {info.filename!r} uses compression {info.compress_type}; "
                            "only stored and deflated members are read")
        total += info.file_size
        if info.file_size > max_bytes or total > max_bytes:
            raise DataError(
                f"{source}: member {info.filename!r} declares {info.file_size} bytes uncompressed "
                f"({total} so far), more than max_bytes={max_bytes}; refusing to decompress it"
            )
    return infos


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    where = f"{source}: member {info.filename!r}"
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version not in _NPY_FORMATS:
            raise DataError(f"{where} has .npy format version {version}; expected 1.0 or 2.0")
        shape, fortran_order, dtype = _NPY_FORMATS[version](handle, max_header_size=10_000)
        if dtype.hasobject:
            raise DataError(f"{where} holds Python objects (dtype {dtype}); only plain arrays are read")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        left = info.file_size - handle.tell()
        if nbytes != left:
            raise DataError(f"{where}: its .npy header asks for shape {shape} {dtype} ({nbytes} bytes), "
                            f"the member holds {left} bytes of data")
        buffer = bytearray(nbytes)
        view, done = memoryview(buffer), 0
        while done < nbytes:
            got = handle.readinto(view[done:])  # type: ignore[attr-defined]  # a ZipExtFile, typed as IO[bytes]
            if not got:
                raise DataError(f"{where} ends after {done} of {nbytes} data bytes")
            done += got
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C")


def load_npz(
    source: str | os.PathLike[str] | bytes, *, max_bytes: int = DEFAULT_MAX_NPZ_BYTES, name: str | None = None
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (a path or its bytes), reading at most ``max_bytes`` of array data.

    Members must be plain ``.npy`` arrays (no object dtypes, no pickles). Their uncompressed
    sizes (zip headers) are summed and checked against ``max_bytes`` before any is inflated,
    each ``.npy`` header must agree with its member's size, and reading stops at the declared
    size (the CRC is checked), so a zip bomb is refused after reading a few headers.

    Args:
        source: path of the ``.npz`` file, or its content.
        max_bytes: cap on the summed uncompressed member sizes (and on the file size), bytes.
        name: how to call the file in messages (default: the path, or ``"<bytes>"``).

    Returns:
        member name without ``.npy`` -> array (writable, native to the file's dtype).

    Raises:
        DataError: missing or unreadable file, not a zip, a member over the cap, a corrupt member.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise DataError(f"max_bytes must be a positive int (bytes), got {max_bytes!r}")
    if isinstance(source, (bytes, bytearray)):
        label, raw = name or "<bytes>", bytes(source)
    else:
        path = Path(source)
        label = name or str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DataError(f"cannot read {label}: {exc.strerror or exc}") from exc
        if size > max_bytes:
            raise DataError(f"{label}: the file has {size} bytes, more than max_bytes={max_bytes}")
        raw = read_regular_file(path, "npz file", error=DataError, max_bytes=max_bytes)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return {
                info.filename[: -len(".npy")]: _read_member(archive, info, label)
                for info in _check_members(archive, max_bytes, label)
            }
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{label}: not a valid .npz archive ({exc})") from exc
