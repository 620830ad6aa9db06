"""Progress output that fits its stream: bars with totals on a terminal, plain epoch lines elsewhere."""

import contextlib
import io
import math
import re
import time

import pytest
import torch
from torch import nn

from analog_snu.tasks.base import SizedBatches
from analog_snu.training.loop import (
    ProgressMode,
    epoch_line,
    format_duration,
    metrics_line,
    progress_mode,
    train_epoch,
)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        if self.closed:  # as real files do
            raise ValueError("I/O operation on closed file")
        return True


def _batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, generator=generator), torch.randn(4, 1, generator=generator)) for _ in range(count)]


def _setup():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), nn.functional.mse_loss


@pytest.mark.parametrize("no_progress, quiet, terminal, bars, lines", [
    (False, False, True, True, True),
    (False, False, False, False, True),   # pipe / file / CI: lines only
    (True, False, True, False, True),     # --no-progress hides bars only
    (False, True, True, False, False),    # --quiet hides both
    (True, True, False, False, False),
])
def test_progress_mode(no_progress, quiet, terminal, bars, lines):
    stream = FakeTerminal() if terminal else io.StringIO()
    mode = progress_mode(no_progress=no_progress, quiet=quiet, stream=stream)
    assert (mode.bars, mode.epoch_lines) == (bars, lines)
    assert (mode.stream is stream) == bars


def test_closed_stream_is_not_a_terminal():
    stream = FakeTerminal()
    stream.close()
    assert progress_mode(stream=stream).bars is False


def test_non_terminal_run_writes_one_plain_line_per_epoch():
    """What a CI log or `| tee` sees: no carriage return, exactly one line per epoch."""
    model, optimizer, loss_fn = _setup()
    log = io.StringIO()
    mode = progress_mode(stream=log)
    epochs = 3
    for epoch in range(1, epochs + 1):
        loss = train_epoch(model, _batches(5, epoch), optimizer, loss_fn, progress=mode, desc=f"epoch {epoch}")
        if mode.epoch_lines:
            print(epoch_line(epoch, epochs, {"epoch": epoch, "train_loss": loss, "epoch_s": 0.5}), file=log)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == epochs and text.endswith("\n")
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(line.endswith("(0.5 s)") for line in lines)


def test_terminal_bar_has_total_percentage_and_rate():
    model, optimizer, mse = _setup()

    def slow_loss(outputs, targets):  # the bar refreshes every 0.5 s: give it time to show a rate
        time.sleep(0.3)
        return mse(outputs, targets)

    term = FakeTerminal()
    mode = progress_mode(stream=term)
    train_epoch(model, SizedBatches(iter(_batches(4)), 4), optimizer, slow_loss, progress=mode, desc="epoch 1/1")
    text = term.getvalue()
    assert "epoch 1/1:   0%|" in text and "0/4" in text
    # a later refresh: percentage, count of the total, elapsed<ETA, a measured rate, the running loss
    assert re.search(r"\d+%\|.*\| [1-4]/4 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+batch/s, loss=\d", text), text
    # the total comes from len(); an explicit total works for a bare generator too
    term2 = FakeTerminal()
    train_epoch(model, iter(_batches(3)), optimizer, mse, progress=ProgressMode(True, True, term2), total=3)
    assert "| 0/3 [" in term2.getvalue()


def test_bool_progress_false_writes_nothing(capsys):
    model, optimizer, loss_fn = _setup()
    train_epoch(model, _batches(2), optimizer, loss_fn, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_train_epoch_returns_the_mean_batch_loss():
    model, optimizer, loss_fn = _setup()
    batches = _batches(3)
    expected = []
    reference = nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.01)
    for x, y in batches:
        ref_opt.zero_grad()
        loss = loss_fn(reference(x), y)
        loss.backward()
        ref_opt.step()
        expected.append(loss.item())
    got = train_epoch(model, batches, optimizer, loss_fn, progress=False)
    assert got == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_epoch_line_format():
    row = {"epoch": 2, "train_loss": 0.123456, "valid_loss": 0.5, "valid_accuracy": 0.91234, "train_s": 1.0,
           "epoch_s": 75.2}
    assert epoch_line(2, 10, row, elapsed=3725) == (
        "epoch 2/10: train loss 0.1235, valid loss 0.5000, valid accuracy 91.23 % (1 min 15 s, elapsed 1 h 02 min)"
    )
    assert epoch_line(1, 1, {"train_loss": 1.0}) == "epoch 1/1: train loss 1.0000"
    assert metrics_line("trial 3/8", {"lr": 0.001, "valid_nll": 8.5, "layers": "128"}, seconds=2.0) == (
        "trial 3/8: lr 0.0010, valid nll 8.5000, layers 128 (2.0 s)"
    )
    assert "\r" not in epoch_line(1, 1, {"x": math.inf}) and "\n" not in epoch_line(1, 1, {"x": 1e9})


@pytest.mark.parametrize("seconds, text", [
    (0.04, "0.0 s"), (59.94, "59.9 s"), (60, "1 min 00 s"), (3599, "59 min 59 s"), (3600, "1 h 00 min"),
    (90061, "25 h 01 min"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_sized_batches_iterates_once_with_a_length():
    batches = SizedBatches((i for i in range(3)), 3)
    assert len(batches) == 3
    assert list(batches) == [0, 1, 2]
    assert list(batches) == []


class _Recorder:
    """A learning rule and a hardware hook that log when the loop calls them."""

    def __init__(self, log):
        self.log = log

    # learning rule
    def begin_batch(self):
        self.log.append("rule.begin_batch")

    def before_step(self):
        self.log.append("rule.before_step")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class _RecordingHardware:
    def __init__(self, log):
        self.log = log

    def begin_batch(self):
        self.log.append("hardware.begin_batch")

    @contextlib.contextmanager
    def forward_pass(self):
        self.log.append("hardware.forward_pass enter")
        yield
        self.log.append("hardware.forward_pass exit")

    @contextlib.contextmanager
    def optimizer_step(self):
        self.log.append("hardware.optimizer_step enter")
        yield
        self.log.append("hardware.optimizer_step exit")


def test_one_batch_calls_the_rule_and_the_hardware_in_the_documented_order():
    log = []
    model, _, loss_fn = _setup()
    model.register_forward_hook(lambda *_: log.append("forward"))

    class LoggedSGD(torch.optim.SGD):
        def zero_grad(self, set_to_none=True):
            log.append("zero_grad")
            super().zero_grad(set_to_none)

        def step(self, closure=None):
            log.append("step")
            return super().step(closure)

    def logged_loss(outputs, targets):
        loss = loss_fn(outputs, targets)
        loss.register_hook(lambda grad: log.append("backward"))
        return loss

    optimizer = LoggedSGD(model.parameters(), lr=0.01)
    train_epoch(model, _batches(2), optimizer, logged_loss, _Recorder(log), _RecordingHardware(log), progress=False)
    one_batch = ["zero_grad", "hardware.begin_batch", "rule.begin_batch", "hardware.forward_pass enter", "forward",
                 "backward", "hardware.forward_pass exit", "rule.before_step", "hardware.optimizer_step enter", "step",
                 "hardware.optimizer_step exit"]
    assert log == one_batch * 2
