"""Merge the two MNIST depth reports of bench_grapes.py (lr 0.01/0.05 and 0.001/0.003) into one:
best lr per (depth, rule) over all four, and the depth x rule x lr table of mean final test accuracy.

    python benchmarks/grapes_merge.py
"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench_grapes", "benchmarks/bench_grapes.py")
b = importlib.util.module_from_spec(spec); sys.modules["bench_grapes"] = b; spec.loader.exec_module(b)
a = json.load(open("benchmarks/results/grapes_mnist_depth.json")); c = json.load(open("benchmarks/results/grapes_mnist_depth_lowlr.json"))
runs = a["runs"] + c["runs"]
cfg = b.BenchConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in a["config"].items()})
summary = b.summarise(runs, cfg)
best = b.best_rows(summary)
report = {"config": a["config"], "summary": summary, "best": best, "runs": runs, "environment": a["environment"]}
json.dump(report, open("benchmarks/results/grapes_mnist_depth_all.json", "w"), indent=1)
print(b.markdown_table(report))
print()
# per depth x lr matrix of mean final test acc
import statistics
for depth in (2, 5, 10):
    print("depth", depth)
    for opt in ("sgd", "grapes-propagating", "fa", "fa-grapes", "dfa", "dfa-grapes"):
        cells = []
        for lr in (0.001, 0.003, 0.01, 0.05):
            g = [r["test_accuracy"][-1] for r in runs if r["depth"] == depth and r["optimizer"] == opt and abs(r["lr"] - lr) < 1e-12]
            cells.append(f"{100*statistics.mean(g):.1f}" if g else "–")
        print(f"| {depth} | {opt} | " + " | ".join(cells) + " |")
cfg2 = cfg; cfg2.nets = ("mlp",); cfg2.modes = ("digital",)
b.plot(runs, cfg2, __import__("pathlib").Path("benchmarks/results/grapes_mnist_depth_all.png"))
