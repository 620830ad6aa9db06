import math

import pytest
import torch

from analog_snu.errors import InputValueError, ShapeError
from analog_snu.metrics import accuracy, correct_count, frame_nll, frame_nll_sum, perplexity

LN3 = math.log(3.0)


def test_frame_nll_matches_hand_computed_bernoulli_nll():
    # frame 1: sigmoid(0)=1/2 on (note on), sigmoid(ln 3)=3/4 off -> -ln(1/2) - ln(1/4) = ln 8
    # frame 2: sigmoid(ln 3)=3/4 on, sigmoid(0)=1/2 on -> -ln(3/4) - ln(1/2) = ln(8/3)
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    frames = torch.tensor([[1, 0], [1, 1]], dtype=torch.uint8)
    torch.testing.assert_close(frame_nll(logits, frames), torch.tensor([math.log(8.0), math.log(8.0 / 3.0)]))


def test_frame_nll_sum_counts_only_masked_frames():
    logits = torch.tensor([[[0.0, LN3]], [[LN3, 0.0]], [[5.0, 5.0]]])  # (T=3, N=1, K=2)
    frames = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 0.0]]])
    mask = torch.tensor([[True], [True], [False]])  # third frame is padding
    total, count = frame_nll_sum(logits, frames, mask)
    assert count == 2
    assert float(total) / count == pytest.approx((math.log(8.0) + math.log(8.0 / 3.0)) / 2)
    total_all, count_all = frame_nll_sum(logits, frames)
    assert count_all == 3
    # padding frame: two keys off at logit 5 -> 2 * ln(1 + e^5)
    assert float(total_all) == pytest.approx(math.log(8.0) + math.log(8.0 / 3.0) + 2 * math.log1p(math.exp(5.0)))


def test_frame_nll_is_stable_for_large_logits():
    value = frame_nll(torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 1.0]]))
    assert float(value) == pytest.approx(400.0)


def test_frame_nll_errors():
    with pytest.raises(ShapeError, match="same shape"):
        frame_nll(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputValueError, match="only 0 and 1"):
        frame_nll(torch.zeros(1, 2), torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ShapeError, match="mask must have shape"):
        frame_nll_sum(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3), torch.ones(2, dtype=torch.bool))


def test_perplexity_and_accuracy():
    assert perplexity(math.log(100.0)) == pytest.approx(100.0)
    assert perplexity(1e6) == math.inf
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = torch.tensor([1, 1, 1])
    assert correct_count(logits, labels) == 2
    assert accuracy(logits, labels) == pytest.approx(2 / 3)
    with pytest.raises(ShapeError, match=r"need logits \(N, C\)"):
        accuracy(torch.zeros(3), labels)
