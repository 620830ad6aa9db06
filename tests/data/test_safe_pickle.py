"""The restricted unpickler: numpy arrays and plain containers load, anything else is refused."""

import gzip
import pickle
import time

import numpy as np
import pytest

from analog_snu.data.safe_pickle import load_pickle, loads_pickle
from analog_snu.errors import DataError

try:
    from numpy._core import multiarray as np_multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as np_multiarray


class _RunsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_and_containers_round_trip(protocol):
    data = {
        "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "int64": np.array([-1, 0, 2**40], dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "big": np.linspace(0.0, 1.0, 100_000),
        "scalar": np.float64(2.5),
        "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "containers": ([1, 2], (3, "x"), {"k": -1.5}, b"\x00\xff", None, True),
    }
    loaded = loads_pickle(pickle.dumps(data, protocol=protocol))
    assert loaded.keys() == data.keys()
    for key in ("float32", "fortran", "int64", "empty", "big", "structured"):
        assert loaded[key].dtype == data[key].dtype and loaded[key].shape == data[key].shape
        np.testing.assert_array_equal(loaded[key], data[key])
    assert loaded["scalar"] == 2.5 and isinstance(loaded["scalar"], np.float64)
    assert loaded["containers"] == data["containers"]


@pytest.mark.parametrize("protocol", [4, 5])
def test_sets_load_from_opcodes_in_protocol_4_and_up(protocol):
    data = ({4, 5}, frozenset({6}))
    assert loads_pickle(pickle.dumps(data, protocol=protocol)) == data
    assert loads_pickle(pickle.dumps(bytearray(b"ab"), protocol=5)) == bytearray(b"ab")  # BYTEARRAY8


_BUILTIN_CALLS = [({4, 5}, "set"), (frozenset({6}), "frozenset"), (bytearray(b"ab"), "bytearray"), (1 + 2j, "complex")]


@pytest.mark.parametrize(
    "protocol, value, name",
    [(p, v, n) for p in (0, 2, 4) for v, n in _BUILTIN_CALLS if not (p == 4 and n in ("set", "frozenset"))],
)
def test_builtin_calls_are_refused(protocol, value, name):
    """Without an opcode of their own these are REDUCE calls of a builtin: only bytes() is callable."""
    with pytest.raises(DataError, match=rf"refusing to unpickle the global '(__builtin__|builtins)\.{name}'"):
        loads_pickle(pickle.dumps(value, protocol=protocol))


# list(bytes(10**10)) through REDUCE: 37 bytes of pickle asking for 10 GB (and 80 GB as a list).
_LIST_OF_HUGE_BYTES = b"\x80\x02c__builtin__\nlist\nc__builtin__\nbytes\n\x8a\x05\x00\xe4\x0bT\x02\x85R\x85R."


def test_tiny_pickle_asking_for_10_gb_is_refused_quickly():
    assert len(_LIST_OF_HUGE_BYTES) < 60
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"refusing to unpickle the global '__builtin__\.list'"):
        loads_pickle(_LIST_OF_HUGE_BYTES)
    # Even with list allowed, bytes(n) itself is refused: only bytes() without arguments is callable.
    with pytest.raises(DataError, match=r"builtins\.bytes with arguments \(10000000000,\)"):
        loads_pickle(b"\x80\x02c__builtin__\nbytes\n\x8a\x05\x00\xe4\x0bT\x02\x85R.")
    assert time.perf_counter() - start < 1.0


def test_length_fields_larger_than_the_data_are_refused_before_allocation():
    # BINBYTES8 claiming 10 GB followed by 3 bytes: the stock C unpickler allocates the buffer first.
    claim = b"\x80\x04\x8e" + (10**10).to_bytes(8, "little") + b"abc."
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"not a valid pickle .*expected 10000000000 bytes in a bytes8, but only 4 remain"):
        loads_pickle(claim)
    assert time.perf_counter() - start < 1.0


class _HugeReconstruct:
    def __reduce__(self):
        return (np_multiarray._reconstruct, (np.ndarray, (10**10,), b"b"))


