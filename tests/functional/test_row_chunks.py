"""The gather-sums on several threads: chunks that cover every row, the same bits on any thread count,
and a pool that a forked child does not inherit."""

import multiprocessing

import numpy as np
import pytest
import torch

from analog_snu.functional import row_chunks, spike_linear
from analog_snu.functional.row_chunks import MIN_ROWS_PER_CHUNK, chunk_bounds, run_row_chunks
from analog_snu.functional.spike_linear_loops import gather_sum


def test_chunks_cover_the_rows_in_order_with_about_equal_work():
    counts = np.array([10] * 50 + [0] * 50 + [40] * 25, np.int64)  # work 500 / 0 / 1000
    bounds = chunk_bounds(counts, 3)
    assert bounds[0] == 0 and bounds[-1] == len(counts) and bounds == sorted(set(bounds))
    work = [int(counts[a:b].sum()) for a, b in zip(bounds, bounds[1:])]
    assert sum(work) == 1500 and max(work) <= 500 + 40  # a third each, within one row's work
    assert chunk_bounds(counts, 1) == [0, len(counts)]
    assert chunk_bounds(np.zeros(7, np.int64), 4) == [0, 7]  # no work: one chunk
    assert chunk_bounds(np.array([5, 0, 0, 0], np.int64), 4) == [0, 1, 4]  # never an empty chunk


def test_every_chunk_runs_once_on_its_rows(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(row_chunks, "MIN_WORK_PER_CHUNK", 1)
    rows = 3 * MIN_ROWS_PER_CHUNK
    counts = np.ones(rows, np.int64)
    seen = []

    def kernel(lists, starts, counts, src, out, tag):
        seen.append((int(starts[0]), len(starts), tag))
        out[:] = starts[:, None]

    out = np.zeros((rows, 2), np.int64)
    run_row_chunks(kernel, np.zeros(rows, np.int32), np.arange(rows, dtype=np.int64), counts, None, out, "x")
    assert sorted(seen) == [(0, 64, "x"), (64, 64, "x"), (128, 64, "x")]
    assert np.array_equal(out[:, 0], np.arange(rows))


def test_small_work_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    rows = 8 * MIN_ROWS_PER_CHUNK
    calls = []
    run_row_chunks(lambda lists, starts, *rest: calls.append(len(starts)), None, np.arange(rows),
                   np.ones(rows, np.int64), None, np.empty((rows, 2)))
    assert calls == [rows]  # 2 adds a row: far below a chunk's worth


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_spike_products_are_the_same_bits_on_any_thread_count(threads, monkeypatch):
    monkeypatch.setattr(row_chunks, "MIN_WORK_PER_CHUNK", 1)  # toy sizes: chunks anyway
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(700, 96, generator=generator) < 0.1).float()
    weight, grad = torch.randn(48, 96, generator=generator), torch.randn(700, 48, generator=generator)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        spikes = spike_linear.spike_rows(x, weight)
        assert spikes is not None
        one = spike_linear.spike_product(spikes, weight), spike_linear.spike_weight_gradient(spikes, grad)
        torch.set_num_threads(threads)
        many = spike_linear.spike_product(spikes, weight), spike_linear.spike_weight_gradient(spikes, grad)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])
    torch.testing.assert_close(one[0], x @ weight.t(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one[1], grad.t() @ x, rtol=1e-5, atol=1e-4)


def _gather_in_child(queue):
    rows = 4 * MIN_ROWS_PER_CHUNK
    lists = np.zeros(rows, np.int32)
    out = np.empty((rows, 3), np.float32)
    torch.set_num_threads(2)
    run_row_chunks(gather_sum, lists, np.arange(rows, dtype=np.int64), np.ones(rows, np.int64),
                   np.ones((1, 3), np.float32), out)
    queue.put(float(out.sum()))


def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    monkeypatch.setattr(row_chunks, "MIN_WORK_PER_CHUNK", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the parent's pool runs (and its threads will not exist in the child)
        _gather_in_child(multiprocessing.get_context("fork").SimpleQueue())
    finally:
        torch.set_num_threads(before)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_gather_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child hung or failed on the parent's pool"
    assert queue.get(timeout=5) == 4 * MIN_ROWS_PER_CHUNK * 3
