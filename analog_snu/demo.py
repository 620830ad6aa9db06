"""Main job: an SNU network on real handwritten digits, digital and on simulated PCM.

Trains a 64-128-10 SNU network on scikit-learn's 8x8 digits (rate-coded as Bernoulli
spikes over 20 steps, 10 expected spikes at full intensity) twice: digitally, and with
hardware-aware training on aihwkit PCM tiles (preset ``pcm_joshi2020``: aihwkit's PCM
statistics); the PCM network is then programmed (seeded) and drifted to one day after
programming (global drift compensation) before testing. Run: ``python -m analog_snu.demo``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from analog_snu.data import load_digits, rate_encode
from analog_snu.device_models import preset
from analog_snu.hardware import drift, program
from analog_snu.layers import SNUNetwork
from analog_snu.training import accuracy, evaluate, make_optimizer, train_epoch

__all__ = ["add_arguments", "digit_batches", "main", "report", "run_demo"]

# 8x8 images carry 64 pixels of 16 grey levels: at IBM's MNIST rate (6 spikes in 20 steps)
# too few spikes reach the network (91 % digital); 10 spikes give 95-96 %.
STEPS, RATE = 20, 10.0
PCM_PRESET = "pcm_joshi2020"
ONE_DAY_S = 86_400.0


def digit_batches(
    images: Tensor, labels: Tensor, batch_size: int, generator: torch.Generator, shuffle: bool = True
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of rate-coded spikes (T, N, 64) with labels (N,); fresh spikes every call."""
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(labels), batch_size):
        idx = order[start : start + batch_size]
        yield rate_encode(images[idx], STEPS, RATE, generator), labels[idx]


def _train(model: nn.Module, data, epochs: int, seed: int, lr: float, progress: bool, desc: str) -> None:
    optimizer = make_optimizer(model, "adam", lr=lr)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        batches = digit_batches(data.train_images, data.train_labels, 32, generator)
        train_epoch(model, batches, optimizer, loss_fn, desc=f"{desc} epoch {epoch + 1}/{epochs}", progress=progress)


def _test_accuracy(model: nn.Module, data, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed + 10_000)  # same test spikes for every model
    batches = digit_batches(data.test_images, data.test_labels, 256, generator, shuffle=False)
    return evaluate(model, batches, accuracy)


def run_demo(epochs: int = 15, seed: int = 0, hidden: int = 128, lr: float = 5e-3, progress: bool = True) -> dict:
    """Train digital and PCM (HWA) networks; return test accuracies and wall times."""
    data = load_digits()
    sizes = [64, hidden, 10]
    results: dict[str, float] = {}

    torch.manual_seed(seed)
    digital = SNUNetwork(sizes, output="mean")
    start = time.perf_counter()
    _train(digital, data, epochs, seed, lr, progress, "digital")
    results["digital_train_s"] = time.perf_counter() - start
    results["digital_accuracy"] = _test_accuracy(digital, data, seed)

    torch.manual_seed(seed)
    analog = SNUNetwork(sizes, output="mean", rpu_config=preset(PCM_PRESET).rpu_config("hwa"))
    start = time.perf_counter()
    _train(analog, data, epochs, seed, lr, progress, "PCM HWA")
    results["pcm_train_s"] = time.perf_counter() - start
    analog.eval()
    results["pcm_accuracy_before_programming"] = _test_accuracy(analog, data, seed)
    program(analog, seed=seed)
    drift(analog, ONE_DAY_S, seed=seed)
    results["pcm_accuracy_1day"] = _test_accuracy(analog, data, seed)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per network (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def report(results: dict) -> None:
    """Print the demo's accuracies."""
    print(f"digital SNU            test accuracy: {100 * results['digital_accuracy']:.1f} %"
          f"  (trained in {results['digital_train_s']:.0f} s)")
    print(f"PCM SNU, before prog.  test accuracy: {100 * results['pcm_accuracy_before_programming']:.1f} %"
          f"  (HWA-trained in {results['pcm_train_s']:.0f} s)")
    print(f"PCM SNU, 1 day drift   test accuracy: {100 * results['pcm_accuracy_1day']:.1f} %"
          "  (programmed, drifted 86,400 s, global drift compensation)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run_demo(epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    report(results)
    return results


if __name__ == "__main__":
    main()
