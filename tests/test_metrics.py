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


def test_nll_averages_by_hand():
    # two sequences over two batches: A has 3 frames of NLL 1, 2, 3; B 2 frames of NLL 4, 6;
    # C (second batch) 1 frame of NLL 5 (no frame after its first)
    from analog_snu.metrics import NLLAverages

    def batch(per_frame_nll, mask):
        # one key: a logit z with frame 1 has NLL log(1 + exp(-z)), so z = -log(exp(nll) - 1)
        nll = torch.tensor(per_frame_nll, dtype=torch.float64).unsqueeze(-1)
        return -torch.log(torch.expm1(nll)), torch.ones_like(nll), torch.tensor(mask)

    averages = NLLAverages()
    averages.add(*batch([[1.0, 4.0], [2.0, 6.0], [3.0, 9.0]], [[True, True], [True, True], [True, False]]))
    averages.add(*batch([[5.0]], [[True]]))
    got = averages.result()
    expected = {
        "nll": (1 + 2 + 3 + 4 + 6 + 5) / 6,
        "nll_no_first": (2 + 3 + 6) / 3,
        "nll_per_sequence": (2.0 + 5.0 + 5.0) / 3,
        "nll_per_sequence_no_first": (2.5 + 6.0) / 2,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9), key
