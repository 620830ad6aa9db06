"""The README's and the user guide's snippets run as written (at toy size), so they cannot go stale.

Shell blocks: every ``analog-snu ...`` line runs through :func:`analog_snu.cli.main`, ``train``
made toy-sized by flags appended after the written ones (later flags win). Python blocks: the
README's quickstart runs with ``build_config`` made toy-sized the same way; the guide's blocks run
page by page in a folder that holds a toy run named as the pages name it.
"""

import re
import shlex
from pathlib import Path

import pytest

import analog_snu.experiments
from analog_snu.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = sorted((ROOT / "docs" / "guide").glob("*.md"))
#: appended to every `train` (later flags win): the same commands, toy-sized
TOY_TRAIN = ["--train-limit", "48", "--epochs", "1", "--layers", "8", "--quiet"]
TOY_DEMO = ["--epochs", "1", "--hidden", "8"]
#: merged into every build_config(flags=...) of a Python snippet
TOY_FLAGS = {"train-limit": 48, "epochs": 1, "layers": [8]}


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file, in order."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def commands(path: Path) -> list[str]:
    """Every `analog-snu ...` line of a file's bash blocks (continuations joined, comments cut)."""
    found = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("analog-snu "):
                found.append(line)
    return found


def test_readme_has_both_quickstarts_and_no_templates():
    readme = commands(README)
    assert len(readme) >= 6
    assert {"train", "eval", "drift-study", "export-maps", "report"} <= {c.split()[1] for c in readme}
    assert len(blocks(README, "python")) == 1
    for command in [*readme, *(c for page in GUIDE for c in commands(page))]:
        assert not re.search(r"[{}<>\[\]]", command), f"not runnable as written: {command}"


def test_readme_stays_short_and_for_users():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    # no dates, commit hashes or issue numbers in the README
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)
    assert not re.search(r"\bcommit [0-9a-f]{7,}\b", text)
    assert not re.search(r"\bissue \d+", text, flags=re.I)


def test_readme_and_guide_commands_run_at_toy_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # every command as written: none needs a file a Python snippet wrote
    ran: set[str] = set()
    seen: set[str] = set()
    for command in [c for path in [README, *GUIDE] for c in commands(path)]:
        if command in ran:
            continue  # the same line on another page (its run folder exists already)
        ran.add(command)
        # a command that differs from one already run only in its run folder adds nothing (a report
        # alone takes ~15 s); commands it depends on (train, other flags) still run
        shape = re.sub(r"runs/\w+", "RUN", command)
        if shape in seen and not command.startswith("analog-snu train"):
            continue
        seen.add(shape)
        argv = shlex.split(command)[1:]
        if argv[0] == "train":
            argv += TOY_TRAIN
        if "--demo" in argv:
            argv += TOY_DEMO
        if argv[0] == "sweep":
            continue  # sweeps start Ray: tested in tests/experiments/test_sweep.py
        assert main(argv) == 0, f"{command}\n{capsys.readouterr().err}"


def test_the_hil_mixed_command_is_the_one_of_the_measured_figure():
    """RESULTS.md measured 91.7 % for mixed-precision HIL on digits with the task's Adam 0.005 (88.6 %
    with SGD at lr 0.5): the command the docs give must be that one, and the docs must quote it."""
    results = " ".join((ROOT / "benchmarks" / "RESULTS.md").read_text().split())
    assert "| HIL mixed | **Adam 0.005** | **91.7** |" in results
    mixed = [c for page in [README, *GUIDE] for c in commands(page) if "--hil-scheme mixed" in c]
    assert mixed and all("--task digits" in c and "--optimizer" not in c and "--lr" not in c for c in mixed)
    assert any("91.7 %" in page.read_text() for page in [README, *GUIDE])


def _toy_build_config(**kwargs):
    return _BUILD_CONFIG(**{**kwargs, "flags": {**(kwargs.get("flags") or {}), **TOY_FLAGS}})


_BUILD_CONFIG = analog_snu.experiments.build_config


def test_readme_python_quickstart_runs_at_toy_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(analog_snu.experiments, "build_config", _toy_build_config)
    (source,) = blocks(README, "python")
    exec(compile(source, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    # device_count: two PCM devices per weight, 64 x 128 + 128 x 10 weights
    assert "'total': 18944" in printed
    assert (tmp_path / "runs" / "py_digits" / "final.json").is_file()
    assert list((tmp_path / "runs" / "py_digits" / "eval").glob("test_*.json"))


@pytest.mark.parametrize("page", [p for p in GUIDE if blocks(p, "python")], ids=lambda p: p.stem)
def test_guide_python_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "runs/digits_hwa" in page.read_text():  # the pages' trained run, toy-sized
        argv = ["train", "--task", "digits", "--device", "pcm_joshi2020", "--out", "runs/digits_hwa", *TOY_TRAIN]
        assert main(argv) == 0
    namespace = {"__name__": page.stem}  # a page's blocks share names, as a reader's session does
    for index, source in enumerate(blocks(page, "python")):
        exec(compile(source, f"{page.name}, python block {index + 1}", "exec"), namespace)
