"""--out of report, drift-study and export-maps: never into a folder or over a file analog_snu did not
create (unless --force), never into another run (not even with --force)."""

import hashlib
import shutil

import pytest

from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.experiments import build_config, evaluate_run, train_run
from analog_snu.experiments.outputs import OUTPUT_MARKER
from analog_snu.experiments.report import write_report

DEVICE = ["--device", "pcm_joshi2020"]
#: command -> (argv before --out, how --out names the place: a folder, or a file in it)
COMMANDS = {
    "report": (["report", "{run}", "--quiet"], "{folder}"),
    "drift-study": (["drift-study", "{run}", *DEVICE, "--seeds", "0", "--times", "1", "--no-plot"], "{folder}"),
    "export-maps": (["export-maps", "{run}", *DEVICE, "--no-png"], "{folder}/maps.npz"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    for name in ("a", "b"):
        train_run(build_config(flags={"task": "digits", "layers": [4], "train-limit": 16, "epochs": 1}),
                  root / name, progress=False)
    return root


@pytest.fixture
def ws(runs, tmp_path):
    shutil.copytree(runs / "a", tmp_path / "a")
    shutil.copytree(runs / "b", tmp_path / "b")
    return tmp_path


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _argv(command, run, folder, *extra):
    head, out = COMMANDS[command]
    return [*(part.format(run=run) for part in head), "--out", out.format(folder=folder), *extra]


def _refused(capsys, argv, pattern):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and pattern in err, err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_users_folder_is_not_written_into_without_force(ws, capsys, command):
    mine = ws / "u"
    mine.mkdir()
    for name in ("index.html", "drift_study.csv", "maps.npz", "notes.txt"):
        (mine / name).write_text("mine")
    before = _digest(mine)
    _refused(capsys, _argv(command, ws / "a", mine), "was not created by analog_snu and is not empty")
    assert _digest(mine) == before
    assert main([str(a) for a in _argv(command, ws / "a", mine, "--force")]) == 0
    assert (mine / "notes.txt").read_text() == "mine" and not (mine / OUTPUT_MARKER).exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_one_run_never_writes_into_another(ws, capsys, command, force):
    before = _digest(ws / "b")
    for place in (ws / "b", ws / "b" / "eval", ws / "b" / "report", ws / "b" / "new"):
        _refused(capsys, _argv(command, ws / "a", place, *force), f"is inside the analog_snu directory {ws / 'b'}")
    assert _digest(ws / "b") == before
    assert evaluate_run(ws / "b")["epoch"] == 1  # run b still opens


def test_export_maps_over_a_run_file_is_refused(ws, capsys):
    for run, target in ((ws / "a", ws / "b" / "checkpoint.safetensors"), (ws / "a", ws / "a" / "checkpoint.safetensors"),
                        (ws / "a", ws / "a" / "final.json")):
        before = _digest(target.parent)
        _refused(capsys, ["export-maps", run, *DEVICE, "--out", target, "--no-png", "--force"],
                 "is inside the analog_snu directory")
        assert _digest(target.parent) == before
    assert evaluate_run(ws / "a")["epoch"] == 1 and evaluate_run(ws / "b")["epoch"] == 1


def test_a_link_to_another_run_is_seen_through(ws, capsys):
    (ws / "link").symlink_to(ws / "b")
    _refused(capsys, _argv("report", ws / "a", ws / "link", "--force"), "is inside the analog_snu directory")
    assert not (ws / "b" / "index.html").exists()


def test_inside_the_runs_own_result_folder_is_allowed_elsewhere_in_it_not(ws, capsys):
    assert main(["report", str(ws / "a"), "--out", str(ws / "a" / "report" / "v2"), "--quiet"]) == 0
    assert (ws / "a" / "report" / "v2" / "index.html").is_file()
    _refused(capsys, ["report", ws / "a", "--out", ws / "a" / "report2", "--quiet"], "is inside the analog_snu directory")
    _refused(capsys, ["report", ws / "a", "--out", ws / "a" / "eval", "--quiet"], "is inside the analog_snu directory")
    assert evaluate_run(ws / "a")["epoch"] == 1  # no foreign file appeared in the run


def test_a_folder_analog_snu_made_takes_more_results_until_a_foreign_file_appears(ws, capsys):
    out = ws / "results" / "r"
    assert main(["report", str(ws / "a"), "--out", str(out), "--quiet"]) == 0
    assert main(["report", str(ws / "b"), "--out", str(out), "--quiet"]) == 0  # same names: its own files
    assert main(["drift-study", str(ws / "a"), *DEVICE, "--seeds", "0", "--times", "1", "--no-plot", "--out",
                 str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {OUTPUT_MARKER, "index.html", "drift_study.json"}
    (out / "index.html").write_text("edited by hand")  # a file of analog_snu's, changed: still its name
    assert main(["report", str(ws / "a"), "--out", str(out), "--quiet"]) == 0
    (out / "mine.txt").write_text("mine")
    _refused(capsys, ["report", ws / "a", "--out", out, "--quiet"], "holds files analog_snu did not write (mine.txt)")
    assert main(["report", str(ws / "a"), "--out", str(out), "--quiet", "--force"]) == 0
    assert (out / "mine.txt").read_text() == "mine"


def test_a_file_where_the_folder_should_be_and_the_python_api(ws):
    (ws / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out folder .*file exists and is not a folder"):
        write_report(ws / "a", ws / "file")
    with pytest.raises(ConfigError, match=r"is inside the analog_snu directory"):
        write_report(ws / "a", ws / "b", force=True)
    assert write_report(ws / "a", ws / "new").html.is_file()


def test_inside_a_sweep_directory_is_refused(ws, capsys):
    sweep = ws / "sweep"
    sweep.mkdir()
    (sweep / ".analog_snu-sweep").write_text("{}")
    _refused(capsys, _argv("report", ws / "a", sweep / "plots", "--force"), f"is inside the analog_snu directory {sweep}")


@pytest.mark.parametrize("marker", ["{", '{"format": "other", "files": []}', '{"format": "analog_snu.output", "files": [1]}'])
def test_a_damaged_output_marker_is_not_taken_as_ownership(ws, marker):
    out = ws / "r"
    out.mkdir()
    (out / OUTPUT_MARKER).write_text(marker)
    (out / "index.html").write_text("whose?")
    with pytest.raises(ConfigError, match=r"(output marker .* is not valid JSON|is not an analog_snu output marker)"
                                          r".*pass --force to write into"):
        write_report(ws / "a", out)
    assert (out / "index.html").read_text() == "whose?"
