import json
import os

import pytest
import torch

from analog_snu import files
from analog_snu.errors import AnalogSNUError, CheckpointError
from analog_snu.experiments import checkpoint as ckpt
from analog_snu.experiments.checkpoint import (
    load_checkpoint,
    load_run,
    model_tensors,
    read_checkpoint,
    restore_model,
    restore_optimizer,
    save_checkpoint,
)
from analog_snu.models import ModelSpec, build_model
from analog_snu.pcm import preset
from analog_snu.tiles import crossbars
from analog_snu.training import make_optimizer

SPEC = ModelSpec(cell="snu", head="mean", input_size=6, layers=[5], output_size=3)


def trained(spec=SPEC):
    model = build_model(spec)
    optimizer = make_optimizer(model, "adam", lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(4, 3, 6)).square().sum().backward()
        optimizer.step()
    return model, optimizer


def equal_tensors(a, b):
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("device, training", [(None, "digital"), ("pcm", "hwa"), ("pcm", "pulsed"),
                                              ("pcm_joshi2020", "hwa")])
def test_round_trip_restores_weights_optimizer_and_spec(tmp_path, device, training):
    spec = SPEC.replace(device=None if device is None else preset(device), training=training, tile_kind=training)
    model, optimizer = trained(spec)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, spec, optimizer=optimizer, extra={"epoch": 3})
    loaded, loaded_spec, checkpoint = load_checkpoint(path)
    assert loaded_spec == spec
    assert checkpoint.meta["extra"] == {"epoch": 3}
    assert equal_tensors(model_tensors(model), model_tensors(loaded))
    x = torch.rand(4, 2, 6)
    if training == "digital":  # analog forwards are noisy; the digital one must match exactly
        model.eval()
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    fresh = make_optimizer(loaded, "adam", lr=0.01)
    restore_optimizer(fresh, checkpoint)
    saved_state = optimizer.state_dict()["state"]
    for index, entries in fresh.state_dict()["state"].items():
        assert torch.equal(entries["exp_avg"], saved_state[index]["exp_avg"])


def test_tied_weights_survive_a_round_trip(tmp_path):
    spec = ModelSpec(cell="ssnu", head="language", input_size=11, layers=[4], output_size=11, tie_weights=True)
    model = build_model(spec)
    save_checkpoint(tmp_path / "c.safetensors", model, spec)
    loaded, _, _ = load_checkpoint(tmp_path / "c.safetensors")
    assert loaded.decoder.weight is loaded.embedding.weight
    assert torch.equal(loaded.embedding.weight, model.embedding.weight)


def test_rng_state_is_saved(tmp_path):
    model, _ = trained()
    torch.manual_seed(7)
    save_checkpoint(tmp_path / "c.safetensors", model, SPEC)
    expected = torch.rand(3)
    torch.manual_seed(99)
    ckpt.restore_rng(read_checkpoint(tmp_path / "c.safetensors"))
    assert torch.equal(torch.rand(3), expected)


def test_file_is_safetensors_with_json_metadata_and_no_pickle(tmp_path):
    model, optimizer = trained()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, SPEC, optimizer=optimizer)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["analog_snu"])
    assert meta["spec"]["layers"] == [5]
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream


def test_crash_during_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    first, _ = trained()
    save_checkpoint(path, first, SPEC)
    before = path.read_bytes()
    second, _ = trained()

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, second, SPEC)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.safetensors"]  # no temp file left behind
    loaded, _, _ = load_checkpoint(path)
    assert equal_tensors(model_tensors(loaded), model_tensors(first))


