"""The checkpoint's SHA-256 covers its header metadata: an edited number is refused like a flipped bit.

The metadata drives what a run reports (history -> metrics.json, --select best), how it is
rebuilt (spec) and resumed (config, optimizer); each edit here is one a hand or a bad copy
could make, written back as a well-formed safetensors file.
"""

import hashlib
import json

import pytest
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from analog_snu.cli import main
from analog_snu.errors import CheckpointError
from analog_snu.experiments import build_config, evaluate_run, read_checkpoint, train_run
from analog_snu.experiments.checkpoint import _checkpoint_digest as checkpoint_digest
from analog_snu.experiments.checkpoint import tensor_digest

NAME = "checkpoint.safetensors"


def _header(data: bytes) -> dict:
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size])["__metadata__"]


def _rewrite(path, change):
    """Write ``path`` again with ``change(metadata) -> metadata`` applied to its header metadata."""
    data = path.read_bytes()
    path.write_bytes(safetensors_save(safetensors_load(data), metadata=change(dict(_header(data)))))


def _edit_meta(edit):
    def change(metadata):
        meta = json.loads(metadata["analog_snu"])
        edit(meta)
        return {**metadata, "analog_snu": json.dumps(meta, sort_keys=True)}
    return change


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("header") / "run"
    train_run(build_config(flags={"task": "digits", "layers": [4], "train-limit": 32, "epochs": 2}), run,
              progress=False)
    return run


@pytest.fixture
def run(trained, tmp_path):
    import shutil

    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _bump_third_decimal(value: float) -> float:
    """``value`` with its third decimal digit changed (2.338... -> 2.339...)."""
    text = repr(value)
    at = text.index(".") + 3
    return float(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:])


EDITS = {
    "one digit of a stored validation loss": lambda m: m["extra"]["history"][0].update(
        valid_loss=_bump_third_decimal(m["extra"]["history"][0]["valid_loss"])),
    "the epoch count": lambda m: m["extra"].update(epoch=1),
    "the spec's decay": lambda m: m["spec"].update(decay=0.5),
    "the stored config's learning rate": lambda m: m["extra"]["config"]["training"].update(lr=0.5),
    "an optimizer hyper-parameter": lambda m: m["optimizer"]["param_groups"][0].update(lr=0.5),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_header_is_refused_by_resume_and_eval(run, capsys, edit):
    _rewrite(run / NAME, _edit_meta(EDITS[edit]))
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited: its tensor data or metadata do not match"):
        read_checkpoint(run / NAME)
    for argv in (["eval", str(run)], ["train", "--resume", str(run), "--epochs", "3", "--quiet"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is corrupt or was edited" in err, err
    assert not (run / "eval").exists() or not any((run / "eval").iterdir())


def test_added_or_removed_header_keys_are_refused(run):
    _rewrite(run / NAME, lambda m: {**m, "note": "hello"})
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited"):
        read_checkpoint(run / NAME)
    _rewrite(run / NAME, lambda m: {"analog_snu": m["analog_snu"]})  # the digest dropped
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited"):
        read_checkpoint(run / NAME)


def test_even_a_reformatted_header_counts_as_an_edit(run):
    """The digest is over the metadata JSON as stored: even a whitespace change counts as an edit."""
    def reformat(metadata):
        return {**metadata, "analog_snu": json.dumps(json.loads(metadata["analog_snu"]), indent=1)}

    _rewrite(run / NAME, reformat)
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited"):
        read_checkpoint(run / NAME)


def test_an_untouched_rewrite_loads(run):
    _rewrite(run / NAME, lambda m: m)  # same tensors, same metadata, new file
    assert read_checkpoint(run / NAME).meta["version"] == 3
    assert evaluate_run(run)["epoch"] == 2


def _as_version_2(metadata):
    """What analog_snu wrote before the digest covered the metadata: SHA-256 of the tensors inside the JSON."""
    meta = json.loads(metadata["analog_snu"])
    meta["version"] = 2
    return meta


def test_version_2_checkpoints_still_load_and_resume_to_version_3(run):
    data = (run / NAME).read_bytes()
    tensors = safetensors_load(data)
    meta = _as_version_2(_header(data))
    meta["sha256"] = tensor_digest(tensors)
    (run / NAME).write_bytes(safetensors_save(tensors, metadata={"analog_snu": json.dumps(meta, sort_keys=True)}))
    assert read_checkpoint(run / NAME).meta["version"] == 2
    assert evaluate_run(run)["epoch"] == 2
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert read_checkpoint(run / NAME).meta["version"] == 3


def test_a_version_2_checkpoint_with_bad_tensors_or_an_unknown_version_is_refused(run, capsys):
    data = (run / NAME).read_bytes()
    tensors = safetensors_load(data)
    meta = _as_version_2(_header(data))
    meta["sha256"] = hashlib.sha256(b"other").hexdigest()
    (run / NAME).write_bytes(safetensors_save(tensors, metadata={"analog_snu": json.dumps(meta)}))
    with pytest.raises(CheckpointError, match=r"is corrupt or was edited"):
        read_checkpoint(run / NAME)
    meta["version"] = 4
    (run / NAME).write_bytes(safetensors_save(tensors, metadata={"analog_snu": json.dumps(meta)}))
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert "version 4; this analog_snu reads 'analog_snu.checkpoint' versions [2, 3]: evaluate or resume it with the " \
           "analog_snu that wrote it" in err


def test_a_checkpoint_whose_spec_has_no_tile_kind_loads_and_resumes_with_one(run):
    """Checkpoints written before the spec carried its tile kind: the kind is the training mode's."""
    data = (run / NAME).read_bytes()
    tensors = safetensors_load(data)
    meta = json.loads(_header(data)["analog_snu"])
    assert meta["spec"].pop("tile_kind") == "digital"
    meta_json = json.dumps(meta, sort_keys=True)
    (run / NAME).write_bytes(safetensors_save(tensors, metadata={
        "analog_snu": meta_json, "analog_snu_sha256": checkpoint_digest(tensors, meta_json)}))
    assert "tile_kind" not in read_checkpoint(run / NAME).meta["spec"]
    assert read_checkpoint(run / NAME).spec.tile_kind == "digital"
    assert evaluate_run(run)["epoch"] == 2
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert read_checkpoint(run / NAME).meta["spec"]["tile_kind"] == "digital"
