"""Spike rates per layer and the first layer's gradient of a deep MNIST SNU/sSNU at initialisation.

Why the 7-layer SNU needs He init and a lower threshold: with torch's default init (or threshold
1) the spikes die out by the second layer, the readout sees zeros and no gradient reaches any
weight. One batch of 64 rate-coded training images (the task's defaults: 20 steps, 6 spikes at
full intensity), no training::

    OMP_NUM_THREADS=1 python benchmarks/deep_snu_rates.py --layers 256 256 256 256 256 256 256
"""

from __future__ import annotations

import argparse

import torch

from analog_snu.experiments.config import RunConfig, spec_for
from analog_snu.experiments.train import load_task_for
from analog_snu.models import build_model
from analog_snu.training.init import init_weights


def rates_and_gradient(cell: str, layers: list[int], init: str, threshold: float, seed: int = 0,
                       train_limit: int = 64) -> tuple[list[float], float]:
    """Mean output of every hidden layer (spike rate; the sSNU's output is analog) and |dL/dW_1|."""
    config = RunConfig.model_validate({
        "task": {"name": "mnist", "train_limit": train_limit},
        "model": {"cell": cell, "layers": layers, "threshold": threshold},
    })
    task = load_task_for(config)
    torch.manual_seed(seed)
    model = build_model(spec_for(config, task.head, task.input_size, task.output_size))
    init_weights(model, init, seed=seed)
    x, labels = next(task.train_batches(torch.Generator().manual_seed(seed)))
    rates: list[float] = []
    for layer in model.layers:
        layer.register_forward_hook(lambda module, args, output: rates.append(output[0].float().mean().item()))
    torch.nn.functional.cross_entropy(model(x), labels).backward()
    return rates, model.layers[0].weight_ih.weight.grad.norm().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", type=int, default=[256] * 7)
    parser.add_argument("--cells", nargs="+", default=["snu", "ssnu"])
    parser.add_argument("--inits", nargs="+", default=["default", "he_uniform"])
    parser.add_argument("--thresholds", nargs="+", type=float, default=[1.0, 0.5, 0.25])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"hidden layers {args.layers}; mean output per layer (bottom to top), |dL/dW_1|")
    for cell in args.cells:
        for init in args.inits:
            for threshold in args.thresholds:
                rates, gradient = rates_and_gradient(cell, args.layers, init, threshold)
                print(f"{cell:>5} {init:>10} threshold {threshold:<5g} rates {' '.join(f'{r:.3f}' for r in rates)}"
                      f"  grad {gradient:.1e}", flush=True)


if __name__ == "__main__":
    main()