def test_crash_mid_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    first, _ = trained()
    save_checkpoint(path, first, SPEC)
    before = path.read_bytes()

    def crash(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", crash)
    with pytest.raises(AnalogSNUError, match=r"cannot write .*c.safetensors: disk full"):
        save_checkpoint(path, trained()[0], SPEC)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


def test_checkpoint_of_another_config_is_refused(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "c.safetensors", model, SPEC)
    other = build_model(SPEC.replace(layers=[7]))
    with pytest.raises(CheckpointError, match=r"has shape \(5,\), the model expects \(7,\) \(a different config"):
        restore_model(other, read_checkpoint(tmp_path / "c.safetensors"))
    deeper = build_model(SPEC.replace(layers=[5, 5]))
    with pytest.raises(CheckpointError, match="does not match the model .*missing"):
        restore_model(deeper, read_checkpoint(tmp_path / "c.safetensors"))
    analog = build_model(SPEC.replace(device=preset("pcm"), training="hwa", tile_kind="hwa"))
    with pytest.raises(CheckpointError, match="a different config"):
        restore_model(analog, read_checkpoint(tmp_path / "c.safetensors"))


def test_unreadable_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        read_checkpoint(garbage)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="holds no analog_snu metadata"):
        read_checkpoint(foreign)
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"analog_snu": json.dumps({"format": "x", "version": 9})})
    with pytest.raises(CheckpointError, match="this analog_snu reads"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="holds no checkpoint.safetensors"):
        load_run(tmp_path)


def test_optimizer_and_rng_missing_are_reported(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "c.safetensors", model, SPEC, save_rng=False)
    checkpoint = read_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        restore_optimizer(make_optimizer(model, "adam", lr=0.1), checkpoint)
    with pytest.raises(CheckpointError, match="no RNG state"):
        ckpt.restore_rng(checkpoint)


def test_non_json_metadata_is_refused_before_writing(tmp_path):
    model, _ = trained()
    with pytest.raises(CheckpointError, match="cannot store object value"):
        save_checkpoint(tmp_path / "c.safetensors", model, SPEC, extra={"bad": object()})
    assert not (tmp_path / "c.safetensors").exists()


def test_pulsed_model_moves_to_inference_tiles_with_same_logical_weights(tmp_path):
    spec = SPEC.replace(device=preset("pcm"), training="pulsed", tile_kind="pulsed")
    model, _ = trained(spec)
    save_checkpoint(tmp_path / "c.safetensors", model, spec)
    moved, _, _ = load_checkpoint(tmp_path / "c.safetensors", tile_kind="inference")
    for (name, source), (_, target) in zip(model.named_analog_tiles(), moved.named_analog_tiles()):
        assert type(target).__name__ == "InferenceTile", name
        torch.testing.assert_close(target.get_weights()[0], source.get_weights()[0], rtol=1e-5, atol=1e-6)


def test_checkpoint_without_spec_and_foreign_optimizer(tmp_path):
    model, optimizer = trained()
    save_checkpoint(tmp_path / "c.safetensors", model, SPEC, optimizer=optimizer)
    checkpoint = read_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="a different config"):
        restore_optimizer(torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))]), checkpoint)
    del checkpoint.meta["spec"]
    with pytest.raises(CheckpointError, match="checkpoint holds no valid model spec"):
        checkpoint.spec  # noqa: B018


def test_checkpoint_of_a_drifted_model_loads(tmp_path):
    """aihwkit's global drift compensation stores its factor as a 0-d tensor (a fresh tile has (1,))."""
    from analog_snu.hardware import drift, program

    spec = SPEC.replace(device=preset("pcm_joshi2020"), training="hwa", tile_kind="hwa")
    model, _ = trained(spec)
    model.eval()
    program(model, seed=0)
    drift(model, 3600.0, seed=0)
    save_checkpoint(tmp_path / "c.safetensors", model, spec)
    fresh = build_model(spec)
    restore_model(fresh, read_checkpoint(tmp_path / "c.safetensors"))
    saved = model_tensors(model)
    restored = model_tensors(fresh)
    assert sorted(saved) == sorted(restored)
    for name in saved:
        assert torch.equal(saved[name].flatten(), restored[name].flatten()), name


