"""The restricted unpickler: numpy arrays and plain containers load, anything else is refused."""

import gzip
import pickle

import numpy as np
import pytest

from analog_snu.data.safe_pickle import load_pickle, loads_pickle
from analog_snu.errors import DataError


class _RunsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_and_containers_round_trip(protocol):
    data = {
        "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "int64": np.array([-1, 0, 2**40], dtype=np.int64),
        "big": np.linspace(0.0, 1.0, 100_000),
        "scalar": np.float64(2.5),
        "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "containers": ([1, 2], (3, "x"), {4, 5}, frozenset({6}), b"\x00\xff", bytearray(b"ab"), 1 + 2j, None),
    }
    loaded = loads_pickle(pickle.dumps(data, protocol=protocol))
    assert loaded.keys() == data.keys()
    for key in ("float32", "fortran", "int64", "big", "structured"):
        assert loaded[key].dtype == data[key].dtype
        np.testing.assert_array_equal(loaded[key], data[key])
    assert loaded["scalar"] == 2.5 and isinstance(loaded["scalar"], np.float64)
    assert loaded["containers"] == data["containers"]


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
    with pytest.raises(DataError, match=r"bad\.pkl\.gz: not a valid pickle .*EOFError"):
        load_pickle(path)
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 30)  # gzip header, bad deflate
    with pytest.raises(DataError, match=r"bad\.pkl\.gz: cannot read the gzip pickle"):
        load_pickle(path)
    with pytest.raises(DataError, match="corrupt gzip data"):
        loads_pickle(b"\x1f\x8bnot gzip at all")


def test_missing_file():
    with pytest.raises(DataError, match="pickle file not found"):
        load_pickle("/nonexistent/file.pkl")
