"""The gather-sum kernels of spike products: index lists of hand-made 0/1 matrices, the binary check,
the sums against numpy's and in their documented order."""

import math

import numpy as np
import pytest
import torch

from analog_snu.functional.spike_linear_loops import (
    ACTIVE,
    NOT_BINARY,
    TOO_DENSE,
    active_inputs,
    gather_sum,
    gather_sum_blocked,
    transpose_lists,
)

DTYPES = [np.float32, np.float64]


def scan(x, limit=None):
    """active_inputs on ``x`` with room for every entry; returns (state, lists, starts, counts)."""
    rows, width = x.shape
    limit = x.size if limit is None else limit
    lists, starts, counts = np.empty(limit + width, np.int32), np.empty(rows, np.int64), np.empty(rows, np.int64)
    state = active_inputs(x, limit, lists, starts, counts)
    return state, lists, starts, counts


def row_lists(x):
    """The expected lists by numpy: per row the columns of its 1s."""
    return [list(np.flatnonzero(row)) for row in x]


def as_lists(lists, starts, counts):
    return [list(lists[s:s + c]) for s, c in zip(starts, counts)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_index_lists_of_a_hand_made_matrix(dtype):
    x = np.array([[0, 1, 0, 1, 0],
                  [0, 0, 0, 0, 0],  # a silent row
                  [1, 1, 1, 1, 1],
                  [-0.0, 0, 0, 0, 1]], dtype=dtype)  # -0.0 is a 0
    state, lists, starts, counts = scan(x)
    assert state == ACTIVE
    assert list(counts) == [2, 0, 5, 1]
    assert list(starts) == [0, 2, 2, 7]
    assert list(lists[:8]) == [1, 3, 0, 1, 2, 3, 4, 4]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("row", [0, 3])
def test_any_other_value_is_not_binary(dtype, value, row):
    x = (np.arange(40).reshape(5, 8) % 3 == 0).astype(dtype)
    x[row, 5] = value
    assert scan(x)[0] == NOT_BINARY


def test_the_scan_stops_at_the_first_row_with_another_value():
    # row 0 holds 0.5: nothing of the later rows is read, so starts/counts of row 1 stay as they were
    x = np.ones((3, 4), dtype=np.float32)
    x[0, 2] = 0.5
    lists, starts, counts = np.empty(16, np.int32), np.full(3, -7, np.int64), np.full(3, -7, np.int64)
    assert active_inputs(x, 12, lists, starts, counts) == NOT_BINARY
    assert list(starts) == [-7, -7, -7] and list(counts) == [-7, -7, -7]


def test_too_dense_past_the_limit_and_active_at_it():
    x = np.zeros((4, 6), dtype=np.float32)
    x[:, :3] = 1.0  # 12 ones
    assert scan(x, limit=12)[0] == ACTIVE
    assert scan(x, limit=11)[0] == TOO_DENSE
    assert scan(np.zeros((4, 6), np.float32), limit=0)[0] == ACTIVE


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_lists_and_their_transpose_match_numpy(dtype):
    x = (np.random.default_rng(0).random((37, 23)) < 0.2).astype(dtype)
    x[5] = 0.0  # an all-zero row
    x[:, 7] = 0.0  # an all-zero column
    state, lists, starts, counts = scan(x)
    assert state == ACTIVE
    assert as_lists(lists, starts, counts) == row_lists(x)
    total = int(counts.sum())
    t_lists, t_starts, t_counts = np.empty(total, np.int32), np.empty(23, np.int64), np.empty(23, np.int64)
    transpose_lists(lists, starts, counts, 23, t_lists, t_starts, t_counts)
    assert as_lists(t_lists, t_starts, t_counts) == row_lists(x.T)  # per column, its rows increasing
    assert t_counts[7] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_sum_against_numpy_sums(dtype):
    rng = np.random.default_rng(1)
    src = rng.standard_normal((30, 17)).astype(dtype)
    counts = np.array([0, 1, 3, 4, 5, 9, 30], np.int64)  # every remainder of the four-at-a-time loop
    lists = np.concatenate([rng.permutation(30)[:c] for c in counts]).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    out = np.full((7, 17), np.nan, dtype=dtype)
    gather_sum(lists, starts, counts, src, out)
    for r in range(7):
        want = src[lists[starts[r]:starts[r] + counts[r]]].astype(np.float64).sum(0)
        np.testing.assert_allclose(out[r], want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    assert not out[0].any()  # an empty list sums to 0


def test_gather_sum_groups_four_rows_as_pairs():
    # (1e8 + 1) + (-1e8 + 1) rounds to 0 in float32 (each 1 is lost against 1e8); summed one by one
    # from the left it would be 1, and the two pairs' order ((a + c) + (b + d)) 2
    src = np.array([[1e8], [1.0], [-1e8], [1.0], [0.5]], dtype=np.float32)
    lists, starts, counts = np.arange(5, dtype=np.int32), np.array([0, 0]), np.array([4, 5])
    out = np.empty((2, 1), np.float32)
    gather_sum(lists, starts, counts, src, out)
    assert out[0, 0] == 0.0
    assert out[1, 0] == 0.5  # the fifth row added after the group


@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_weights_give_the_dense_product_exactly(dtype):
    rng = np.random.default_rng(2)
    x = (rng.random((50, 40)) < 0.15).astype(dtype)
    weight = rng.integers(-50, 50, (24, 40)).astype(dtype)  # (F_out, F_in)
    state, lists, starts, counts = scan(x)
    assert state == ACTIVE
    out = np.empty((50, 24), dtype=dtype)
    gather_sum(lists, starts, counts, np.ascontiguousarray(weight.T), out)
    assert torch.equal(torch.from_numpy(out), torch.from_numpy(x) @ torch.from_numpy(weight).T)


def column_lists(x):
    """The column-wise lists of the 0/1 matrix ``x``: (lists, starts, counts), rows increasing."""
    _, lists, starts, counts = scan(x)
    t_lists, t_starts, t_counts = np.empty(int(x.sum()), np.int32), np.empty(x.shape[1], np.int64), \
        np.empty(x.shape[1], np.int64)
    transpose_lists(lists, starts, counts, x.shape[1], t_lists, t_starts, t_counts)
    return t_lists, t_starts, t_counts


@pytest.mark.parametrize("block", [1, 3, 4, 7, 64])
def test_blocked_gather_sum_is_the_weight_gradient(block):
    rng = np.random.default_rng(3)
    x = (rng.random((37, 11)) < 0.3).astype(np.float32)
    x[:, 4] = 0.0  # a silent input
    grad = rng.integers(-20, 20, (37, 5)).astype(np.float32)  # integers: every order sums exactly
    out = np.full((11, 5), np.nan, np.float32)
    gather_sum_blocked(*column_lists(x), grad, out, block)
    assert torch.equal(torch.from_numpy(out), torch.from_numpy(x).T @ torch.from_numpy(grad))


def test_blocked_gather_sum_sums_block_by_block_in_fours():
    # input 0 is 1 in rows 0-5. One block or blocks of four: (g0 + g1) + (g2 + g3), then g4 and g5
    # one by one: in float32 each 1 is lost against 1e8, so 0 + 0.5 + 0.25. Blocks of three: g0, g1,
    # g2 one by one (0: the 1 lost again), then g3, g4, g5: 1.75.
    grad = np.array([[1e8], [1.0], [-1e8], [1.0], [0.5], [0.25]], dtype=np.float32)
    x = np.ones((6, 1), np.float32)
    lists = column_lists(x)
    one_block, fours, threes = (np.empty((1, 1), np.float32) for _ in range(3))
    gather_sum_blocked(*lists, grad, one_block, 64)
    gather_sum_blocked(*lists, grad, fours, 4)
    gather_sum_blocked(*lists, grad, threes, 3)
    plain = np.empty((1, 1), np.float32)
    gather_sum(*lists, grad, plain)
    assert one_block[0, 0] == plain[0, 0] == fours[0, 0] == 0.75
    assert threes[0, 0] == 1.75


def test_blocked_gather_sum_equals_the_unblocked_one_bit_for_bit_in_one_block():
    rng = np.random.default_rng(4)
    x = (rng.random((50, 30)) < 0.2).astype(np.float32)
    grad = rng.standard_normal((50, 9)).astype(np.float32)
    blocked, plain = np.empty((30, 9), np.float32), np.empty((30, 9), np.float32)
    gather_sum_blocked(*column_lists(x), grad, blocked, 50)
    gather_sum(*column_lists(x), grad, plain)
    assert np.array_equal(blocked, plain)
