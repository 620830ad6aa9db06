"""Cache location, atomic npz writes and the bounded npz reader."""

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analog_snu.data import cache
from analog_snu.data.cache import CACHE_ENV_VAR, default_cache_dir, load_npz, resolve_cache_dir, save_npz_atomic
from analog_snu.errors import DataError


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "analog_snu"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "analog_snu"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir(None) == tmp_path / "mine"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "x.npz"
    save_npz_atomic(path, {"a": np.arange(3)})
    with np.load(path, allow_pickle=False) as archive:
        assert archive["a"].tolist() == [0, 1, 2]

    def crash(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_npz_atomic(path, {"a": np.arange(5)})
    monkeypatch.undo()
    with np.load(path, allow_pickle=False) as archive:
        assert archive["a"].tolist() == [0, 1, 2]
    assert [p.name for p in Path(path.parent).iterdir()] == ["x.npz"]  # no temp file left behind


def _npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_load_npz_reads_what_numpy_wrote(tmp_path, compressed):
    arrays = {
        "a": np.arange(6.0).reshape(2, 3),
        "f": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4), dtype=np.int8),
        "nested/name": np.array([1, 2], dtype=">i4"),
    }
    path = tmp_path / "x.npz"
    path.write_bytes(_npz_bytes(compressed, **arrays))
    for loaded in (load_npz(path), load_npz(path.read_bytes())):
        assert loaded.keys() == arrays.keys()
        for key, value in arrays.items():
            assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
            np.testing.assert_array_equal(loaded[key], value)
        loaded["a"][0, 0] = -1.0  # writable


def _zip_bomb(uncompressed: int) -> bytes:
    """One .npy member of ``uncompressed`` zero bytes of float64 data, deflated to ~1/1000."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (uncompressed // 8,)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(uncompressed >> 20):
                member.write(zeros)
    return out.getvalue()


def test_zip_bomb_is_refused_from_its_headers_before_inflating(tmp_path):
    bomb = _zip_bomb(64 << 20)  # 64 MiB of zeros
    assert len(bomb) < 200_000
    path = tmp_path / "bomb.npz"
    path.write_bytes(bomb)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.npz: member 'bomb\.npy' declares \d+ bytes uncompressed .*more than max_bytes=8000000; refusing"):
        load_npz(path, max_bytes=8_000_000)
    assert time.perf_counter() - start < 0.5  # inflating 64 MiB takes longer than this on one core
    assert load_npz(path, max_bytes=100 << 20)["bomb"].shape == (8 << 20,)  # a large enough cap reads it


def test_members_are_summed_against_the_cap(tmp_path):
    data = _npz_bytes(a=np.zeros(1000), b=np.zeros(1000))  # two members of 8 kB each
    assert set(load_npz(data, max_bytes=20_000)) == {"a", "b"}
    with pytest.raises(DataError, match=r"member 'b\.npy' declares 8128 bytes uncompressed \(16256 so far\), more than max_bytes=12000"):
        load_npz(data, max_bytes=12_000)
    path = tmp_path / "two.npz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"two\.npz: the file has \d+ bytes, more than max_bytes=100"):
        load_npz(path, max_bytes=100)
    with pytest.raises(DataError, match=r"max_bytes must be a positive int \(bytes\), got True"):
        load_npz(data, max_bytes=True)


def _replace_member(data: bytes, name: str, payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, payload if info.filename == name else src.read(info))
    return out.getvalue()


def test_npy_header_must_match_the_member_size():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
    liar = _replace_member(_npz_bytes(a=np.zeros(3)), "a.npy", header.getvalue() + bytes(24))
    with pytest.raises(DataError, match=r"member 'a\.npy': its \.npy header asks for shape \(1000000000,\) float64 \(8000000000 bytes\), the member holds 24 bytes"):
        load_npz(liar)


def test_object_arrays_pickles_and_foreign_members_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"member 'o\.npy' holds Python objects \(dtype object\)"):
        load_npz(_npz_bytes(o=np.array([{"x": 1}], dtype=object)))
    with pytest.raises(DataError, match=r"member 'notes\.txt' is not a \.npy array"):
        load_npz(_with_extra_member())
    with pytest.raises(DataError, match=r"<bytes>: not a valid \.npz archive"):
        load_npz(b"not a zip file")
    with pytest.raises(DataError, match=r"cannot read .*missing\.npz"):
        load_npz(tmp_path / "missing.npz")
    corrupt = bytearray(_npz_bytes(compressed=True, a=np.arange(1000.0)))
    corrupt[len(corrupt) // 3] ^= 0xFF
    with pytest.raises(DataError, match=r"not a valid \.npz archive|ends after|Bad CRC"):
        load_npz(bytes(corrupt))


def _with_extra_member() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", b"hello")
    return out.getvalue()
