"""Weight-map export/import: bit-identical round trip, safe loading, clear refusals."""

import hashlib
import io
import json
import time
import zipfile

import numpy as np
import pytest
import torch

from analog_snu import SNUNetwork, drift, export_weight_maps, import_weight_maps, program
from analog_snu.data.cache import load_npz
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.hardware import programmed_states
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config

TILE = "layers.0.weight_ih.analog_module"


def _net(mode="inference", name="pcm_aged_lowyield", sizes=(8, 6, 3)):
    device = preset(name)
    if mode == "pulsed":  # aihwkit's C++ tiles draw output noise from their own, unseedable RNG
        device = device.updated({"periphery": {"out_noise": 0.0}})
    torch.manual_seed(0)
    return SNUNetwork(list(sizes), rpu_config=device_rpu_config(device, mode))


def _eval(net):
    x = torch.bernoulli(torch.full((5, 4, net.sizes[0]), 0.4), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)  # same forward noise
    net.eval()
    return net(x)


def _programmed(mode="inference"):
    net = _net(mode)
    program(net, seed=2)
    drift(net, 86_400.0)
    return net


def _snapshot(net):
    return [tile.tile.get_weights().clone() for tile in net.analog_tiles()]


@pytest.mark.parametrize("mode", ["inference", "pulsed"])
def test_round_trip_is_bit_identical(tmp_path, mode):
    net = _programmed(mode)
    expected = _eval(net)
    written = export_weight_maps(net, tmp_path / "maps.npz", png=False)
    fresh = _net(mode)  # same trained weights, not programmed
    assert not torch.equal(_eval(fresh), expected)
    import_weight_maps(fresh, written["npz"])
    assert all(torch.equal(a, b) for a, b in zip(_snapshot(fresh), _snapshot(net)))
    assert torch.equal(_eval(fresh), expected)
    # the restored state drifts on like the original
    drift(net, 3.0e7, seed=1), drift(fresh, 3.0e7, seed=1)
    assert torch.equal(_eval(fresh), _eval(net))


def test_files_contents(tmp_path):
    net = _programmed()
    written = export_weight_maps(net, tmp_path / "maps", csv=True, png=True)
    assert written["npz"] == tmp_path / "maps.npz"
    with np.load(written["npz"], allow_pickle=False) as data:
        for key in ("weights_target", "weights_programmed", "weights_now", "g_plus", "g_minus",
                    "g_plus_target", "g_minus_programmed", "nu", "stuck", "g_max_device"):
            assert f"{TILE}/{key}" in data.files
        g_plus, g_minus = data[f"{TILE}/g_plus"], data[f"{TILE}/g_minus"]
        assert g_plus.shape == (1, 6, 8) and (g_plus >= 0).all() and (g_minus >= 0).all()
        # weights_now = (G+ - G-) / scale for one pair
        scale = float(data[f"{TILE}/scale_ratio"])
        np.testing.assert_allclose((g_plus - g_minus)[0] / scale, data[f"{TILE}/weights_now"], rtol=1e-5, atol=1e-6)
        assert set(np.unique(data[f"{TILE}/stuck"])) <= {0, 1, 2}
    meta = json.loads(written["json"].read_text())
    assert meta["format"] == "analog_snu.weight_maps" and meta["time_since_programming_s"] == 86_400.0
    assert meta["program_seed"] == 2 and meta["device"]["name"] == "pcm_aged_lowyield"
    assert meta["package_version"] and [t["name"] for t in meta["tiles"]] == [TILE, "readout.analog_module"]
    csv_lines = written["csv"][0].read_text().splitlines()
    assert len(csv_lines) == 1 + 6 * 8 and csv_lines[0].startswith("tile,pair,row,col,w_target")
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in written["png"])


def test_corrupt_file_rejected_and_model_untouched(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    raw = bytearray(written["npz"].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    written["npz"].write_bytes(bytes(raw))
    target = _net()
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match="are corrupt: SHA-256 differs"):
        import_weight_maps(target, written["npz"])
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(target)))


