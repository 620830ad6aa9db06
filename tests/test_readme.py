"""The README's shell commands run as written (at toy size), so they cannot go stale."""

import re
import shlex
from pathlib import Path

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


def test_readme_commands_run_at_toy_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    device_file = tmp_path / "my_pcm.toml"
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
        if "my_pcm.toml" in argv and not device_file.exists():
            from analog_snu.device_models import preset

            preset("pcm_joshi2020").save(device_file)
        assert main(argv) == 0, f"{command}\n{capsys.readouterr().err}"