def test_array_allocation_counts_against_the_cap():
    with pytest.raises(DataError, match=r"an array of shape \(10000000000,\) asks for 10000000000 bytes"):
        loads_pickle(pickle.dumps(_HugeReconstruct(), protocol=2))
    data = pickle.dumps(np.zeros(1000), protocol=5)  # 8 kB buffer in a ~8.2 kB pickle
    assert loads_pickle(data, max_bytes=20_000).shape == (1000,)
    with pytest.raises(DataError, match=r"an array buffer asks for 8000 bytes, more than the \d+ left of max_bytes=12000"):
        loads_pickle(data, max_bytes=12_000)
    with pytest.raises(DataError, match=r"holds more than max_bytes=4000 bytes"):
        loads_pickle(data, max_bytes=4_000)
    with pytest.raises(DataError, match=r"max_bytes must be a positive int \(bytes\), got 0"):
        loads_pickle(data, max_bytes=0)


def test_gzip_bomb_stops_at_the_cap(tmp_path):
    bomb = gzip.compress(pickle.dumps(b"\0" * 50_000_000, protocol=4), compresslevel=9)
    assert len(bomb) < 100_000  # 50 MB behind < 100 kB
    path = tmp_path / "bomb.pkl.gz"
    path.write_bytes(bomb)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.pkl\.gz: the pickle holds more than max_bytes=1000000 bytes \(decompressed\)"):
        load_pickle(path, max_bytes=1_000_000)
    with pytest.raises(DataError, match=r"<bytes>: the pickle holds more than max_bytes=1000000 bytes"):
        loads_pickle(bomb, max_bytes=1_000_000)
    assert time.perf_counter() - start < 1.0


def test_os_system_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    assert not marker.exists()
    with pytest.raises(DataError, match=r"refusing to unpickle the global 'os\.system'"):
        loads_pickle(payload)
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=rf"{path.name}: refusing .*'os\.system'"):
        load_pickle(path)
    assert not marker.exists()
    # Control: the same payload is live; the stock unpickler runs the (harmless) command.
    control = tmp_path / "control"
    pickle.loads(f"cos\nsystem\n(S'touch {control}'\ntR.".encode())
    assert control.exists()


def test_posix_system_and_builtins_eval_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"'posix\.system'"):
        loads_pickle(b"cposix\nsystem\n(S'true'\ntR.")
    with pytest.raises(DataError, match=r"'builtins\.eval'"):
        loads_pickle(pickle.dumps(_RunsEval(), protocol=4))
    with pytest.raises(DataError, match=r"'copyreg\._reconstructor'|'copy_reg\._reconstructor'"):
        loads_pickle(pickle.dumps(_Plain(), protocol=1))


class _Plain:
    pass


def test_gzip_pickle_file_loads(tmp_path):
    path = tmp_path / "arrays.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump((np.eye(2, dtype=np.float32), [1, 2]), handle, protocol=2)
    matrix, items = load_pickle(path)
    np.testing.assert_array_equal(matrix, np.eye(2))
    assert items == [1, 2]


def test_codecs_encode_only_latin1():
    assert loads_pickle(b"c_codecs\nencode\n(V\xe9\nVlatin1\ntR.") == b"\xe9"
    with pytest.raises(DataError, match=r"only 'latin1'"):
        loads_pickle(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")


def test_persistent_ids_are_refused():
    with pytest.raises(DataError, match="persistent ids"):
        loads_pickle(b"Pfoo\n.")


def test_truncated_or_garbage_pickle_is_a_data_error(tmp_path):
    data = pickle.dumps(np.arange(10), protocol=2)
    with pytest.raises(DataError, match="not a valid pickle"):
        loads_pickle(data[: len(data) // 2])
    path = tmp_path / "bad.pkl.gz"
    path.write_bytes(gzip.compress(data)[:20])
    with pytest.raises(DataError, match=r"bad\.pkl\.gz: cannot read the gzip pickle \(Compressed file ended"):
        load_pickle(path)
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 30)  # gzip header, bad deflate
    with pytest.raises(DataError, match=r"bad\.pkl\.gz: cannot read the gzip pickle"):
        load_pickle(path)
    with pytest.raises(DataError, match="corrupt gzip data"):
        loads_pickle(b"\x1f\x8bnot gzip at all")


def test_missing_file():
    with pytest.raises(DataError, match="pickle file not found"):
        load_pickle("/nonexistent/file.pkl")