def test_truncated_npz_with_matching_checksum_rejected(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    written["npz"].write_bytes(b"PK\x03\x04 not a zip")
    meta = json.loads(written["json"].read_text())
    meta["npz_sha256"] = hashlib.sha256(b"PK\x03\x04 not a zip").hexdigest()
    written["json"].write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="are corrupt"):
        import_weight_maps(_net(), written["npz"])


def test_sidecar_problems_rejected(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    written["json"].write_text("{not json")
    with pytest.raises(CheckpointError, match="sidecar .* is not valid JSON: .*corrupt sidecar"):
        import_weight_maps(_net(), written["npz"])
    written["json"].write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="is not an analog_snu weight-map sidecar"):
        import_weight_maps(_net(), written["npz"])
    written["json"].unlink()
    with pytest.raises(CheckpointError, match="sidecar .* is missing"):
        import_weight_maps(_net(), written["npz"])


def test_mismatched_shapes_rejected_and_model_untouched(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    other = _net(sizes=(8, 7, 3))
    before = _snapshot(other)
    with pytest.raises(CheckpointError, match=r"weight maps have shape \(6, 8\), the model \(7, 8\)"):
        import_weight_maps(other, written["npz"])
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(other)))
    with pytest.raises(CheckpointError, match="weight maps hold tiles"):
        import_weight_maps(_net(sizes=(8, 6, 5, 3)), written["npz"])


def test_mismatched_device_config_rejected(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    with pytest.raises(CheckpointError, match="programmed with device 'pcm_aged_lowyield'.*uses device 'pcm_joshi2020'"):
        import_weight_maps(_net(name="pcm_joshi2020"), written["npz"])


def test_failed_export_overwrites_nothing(tmp_path):
    old = {tmp_path / "maps.npz": b"old npz", tmp_path / "maps.json": b"old json"}
    for path, data in old.items():
        path.write_bytes(data)
    with pytest.raises(ConfigError, match="is not programmed; call analog_snu.program"):
        export_weight_maps(_net(), tmp_path / "maps.npz", png=False)
    assert all(path.read_bytes() == data for path, data in old.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.json", "maps.npz"]  # no temporary files left
    with pytest.raises(ConfigError, match="output folder .* does not exist"):
        export_weight_maps(_programmed(), tmp_path / "missing" / "maps.npz", png=False)
    with pytest.raises(ConfigError, match="the model has no analog tiles"):
        export_weight_maps(SNUNetwork([4, 3, 2]), tmp_path / "maps.npz", png=False)


# --- issue 10 items 7 and 9: bounded reading, physical ranges, times -------------------------------


def _rewrite(written, arrays=None, meta_changes=None, npz_bytes=None):
    """Rewrite the exported files with changed arrays / sidecar fields and a matching checksum."""
    if npz_bytes is None:
        with np.load(written["npz"], allow_pickle=False) as data:
            content = {key: data[key] for key in data.files}
        for key, change in (arrays or {}).items():
            content[f"{TILE}/{key}"] = change(content[f"{TILE}/{key}"].copy())
        buffer = io.BytesIO()
        np.savez(buffer, **content)
        npz_bytes = buffer.getvalue()
    written["npz"].write_bytes(npz_bytes)
    meta = json.loads(written["json"].read_text())
    meta["npz_sha256"] = hashlib.sha256(npz_bytes).hexdigest()
    for key, value in (meta_changes or {}).items():
        meta["tiles"][0][key] = value
    written["json"].write_text(json.dumps(meta))  # allow_nan: a hostile file may hold NaN


def _set(index, value):
    def change(array):
        array[index] = value
        return array
    return change


@pytest.mark.parametrize(
    ("arrays", "meta", "match"),
    [
        ({"g_plus": _set((0, 0, 0), -1.0)}, {},
         rf"'{TILE}/g_plus' holds 1 value\(s\) < 0 \(min -1\); conductances \(µS\) must be >= 0"),
        ({"g_minus_programmed": _set((0, 1, 2), -0.5)}, {}, r"g_minus_programmed' holds 1 value\(s\) < 0"),
        ({"g_plus_target": _set((0, 0, 0), np.nan)}, {}, r"g_plus_target' holds NaN or inf"),
        ({"nu": _set((0, 0, 0, 0), -0.3)}, {}, r"/nu' holds 1 value\(s\) < 0 \(min -0\.3\); drift exponents must be >= 0"),
        ({"nu": _set((0, 1, 0, 0), np.inf)}, {}, r"/nu' holds NaN or inf"),
        ({"g_max_device": _set((0, 0, 0, 0), 0.0)}, {}, r"g_max_device' holds 1 value\(s\) <= 0 .*must be > 0"),
        ({"scale_ratio": lambda a: -a}, {}, r"scale_ratio' holds 1 value\(s\) <= 0"),
        ({"stuck": _set((0, 0, 0, 0), 3)}, {}, r"stuck holds flags other than 0, 1, 2"),
        ({"stuck": _set((0, 0, 0, 0), -1)}, {}, r"stuck holds flags other than 0, 1, 2"),
        ({}, {"time_since_programming_s": -5.0}, r"time_since_programming_s must be a finite number >= 0, got -5\.0"),
        ({}, {"time_since_programming_s": float("nan")}, r"maps\.json is not valid JSON: NaN is not a JSON number"),
        ({}, {"time_since_programming_s": "86400"}, r"time_since_programming_s must be a finite number >= 0, got '86400'"),
        ({}, {"program_seed": -2}, r"program_seed must be an int >= 0 or null, got -2"),
        ({}, {"drift_seed": 1.5}, r"drift_seed must be an int >= 0 or null, got 1\.5"),
    ],
)
def test_physically_impossible_values_are_refused_and_model_unchanged(tmp_path, arrays, meta, match):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    _rewrite(written, arrays, meta)
    target = _net()
    program(target, seed=5)
    before, states = _snapshot(target), {k: v.g_now.clone() for k, v in programmed_states(target).items()}
    with pytest.raises(CheckpointError, match=match):
        import_weight_maps(target, written["npz"])
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(target)))
    assert all(torch.equal(states[k], v.g_now) for k, v in programmed_states(target).items())


