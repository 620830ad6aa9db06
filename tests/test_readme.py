"""The README's shell commands (at toy size) and Python snippets run as written, so they cannot go stale."""

import re
import shlex
from pathlib import Path

import torch

from analog_snu.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
#: appended to every `train` (later flags win): the same commands, toy-sized
TOY_TRAIN = ["--train-limit", "48", "--epochs", "1", "--layers", "8", "--quiet"]
TOY_DEMO = ["--epochs", "1", "--hidden", "8"]


def readme_commands() -> list[str]:
    """Every `analog-snu ...` line of the README's bash blocks (continuations joined, comments cut)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("analog-snu "):
                commands.append(line)
    return commands


def test_readme_has_commands_and_no_templates():
    commands = readme_commands()
    assert len(commands) >= 6
    for command in commands:
        assert not re.search(r"[{}<>\[\]]", command), f"not runnable as written: {command}"


def readme_python_blocks() -> list[str]:
    """Every ```python block of the README."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_snippets_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write files (device, weight maps) into the current folder
    blocks = readme_python_blocks()
    assert len(blocks) >= 3
    namespaces = []
    for block in blocks:
        namespace: dict = {"__name__": "readme"}
        exec(compile(block, "README.md", "exec"), namespace)
        namespaces.append(namespace)
    # the weight-map snippet's claim: the state dict copied before programming plus the maps give
    # a twin that computes exactly what the programmed and drifted network computes
    (maps,) = [ns for ns in namespaces if "twin" in ns]
    x = torch.bernoulli(torch.full((5, 2, 88), 0.3), generator=torch.Generator().manual_seed(0))
    outputs = []
    for net in (maps["net"], maps["twin"]):
        net.eval()
        torch.manual_seed(3)
        with torch.no_grad():
            outputs.append(net(x))
    assert torch.equal(*outputs)


def test_readme_hil_mixed_command_is_the_one_of_its_quoted_figure():
    """The README quotes 88.9 % for mixed-precision HIL on digits, measured with SGD at lr 0.5
    (benchmarks/hil_digits.sh hil-mixed-sgd05); with the task's Adam 0.005 the same command reaches
    77 %. The command it gives must be the one of the figure it quotes."""
    assert "mixed precision 88.9 % with SGD at lr 0.5" in " ".join(README.read_text().split())
    (command,) = [c for c in readme_commands() if "--hil-scheme mixed" in c]
    assert "--task digits" in command and "--optimizer sgd --lr 0.5" in command


def test_readme_commands_run_at_toy_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    seen = set()
    for command in readme_commands():
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
