"""``task.shuffle``: the training order of every task, shuffled per epoch or the data's own."""

from pathlib import Path

import pytest
import torch

from analog_snu.tasks import TaskOptions, load_task

JSB_TINY = Path(__file__).parent.parent / "data" / "fixtures" / "jsb_tiny.json"


def _epoch_order(task, rolls, generator):
    order = []
    for _, (targets, mask) in task.train_batches(generator):
        seen = targets[: int(mask[:, 0].sum()), 0]
        order.append(next(i for i, r in enumerate(rolls) if r.shape == seen.shape and torch.equal(r, seen)))
    return order


@pytest.mark.parametrize("shuffle", [True, False])
def test_music_training_order(shuffle):
    task = load_task("jsb", TaskOptions(data=str(JSB_TINY), batch_size=1, shuffle=shuffle))
    rolls = [torch.as_tensor(r, dtype=torch.float32) for r in task.data["train"]]
    generator = torch.Generator().manual_seed(3)
    orders = [_epoch_order(task, rolls, generator) for _ in range(12)]
    data_order = list(range(len(rolls)))
    assert all(sorted(order) == data_order for order in orders)  # every chorale once per epoch
    if shuffle:  # 2 chorales: all 12 epochs in data order by chance has probability 2**-12
        assert any(order != data_order for order in orders)
    else:
        assert all(order == data_order for order in orders)


def test_images_keep_their_order_without_shuffle():
    task = load_task("digits", TaskOptions(batch_size=50, shuffle=False))
    generator = torch.Generator().manual_seed(0)
    epochs = [torch.cat([y for _, y in task.train_batches(generator)]) for _ in range(2)]
    assert torch.equal(epochs[0], epochs[1])
    shuffled = load_task("digits", TaskOptions(batch_size=50))
    other = [torch.cat([y for _, y in shuffled.train_batches(generator)]) for _ in range(2)]
    assert not torch.equal(other[0], other[1])
    assert torch.equal(epochs[0].sort().values, other[0].sort().values)
