"""A result folder inside a run that is a symbolic link is refused, never followed (nothing lands outside the run)."""

import shutil

import pytest

from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.experiments import build_config, train_run
from analog_snu.experiments.run_dir import RUN_FOLDERS, result_folder

COMMANDS = {
    "eval": ["eval", "{run}"],
    "eval on a device": ["eval", "{run}", "--device", "pcm_joshi2020", "--drift-times", "60"],
    "drift-study": ["drift-study", "{run}", "--device", "pcm_joshi2020", "--seeds", "0", "--times", "1", "--no-plot"],
    "export-maps": ["export-maps", "{run}", "--device", "pcm_joshi2020", "--no-png"],
    "report": ["report", "{run}", "--quiet"],
    "train --resume": ["train", "--resume", "{run}", "--epochs", "2", "--quiet"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("links") / "run"
    train_run(build_config(flags={"task": "digits", "layers": [4], "train-limit": 16, "epochs": 1}), run,
              progress=False)
    return run


@pytest.mark.parametrize("folder", RUN_FOLDERS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_linked_result_folder(trained, tmp_path, capsys, folder, command):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    shutil.copytree(trained, run)
    elsewhere.mkdir()
    if (run / folder).exists():
        shutil.rmtree(run / folder)
    (run / folder).symlink_to(elsewhere, target_is_directory=True)
    argv = [part.format(run=run) for part in COMMANDS[command]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / folder} is a symbolic link; analog_snu does not follow links" in err, err
    assert list(elsewhere.iterdir()) == []


def test_a_link_deeper_inside_a_result_folder_is_refused_too(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    (run / "drift_study").mkdir(parents=True)
    elsewhere.mkdir()
    (run / "drift_study" / "label").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match=r"drift_study/label is a symbolic link"):
        result_folder(run, "drift_study", "label")
    (run / "weight_maps").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match=r"weight_maps exists and is not a directory"):
        result_folder(run, "weight_maps", "x")
    assert result_folder(run, "eval").is_dir() and not (run / "eval").is_symlink()


def test_a_dangling_link_is_refused_and_not_created_through(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    (run / "eval").symlink_to(tmp_path / "not_yet")
    assert main(["eval", str(run)]) == 2
    assert not (tmp_path / "not_yet").exists()
    assert "is a symbolic link" in capsys.readouterr().err