def test_unbounded_programming_polynomial_in_the_sidecar_is_refused(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    device = json.loads(written["json"].read_text())["tiles"][0]["device"]
    device["programming"]["coeffs"] = [1e308, 1e308]
    _rewrite(written, meta_changes={"device": device})
    with pytest.raises(CheckpointError, match=r"device config is invalid: programming\.coeffs\[0\]: Input should be less than or equal to 1000"):
        import_weight_maps(_net(), written["npz"])


def test_zip_bomb_weight_maps_are_refused_before_inflating(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (4 << 20,)})
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(f"{TILE}/g_plus.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            for _ in range(32):
                member.write(bytes(1 << 20))  # 32 MiB of zeros
    assert len(bomb.getvalue()) < 100_000
    _rewrite(written, npz_bytes=bomb.getvalue())
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"too large: .*member '.*g_plus\.npy' declares \d+ bytes uncompressed .*max_bytes=1000000"):
        import_weight_maps(_net(), written["npz"], max_bytes=1_000_000)
    assert time.perf_counter() - start < 2.0
    with pytest.raises(CheckpointError, match=r"have \d+ bytes, more than max_bytes=1000"):
        import_weight_maps(_net(), written["npz"], max_bytes=1_000)


@pytest.mark.parametrize("bad, problem", [(-5, "a finite time >= 0"), (-1e-9, "a finite time >= 0"),
                                          (float("nan"), "a finite time >= 0"), (float("inf"), "a finite time >= 0"),
                                          ("-1d", "a finite time >= 0"), (True, "a time such as 1s, 1h, 1d, 1y"),
                                          ("60m", "a time such as 1s, 1h, 1d, 1y")])
