"""IDX files (MNIST / Fashion-MNIST format), written byte by byte with struct."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from analog_snu.data.idx import load_idx, load_idx_dataset
from analog_snu.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(type_code, dims, payload):
    return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


def _images(n, h=2, w=3, start=0):
    return _idx(0x08, (n, h, w), bytes((start + i) % 256 for i in range(n * h * w)))


def _labels(values):
    return _idx(0x08, (len(values),), bytes(values))


def test_uint8_images_raw_and_gzip(tmp_path):
    raw = tmp_path / "images-idx3-ubyte"
    raw.write_bytes(_images(2))
    packed = tmp_path / "images-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(_images(2)))
    expected = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(load_idx(raw), expected)
    np.testing.assert_array_equal(load_idx(packed), expected)
    assert load_idx(raw).dtype == np.uint8


def test_big_endian_types_are_decoded(tmp_path):
    path = tmp_path / "v"
    path.write_bytes(_idx(0x0B, (3,), struct.pack(">3h", 1, -2, 300)))
    np.testing.assert_array_equal(load_idx(path), [1, -2, 300])
    path.write_bytes(_idx(0x0D, (2,), struct.pack(">2f", 0.5, -1.25)))
    np.testing.assert_array_equal(load_idx(path), np.array([0.5, -1.25], np.float32))
    assert load_idx(path).dtype.isnative


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", r"bad\.idx: not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", r"unknown IDX type byte 0x07"),
        (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
        (b"\x00\x00\x08\xfa" + struct.pack(">250I", *[1] * 250) + b"\x00", r"declares 250 dimensions; IDX data has 1 to 8"),
        (b"\x00\x00\x08\x09" + struct.pack(">9I", *[1] * 9) + b"\x00", r"declares 9 dimensions"),
        (b"\x00\x00\x08\x04" + struct.pack(">4I", *[2**32 - 1] * 4) + b"\x00",  # the product overflows int64
         r"IDX data truncated: header dims \(4294967295, .*\) need \d{30,} bytes, file holds 1"),
        (b"\x00\x00\x08\x03\x00\x00", r"truncated IDX header"),
        (_images(2)[:-1], r"bad\.idx: IDX data truncated: header dims \(2, 2, 3\) need 12 bytes, file holds 11"),
        (_images(2) + b"\x00", r"IDX data has trailing bytes"),
        (gzip.compress(_images(2), mtime=0)[:-10], r"bad\.idx: corrupt or truncated gzip data"),
    ],
)
def test_corrupt_files_are_data_errors_naming_the_file(tmp_path, data, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DataError, match=match):
        load_idx(path)


def test_missing_idx_file():
    with pytest.raises(DataError, match="IDX file not found"):
        load_idx("/nonexistent/train-images-idx3-ubyte")


def _dataset(directory, n_train=5, n_test=2, gz=True):
    suffix = ".gz" if gz else ""
    write = (lambda p, b: p.write_bytes(gzip.compress(b))) if gz else (lambda p, b: p.write_bytes(b))
    write(directory / f"train-images-idx3-ubyte{suffix}", _images(n_train))
    write(directory / f"train-labels-idx1-ubyte{suffix}", _labels(list(range(n_train))))
    write(directory / f"t10k-images-idx3-ubyte{suffix}", _images(n_test, start=100))
    write(directory / f"t10k-labels-idx1-ubyte{suffix}", _labels([9] * n_test))
    return directory


def test_dataset_carves_valid_from_the_end_of_train(tmp_path):
    data = load_idx_dataset(_dataset(tmp_path), valid_size=2)
    train_x, train_y = data["train"]
    valid_x, valid_y = data["valid"]
    test_x, test_y = data["test"]
    assert train_x.shape == (3, 6) and valid_x.shape == (2, 6) and test_x.shape == (2, 6)
    assert train_y.tolist() == [0, 1, 2] and valid_y.tolist() == [3, 4] and test_y.tolist() == [9, 9]
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    # Pixel byte b becomes b / 255: image 3 holds bytes 18..23, the first test image 100..105.
    torch.testing.assert_close(valid_x[0], torch.arange(18, 24, dtype=torch.float32) / 255)
    torch.testing.assert_close(test_x[0], torch.arange(100, 106, dtype=torch.float32) / 255)


def test_dataset_prefers_raw_files_and_accepts_dotted_names(tmp_path):
    _dataset(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_images(4))  # raw copy wins over the .gz
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_labels([1, 2, 3, 4]))
    assert load_idx_dataset(tmp_path, valid_size=1)["valid"][1].tolist() == [4]
    dotted = tmp_path / "dotted"
    dotted.mkdir()
    for name, data in [
        ("train-images.idx3-ubyte", _images(3)),
        ("train-labels.idx1-ubyte", _labels([0, 1, 2])),
        ("t10k-images.idx3-ubyte", _images(1)),
        ("t10k-labels.idx1-ubyte", _labels([5])),
    ]:
        (dotted / name).write_bytes(data)
    assert load_idx_dataset(dotted, valid_size=0)["train"][1].tolist() == [0, 1, 2]


def test_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="IDX dataset directory not found"):
        load_idx_dataset(tmp_path / "nope")
    _dataset(tmp_path)
    with pytest.raises(ConfigError, match=r"valid_size=5 leaves no training examples.*choose valid_size < 5"):
        load_idx_dataset(tmp_path, valid_size=5)
    with pytest.raises(ConfigError, match="valid_size must be a non-negative int"):
        load_idx_dataset(tmp_path, valid_size=-1)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_labels([1, 2, 3])))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: 3 labels for 2 images"):
        load_idx_dataset(tmp_path, valid_size=1)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no t10k labels file \(expected t10k-labels-idx1-ubyte\[\.gz\]\)"):
        load_idx_dataset(tmp_path, valid_size=1)


def test_dataset_rejects_wrong_ranks_and_negative_labels(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(0x09, (2,), struct.pack(">2b", 1, -1))))
    with pytest.raises(DataError, match="labels must be non-negative, got -1"):
        load_idx_dataset(tmp_path, valid_size=1)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_images(2)))
    with pytest.raises(DataError, match=r"labels must be \(N,\) integers"):
        load_idx_dataset(tmp_path, valid_size=1)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_labels([1, 2])))
    with pytest.raises(DataError, match=r"images must be \(N, H, W\) uint8"):
        load_idx_dataset(tmp_path, valid_size=1)


def test_two_gzip_copies_are_ambiguous(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "train-images.idx3-ubyte.gz").write_bytes(gzip.compress(_images(5)))
    with pytest.raises(DataError, match="several train images files"):
        load_idx_dataset(tmp_path)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
    data = load_idx_dataset(FASHION)
    assert {name: len(y) for name, (_, y) in data.items()} == {"train": 50_000, "valid": 10_000, "test": 10_000}
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    assert torch.bincount(torch.cat([data["train"][1], data["valid"][1]])).tolist() == [6000] * 10
    assert torch.bincount(data["test"][1]).tolist() == [1000] * 10
    assert data["test"][0].shape == (10_000, 784)
