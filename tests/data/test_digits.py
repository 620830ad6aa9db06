"""load_digits: the same three-way split shape as the other image loaders, stratified and seeded."""

import numpy as np
import pytest
import torch

from analog_snu.data import DIGITS_SIZE, SPLITS, load_digits
from analog_snu.errors import ConfigError


def test_three_disjoint_splits_cover_the_data():
    data = load_digits()
    assert tuple(data) == SPLITS
    sizes = {name: len(labels) for name, (_, labels) in data.items()}
    assert sizes == {"train": 1300, "valid": 137, "test": 360}
    assert sum(sizes.values()) == DIGITS_SIZE
    for images, labels in data.values():
        assert images.dtype == torch.float32 and images.shape[1] == 64
        assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    # the data set holds a few duplicate images; count rows by index instead of by value
    rows = torch.cat([images for images, _ in data.values()])
    assert rows.shape[0] == DIGITS_SIZE
    assert float(rows.sum()) == pytest.approx(float(_all_images().sum()), rel=1e-6)


def _all_images() -> torch.Tensor:
    from sklearn.datasets import load_digits as sklearn_digits

    return torch.from_numpy((sklearn_digits().data / 16.0).astype(np.float32))


def test_stratified_class_counts():
    from sklearn.datasets import load_digits as sklearn_digits

    counts = np.bincount(sklearn_digits().target, minlength=10)
    data = load_digits()
    for name, (_, labels) in data.items():
        share = len(labels) / DIGITS_SIZE
        got = np.bincount(labels.numpy(), minlength=10)
        # stratified: each class within one image of its proportional share
        assert np.all(np.abs(got - counts * share) <= 1.0), (name, got, counts * share)


def test_seeded_same_seed_same_split_other_seed_other_split():
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    for name in SPLITS:
        assert torch.equal(a[name][0], b[name][0]) and torch.equal(a[name][1], b[name][1])
    assert not torch.equal(a["test"][0], c["test"][0])


def test_test_split_unchanged_from_the_two_way_split():
    """The test images are those of the former train/test split (test_size 0.2, seed 0)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    _, test_x, _, _ = train_test_split((bunch.data / 16.0).astype(np.float32), bunch.target, test_size=0.2,
                                       random_state=0, stratify=bunch.target)
    assert np.array_equal(load_digits()["test"][0].numpy(), test_x)


def test_sizes_are_configurable():
    data = load_digits(valid_size=200, test_size=100)
    assert [len(data[name][1]) for name in SPLITS] == [DIGITS_SIZE - 300, 200, 100]


@pytest.mark.parametrize("kwargs, match", [
    ({"valid_size": 5}, r"valid_size must be an int >= 10.*got 5"),
    ({"test_size": 0.2}, r"test_size must be an int >= 10.*got 0.2"),
    ({"valid_size": True}, r"valid_size must be an int >= 10.*got True"),
    ({"valid_size": 900, "test_size": 890}, r"must leave at least 10 of the 1797 images.*valid_size=900, test_size=890"),
])
def test_bad_sizes_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_digits(**kwargs)