def test_a_checkpoint_holding_non_finite_weights_is_refused(tmp_path):
    model, _ = trained()
    with torch.no_grad():
        model.readout.weight[0, 0] = float("nan")
    save_checkpoint(tmp_path / "c.safetensors", model, SPEC)  # a valid file (its SHA-256 matches) ...
    with pytest.raises(CheckpointError, match=r"holds non-finite values in 'model/readout.weight'"):
        read_checkpoint(tmp_path / "c.safetensors")  # ... that eval and --resume refuse


def test_training_states_keep_their_tensors_under_their_group_and_their_values_in_extra(tmp_path):
    model, _ = trained()
    feedback = {"readout": torch.rand(3, 5)}
    hardware = {"version": 2, "chip": {"time": 4.0}, "chip/a/g": torch.rand(2, 2), "weights/a": torch.rand(2)}
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, SPEC, extra={"epoch": 1}, states={"feedback": feedback, "hil": hardware})
    checkpoint = read_checkpoint(path)
    # the layout of every checkpoint written so far: tensors as <group>/<key>, other values in extra[<group>]
    assert {"feedback/readout", "hil/chip/a/g", "hil/weights/a"} <= set(checkpoint.tensors)
    assert checkpoint.meta["extra"] == {"epoch": 1, "hil": {"version": 2, "chip": {"time": 4.0}}}
    assert equal_tensors(checkpoint.state("feedback"), feedback)
    state = checkpoint.state("hil")
    assert {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)} == {"version": 2, "chip": {"time": 4.0}}
    assert equal_tensors({k: v for k, v in state.items() if isinstance(v, torch.Tensor)},
                         {k: v for k, v in hardware.items() if isinstance(v, torch.Tensor)})
    assert checkpoint.state("other") == {}


@pytest.mark.parametrize("group", ["model", "optim", "epoch"])
def test_a_training_state_may_not_take_a_group_of_the_checkpoint(tmp_path, group):
    model, _ = trained()
    with pytest.raises(CheckpointError, match=f"state group '{group}' collides"):
        save_checkpoint(tmp_path / "c.safetensors", model, SPEC, extra={"epoch": 1}, states={group: {}})
    assert not (tmp_path / "c.safetensors").exists()


def _without_tile_kind(path):
    """Write ``path`` again as analog_snu wrote it before specs had a ``tile_kind`` (same tensors, signed)."""
    from safetensors.torch import load as safetensors_load
    from safetensors.torch import save as safetensors_save

    data = path.read_bytes()
    tensors = safetensors_load(data)
    meta = read_checkpoint(path).meta
    del meta["spec"]["tile_kind"]
    meta_json = json.dumps(meta, sort_keys=True)
    path.write_bytes(safetensors_save(tensors, metadata={"analog_snu": meta_json,
                                                         "analog_snu_sha256": ckpt._checkpoint_digest(tensors, meta_json)}))


@pytest.mark.parametrize("device, training, kind", [(None, "digital", "digital"), ("pcm", "hwa", "hwa"),
                                                    ("pcm", "pulsed", "pulsed"), ("pcm_joshi2020", "hil", "inference")])
def test_checkpoints_written_before_tile_kinds_load_with_their_training_mode_s(tmp_path, device, training, kind):
    spec = SPEC.replace(device=None if device is None else preset(device), training=training, tile_kind=kind)
    model, _ = trained(spec)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, spec)
    _without_tile_kind(path)
    assert "tile_kind" not in read_checkpoint(path).meta["spec"]
    loaded, loaded_spec, _ = load_checkpoint(path)
    assert loaded_spec == spec and loaded_spec.tile_kind == kind
    assert equal_tensors(model_tensors(model), model_tensors(loaded))
    if device is not None:  # deployable on inference tiles as before
        moved, _, _ = load_checkpoint(path, tile_kind="inference")
        assert {bar.kind for bar in crossbars(moved)} == {"inference"}