def test_export_refuses_impossible_times(tmp_path, bad, problem):
    net = _programmed()
    with pytest.raises(ConfigError, match=rf"time must be {problem}.*, got "):
        export_weight_maps(net, tmp_path / "maps.npz", time=bad, png=False)
    assert not (tmp_path / "maps.npz").exists()
    with pytest.raises(ConfigError, match=rf"t_seconds must be {problem}"):
        drift(net, bad)


def test_export_at_a_time_drifts_there_first(tmp_path):
    net = _net()
    program(net, seed=2)
    written = export_weight_maps(net, tmp_path / "maps.npz", time=86_400.0, png=False)
    meta = json.loads(written["json"].read_text())
    assert meta["time_since_programming_s"] == 86_400.0
    reference = _net()
    program(reference, seed=2)
    drift(reference, 86_400.0)  # same derived drift seed
    with np.load(written["npz"], allow_pickle=False) as data:
        np.testing.assert_array_equal(data[f"{TILE}/g_plus"], programmed_states(reference)[TILE].g_now[:, 0].numpy())
    # already at that time: exported as is, no second read-noise draw
    again = export_weight_maps(net, tmp_path / "again.npz", time=86_400.0, png=False)
    first, second = load_npz(written["npz"]), load_npz(again["npz"])
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    fresh = _net()
    program(fresh, seed=2)
    at_zero = export_weight_maps(fresh, tmp_path / "zero.npz", time=0, png=False)
    assert json.loads(at_zero["json"].read_text())["time_since_programming_s"] == 0.0


# --- the sidecar's file-level fields and the archive's members are checked too ----------------------


def _top_level(written, **changes):
    meta = json.loads(written["json"].read_text())
    meta.update(changes)
    written["json"].write_text(json.dumps(meta))


def _with_member(name, value):
    def add(content):
        return {**content, name: value}
    return add


@pytest.mark.parametrize(("change", "match"), [
    (lambda w: _top_level(w, time_since_programming_s=-3600.0),
     r"weight-map sidecar: time_since_programming_s must be a finite number >= 0, got -3600\.0"),
    (lambda w: _top_level(w, time_since_programming_s=-1e-300), r"must be a finite number >= 0, got -1e-300"),
    (lambda w: _rewrite(w, meta_changes={"time_since_programming_s": -0.0}), r"got -0\.0"),
    (lambda w: _top_level(w, program_seed=-1), r"weight-map sidecar: program_seed must be an int >= 0"),
    (lambda w: _top_level(w, time_since_programming_s=60.0), r"differ from tile .*'s"),
    (lambda w: _rewrite_members(w, _with_member("extra", np.zeros(3))), r"hold array\(s\) \['extra'\] that no export"),
    (lambda w: _rewrite_members(w, _with_member(f"{TILE}/g_secret", np.zeros((2, 2)))), r"g_secret'\] that no export"),
    (lambda w: _rewrite_members(w, _with_member("other.analog_module/nu", np.zeros(1))), r"other\.analog_module/nu"),
])
def test_file_level_fields_and_unknown_members_are_refused(tmp_path, change, match):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    change(written)
    target = _net()
    program(target, seed=5)
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match=match):
        import_weight_maps(target, written["npz"])
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(target)))


def _rewrite_members(written, change):
    with np.load(written["npz"], allow_pickle=False) as data:
        content = change({key: data[key] for key in data.files})
    buffer = io.BytesIO()
    np.savez(buffer, **content)
    _rewrite(written, npz_bytes=buffer.getvalue())


def test_wear_members_of_a_hil_export_are_known(tmp_path):
    written = export_weight_maps(_programmed(), tmp_path / "maps.npz", png=False)
    shape = np.load(written["npz"])[f"{TILE}/nu"].shape
    _rewrite_members(written, _with_member(f"{TILE}/programming_events", np.ones(shape, dtype=np.int64)))
    import_weight_maps(_net(), written["npz"])  # a counter of device wear is data of the file, not a stranger
