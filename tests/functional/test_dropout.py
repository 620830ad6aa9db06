"""Variational dropout: one mask per sample shared over time, unbiased, identity in eval, global RNG."""

import math

import pytest
import torch

from analog_snu.errors import ConfigError, ShapeError
from analog_snu.functional import check_dropout, dropout_mask, variational_dropout


def test_one_mask_per_sample_constant_over_time_and_different_between_samples():
    x = torch.ones(7, 64, 32)  # (T, N, F)
    y = variational_dropout(x, 0.5, True)
    assert y.shape == x.shape
    assert set(y.unique().tolist()) == {0.0, 2.0}  # kept units scaled by 1/(1-p)
    for t in range(1, 7):
        assert torch.equal(y[t], y[0])
    # two samples with the same mask: probability 2^-32 per pair; all 64 rows distinct
    assert len({tuple(row.tolist()) for row in y[0]}) == 64


def test_feature_axes_get_their_own_mask_entries_and_time_dim_may_move():
    x = torch.ones(5, 16, 3, 4, 4)  # (T, N, C, H, W)
    y = variational_dropout(x, 0.5, True)
    assert torch.equal(y, y[:1].expand_as(y))
    assert len(y[0, 0].unique()) == 2  # zeros and 2s inside one sample's (C, H, W)
    batch_first = variational_dropout(torch.ones(16, 5, 8), 0.5, True, time_dim=1)  # (N, T, F)
    assert torch.equal(batch_first, batch_first[:, :1].expand_as(batch_first))


def test_without_time_axis_every_element_is_independent():
    y = variational_dropout(torch.ones(2000, 10), 0.25, True, time_dim=None)
    keep = (y != 0).float()
    torch.testing.assert_close(y.unique(), torch.tensor([0.0, 4 / 3]))
    # columns are independent: two columns are not copies of each other
    assert not torch.equal(keep[:, 0], keep[:, 1])
    # keep fraction 0.75 within 5 sigma (sigma = sqrt(0.75*0.25/20000) = 0.0031)
    assert abs(keep.mean().item() - 0.75) < 5 * math.sqrt(0.75 * 0.25 / keep.numel())


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_expectation_is_preserved(p):
    samples = 20_000
    base = torch.linspace(-2.0, 3.0, 12, dtype=torch.float64)  # an arbitrary activation row
    x = base.expand(4, samples, 12)  # the same row in every sample, 4 steps
    y = variational_dropout(x, p, True)
    mean = y[2].mean(0)  # average over the independent masks of the samples
    # Var(m / (1-p) * x) = x^2 p / (1-p): 5 sigma of the mean over `samples` masks
    bound = 5 * base.abs() * math.sqrt(p / (1 - p) / samples)
    assert torch.all((mean - base).abs() <= bound + 1e-12), (mean - base, bound)
    keep = (y[0] != 0).double().mean().item()
    assert abs(keep - (1 - p)) < 5 * math.sqrt(p * (1 - p) / (samples * 12))


def test_eval_mode_and_p_zero_return_the_input_itself():
    x = torch.rand(3, 4, 5)
    assert variational_dropout(x, 0.5, False) is x
    assert variational_dropout(x, 0.0, True) is x
    state = torch.get_rng_state()
    variational_dropout(x, 0.5, False)
    assert torch.equal(torch.get_rng_state(), state)  # eval draws nothing


def test_masks_come_from_the_global_cpu_generator():
    x = torch.ones(3, 8, 6, dtype=torch.float64)
    torch.manual_seed(11)
    a = variational_dropout(x, 0.4, True)
    before = torch.get_rng_state()
    b = variational_dropout(x, 0.4, True)
    assert not torch.equal(torch.get_rng_state(), before)  # drawing advanced the global state
    torch.manual_seed(11)
    assert torch.equal(variational_dropout(x, 0.4, True), a)
    torch.set_rng_state(before)
    assert torch.equal(variational_dropout(x, 0.4, True), b)
    assert a.dtype == torch.float64


def test_gradient_flows_through_the_kept_units_only():
    x = torch.rand(4, 6, 5, requires_grad=True)
    y = variational_dropout(x, 0.5, True)
    y.sum().backward()
    mask = (y / x).detach()  # x > 0 almost surely
    torch.testing.assert_close(x.grad, mask)
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0}


def test_dropout_mask_shape_dtype_and_values():
    mask = dropout_mask((3, 4), 0.2, dtype=torch.float64)
    assert mask.shape == (3, 4) and mask.dtype == torch.float64
    assert set(mask.unique().tolist()) <= {0.0, 1.25}


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), float("inf"), True, "0.5", None])
def test_bad_probabilities_are_refused_naming_dropout(bad):
    with pytest.raises(ConfigError, match=r"dropout must be a drop probability in \[0, 1\) \(0 = off\), got"):
        check_dropout(bad)
    with pytest.raises(ConfigError, match=r"dropout must be a drop probability"):
        variational_dropout(torch.ones(2, 2, 2), bad, True)


def test_check_dropout_accepts_ints_and_names_the_argument():
    assert check_dropout(0) == 0.0 and isinstance(check_dropout(0), float)
    with pytest.raises(ConfigError, match=r"^p_hidden must be"):
        check_dropout(2, name="p_hidden")


def test_time_dim_must_be_an_axis():
    with pytest.raises(ShapeError, match=r"time_dim 3 is not an axis of the input of shape \(2, 3, 4\)"):
        variational_dropout(torch.ones(2, 3, 4), 0.5, True, time_dim=3)
