"""06: GRAPES, feedback alignment (FA) and direct feedback alignment (DFA) against plain BP.

The same digits SNU, initial weights, data order and spikes under each learning rule, with plain
SGD at one learning rate. (At equal learning rate GRAPES takes larger steps on the hidden
layers; compare each rule at its own best rate before drawing conclusions: benchmarks/RESULTS.md.)

    python examples/06_learning_rules.py            # add --toy for a tiny, quick run
"""

import sys
from pathlib import Path

from analog_snu import train_run
from analog_snu.experiments import build_config

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/06")
SIZE = {"train-limit": 48, "epochs": 1, "layers": [8]} if TOY else {"epochs": 10, "layers": [128, 128]}
RULES = [  # (--rule, --grapes)
    ("bp", None),
    ("bp", "propagating"),  # IBM's BPgrapes: the modulated error flows on to the layers below
    ("bp", "local"),        # only each layer's own update is scaled
    ("fa", None),
    ("fa", "propagating"),  # FAgrapes
    ("dfa", None),
    ("dfa", "propagating"),  # DFAgrapes
]

results = []
for rule, grapes in RULES:
    name = rule + (f"+grapes-{grapes}" if grapes else "")
    flags = {"task": "digits", "optimizer": "sgd", "lr": 0.1, "rule": rule, "seed": 0, **SIZE}
    if grapes:
        flags["grapes"] = grapes
    run = OUT / name
    result = train_run(build_config(flags=flags), run, force=run.exists(), progress=False)
    results.append((name, result.final["test_accuracy"], result.history[-1]["train_loss"]))

print(f"{'rule':28s} {'test accuracy':>13s} {'last train loss':>16s}")
for name, accuracy, loss in results:
    print(f"{name:28s} {accuracy:13.4f} {loss:16.4f}")
