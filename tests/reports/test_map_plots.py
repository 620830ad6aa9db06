"""Weight-map figures: tiles put back at the layer's global indices, user-facing layer names, >= 150 dpi."""

import io

import numpy as np
import pytest
from PIL import Image

from analog_snu.errors import CheckpointError
from analog_snu.hardware.layer_maps import layers_from_maps, tile_grid_index, tile_offsets
from analog_snu.reports import map_plots
from analog_snu.reports.figures import PLOT_DPI
from analog_snu.reports.map_plots import layer_figures
from analog_snu.tiles import device_rpu_config

LAYER = "layers.0.weight_ih"
DEVICE = {"name": "pcm_test", "conductance": {"g_max": 25.0}}


def _tile(name, shape, layer=LAYER):
    return {"name": name, "layer": layer, "shape": list(shape), "device": DEVICE, "time_since_programming_s": 3600.0}


def test_tile_grid_index():
    assert tile_grid_index(f"{LAYER}.analog_module.array.1.0") == (1, 0)
    assert tile_grid_index(f"{LAYER}.analog_module.array.12.3") == (12, 3)
    assert tile_grid_index("readout.analog_module") is None


def test_offsets_of_a_784_input_layer_split_over_two_tiles():
    """aihwkit splits 784 inputs into two blocks of 392: the second starts at column 392."""
    tiles = [_tile(f"{LAYER}.analog_module.array.0.0", (16, 392)), _tile(f"{LAYER}.analog_module.array.1.0", (16, 392)),
             _tile("readout.analog_module", (10, 16), layer="readout")]
    assert tile_offsets(tiles) == {
        f"{LAYER}.analog_module.array.0.0": (0, 0),
        f"{LAYER}.analog_module.array.1.0": (0, 392),
        "readout.analog_module": (0, 0),
    }


def test_offsets_of_a_two_by_two_grid_with_unequal_blocks():
    # array.<input block>.<output block>: inputs 5 + 4 = 9, outputs 3 + 2 = 5
    sizes_in, sizes_out = (5, 4), (3, 2)
    tiles = [_tile(f"{LAYER}.analog_module.array.{i}.{j}", (sizes_out[j], sizes_in[i])) for i in range(2) for j in range(2)]
    offsets = tile_offsets(tiles)
    assert offsets[f"{LAYER}.analog_module.array.0.0"] == (0, 0)
    assert offsets[f"{LAYER}.analog_module.array.0.1"] == (3, 0)
    assert offsets[f"{LAYER}.analog_module.array.1.0"] == (0, 5)
    assert offsets[f"{LAYER}.analog_module.array.1.1"] == (3, 5)


def test_offsets_refuse_unplaceable_tiles():
    with pytest.raises(CheckpointError, match=r"layer 'layers.0.weight_ih' has several tiles .* not an aihwkit tile array"):
        tile_offsets([_tile("a.tile", (2, 2)), _tile("b.tile", (2, 2))])
    with pytest.raises(CheckpointError, match=r"tiles of input block 0 differ in size \(3 vs 4\)"):
        tile_offsets([_tile(f"{LAYER}.array.0.0", (2, 3)), _tile(f"{LAYER}.array.0.1", (2, 4))])


def _maps_files(rows=6, cols=(7, 7), pairs=1, wear=False, seed=0):
    """Sidecar meta and npz arrays of one layer split along its inputs, from a known global layer."""
    rng = np.random.default_rng(seed)
    total = sum(cols)
    full = {
        "weights_target": rng.normal(size=(rows, total)).astype(np.float32),
        "g_plus": rng.uniform(0, 25, size=(pairs, rows, total)),
        "g_minus": rng.uniform(0, 25, size=(pairs, rows, total)),
        "nu": rng.uniform(0.02, 0.08, size=(pairs, 2, rows, total)),
        "stuck": np.zeros((pairs, 2, rows, total), dtype=np.int8),
    }
    full["weights_programmed"] = full["weights_target"] + np.float32(0.01)
    full["weights_now"] = full["weights_target"] * np.float32(0.9)
    full["stuck"][0, 0, 1, cols[0]] = 1   # first column of the second tile, G+: stuck at g_max
    full["stuck"][0, 1, 2, 3] = 2         # in the first tile, G-: stuck at 0
    full["stuck"][0, 0, 0, 0] = 1
    full["stuck"][0, 0, 5, total - 1] = 1
    if wear:
        full["programming_events"] = rng.integers(0, 9, size=(pairs, 2, rows, total)).astype(np.int64)
    tiles, arrays, start = [], {}, 0
    for index, width in enumerate(cols):
        name = f"{LAYER}.analog_module.array.{index}.0"
        tiles.append(_tile(name, (rows, width)))
        for key, value in full.items():
            arrays[f"{name}/{key}"] = value[..., start:start + width]
        start += width
    tiles.append(_tile("readout.analog_module", (3, rows), layer="readout"))
    for key, value in full.items():
        arrays[f"readout.analog_module/{key}"] = value[..., :3, :rows]
    return {"tiles": tiles}, arrays, full


def test_layers_are_assembled_at_global_indices():
    meta, arrays, full = _maps_files(cols=(392, 392))
    layers = layers_from_maps(meta, arrays)
    assert [layer.layer for layer in layers] == [LAYER, "readout"]
    first = layers[0]
    assert first.shape == (6, 784) and first.pairs == 1
    assert first.device == "pcm_test" and first.g_max == 25.0 and first.t_now == 3600.0
    for key in ("weights_target", "weights_programmed", "weights_now", "g_plus", "g_minus", "nu", "stuck"):
        np.testing.assert_array_equal(getattr(first, key), full[key])
    assert first.tile_starts == ([0], [0, 392])
    assert first.wear == {}


def test_heatmaps_use_global_columns_and_layer_names(monkeypatch):
    meta, arrays, _ = _maps_files(cols=(392, 392))
    (layer, _readout) = layers_from_maps(meta, arrays)
    figures = []
    monkeypatch.setattr(map_plots, "figure_png", lambda fig, dpi=PLOT_DPI: figures.append(fig) or b"")
    map_plots.conductance_maps_png(layer)
    fig = figures[0]
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 2
    for ax in heatmaps:
        assert ax.get_xlabel() == "input index (column 0-783)"
        assert ax.get_ylabel() == "output index (row 0-5)"
        assert ax.images[0].get_extent() == [-0.5, 783.5, 5.5, -0.5]
        assert ax.images[0].get_array().shape == (6, 784)
        # the tile border is drawn where the second tile starts
        assert [line.get_xdata()[0] for line in ax.lines] == [391.5]
    text = fig.get_suptitle() + " ".join(ax.get_title() for ax in fig.axes)
    assert LAYER in text and "analog_module" not in text and "array" not in text


def test_stuck_map_counts(monkeypatch):
    meta, arrays, _ = _maps_files(cols=(7, 7))
    layer = layers_from_maps(meta, arrays)[0]
    figures = []
    monkeypatch.setattr(map_plots, "figure_png", lambda fig, dpi=PLOT_DPI: figures.append(fig) or b"")
    map_plots.stuck_map_png(layer)
    ax = [ax for ax in figures[0].axes if ax.images][0]
    assert "3 at g_max, 1 at 0 µS of 168 (2.38 %)" in ax.get_title()
    per_weight = ax.images[0].get_array()
    assert per_weight[1, 7] == 1 and per_weight[2, 3] == 1 and per_weight.sum() == 4


def test_every_layer_figure_is_a_png_at_150_dpi_or_more():
    meta, arrays, _ = _maps_files(wear=True)
    layer = layers_from_maps(meta, arrays)[0]
    assert set(layer.wear) == {"programming_events"}
    figures = layer_figures(layer)
    assert list(figures) == ["conductance", "weights", "histograms", "stuck", "wear"]
    for png in figures.values():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        assert image.info["dpi"][0] == pytest.approx(PLOT_DPI, abs=0.5)
    assert "wear" not in layer_figures(layers_from_maps(*_maps_files()[:2])[0], dpi=200)


def test_missing_or_misshapen_arrays_are_refused():
    meta, arrays, _ = _maps_files()
    del arrays[f"{LAYER}.analog_module.array.1.0/nu"]
    with pytest.raises(CheckpointError, match=r"weight maps lack array 'layers.0.weight_ih.analog_module.array.1.0/nu'"):
        layers_from_maps(meta, arrays)
    meta, arrays, _ = _maps_files()
    arrays[f"{LAYER}.analog_module.array.0.0/g_plus"] = np.zeros((1, 6, 5))
    with pytest.raises(CheckpointError, match=r"array.0.0/g_plus' has shape \(1, 6, 5\), expected \(\.\.\., 6, 7\)"):
        layers_from_maps(meta, arrays)


# --- what the figures show ------------------------------------------------------------------------


def _captured(monkeypatch):
    figures = []
    monkeypatch.setattr(map_plots, "figure_png", lambda fig, dpi=PLOT_DPI: figures.append(fig) or b"")
    return figures


@pytest.mark.parametrize("kind", ["hwa", "pulsed"])
def test_network_weights_of_the_maps_are_what_the_network_computes_with(kind, tmp_path):
    """The maps' weights in network units (tile weights x periphery scales x drift compensation) equal
    the layer's effective weights, measured by a forward pass of unit vectors through the drifted tile."""
    import json

    import torch

    from analog_snu import SNUNetwork
    from analog_snu.hardware import drift, program
    from analog_snu.pcm import preset
    from analog_snu.reports import export_weight_maps

    device = preset("pcm_joshi2020").updated({"read_noise": {"enabled": False}, "periphery": {"enabled": False}})
    torch.manual_seed(0)
    net = SNUNetwork([12, 8, 5], rpu_config=device_rpu_config(device, kind))
    for module in net.modules():  # learned output scales that are not 1, as after training
        if getattr(module, "out_scaling_alpha", None) is not None:
            with torch.no_grad():
                module.out_scaling_alpha.mul_(1.7)
    net.eval()
    program(net, seed=0)
    drift(net, "1y")
    written = export_weight_maps(net, tmp_path / "maps.npz", png=False)
    with np.load(written["npz"], allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(written["json"].read_text())
    layers = {maps.layer: maps for maps in layers_from_maps(meta, arrays)}
    assert {maps.compensation for maps in layers.values()} == {"global"}
    tile_units_differ = []
    for name, module in (("layers.0.weight_ih", net.layers[0].weight_ih), ("readout", net.readout)):
        eye = torch.eye(module.in_features)
        with torch.no_grad():
            effective = (module(eye) - module(torch.zeros_like(eye))).T.double().numpy()
        maps = layers[name]
        np.testing.assert_allclose(maps.network["now"], effective, atol=1e-6)
        tile_units_differ.append(np.abs(maps.weights_now - effective).max() > 0.01)
        # compensation brings the drifted weights back to the trained scale: the error stays near the
        # programming error, far below that of the same weights without compensation
        (tile,) = [t["name"] for t in meta["tiles"] if t["layer"] == name]
        uncompensated = maps.weights_now * arrays[f"{tile}/network_scale_programmed"].reshape(-1, 1)
        rms = {key: float(np.sqrt(np.mean((maps.network[key] - maps.network["target"]) ** 2)))
               for key in ("programmed", "now")}
        assert rms["now"] < 3 * rms["programmed"]
        assert rms["now"] < 0.5 * float(np.sqrt(np.mean((uncompensated - maps.network["target"]) ** 2)))
    assert any(tile_units_differ)  # tile units are not what the network computes with


def test_weight_scatter_is_in_network_units_with_the_compensation(monkeypatch):
    meta, arrays, full = _maps_files(cols=(7, 7))
    for tile in meta["tiles"]:
        tile["device"] = {**DEVICE, "periphery": {"drift_compensation": "global"}}
        rows = tile["shape"][0]
        arrays[f"{tile['name']}/network_scale_programmed"] = np.full(rows, 2.0)
        arrays[f"{tile['name']}/network_scale_now"] = np.full(rows, 2.0 / 0.9)  # compensation undoes the 0.9
    layer = layers_from_maps(meta, arrays)[0]
    np.testing.assert_allclose(layer.network["target"], 2 * full["weights_target"])
    np.testing.assert_allclose(layer.network["now"], 2 * full["weights_target"], rtol=1e-6)
    figures = _captured(monkeypatch)
    map_plots.weight_scatter_png(layer)
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "trained weight (the layer's W)"
    assert ax.get_ylabel() == "weight the network computes with (closer to the line is better)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("as programmed: RMS error 0.02 (")  # 2 x the 0.01 offset, in network units
    assert legend[1].startswith("at 1h, global drift compensation: RMS error ")
    assert float(legend[1].split("RMS error ")[1].split()[0]) < 1e-5
    assert "tile units" not in ax.get_xlabel() + ax.get_ylabel()


def test_wear_shows_only_counters_in_use_per_weight_in_title_and_colour_bar(monkeypatch):
    meta, arrays, full = _maps_files(cols=(7, 7), wear=True)
    for tile in meta["tiles"]:  # a reprogramming run: its chip counted no SET pulses and no refreshes
        rows, cols = tile["shape"]
        arrays[f"{tile['name']}/set_pulses"] = np.zeros((1, 2, rows, cols), dtype=np.int64)
        arrays[f"{tile['name']}/refreshes"] = np.zeros((1, rows, cols), dtype=np.int64)
    layer = layers_from_maps(meta, arrays)[0]
    assert set(layer.wear) == {"programming_events", "set_pulses", "refreshes"}
    figures = _captured(monkeypatch)
    map_plots.wear_png(layer)
    fig = figures[0]
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 1  # no empty panels for the counters of the other scheme
    per_weight = full["programming_events"].sum(axis=(0, 1))
    np.testing.assert_array_equal(heatmaps[0].images[0].get_array(), per_weight)
    title = heatmaps[0].get_title()
    assert title.startswith("programming events per weight (sum over its 2 devices)")
    assert f"mean {per_weight.mean():.3g}, max {per_weight.max():g}" in title
    colour_bar = [ax for ax in fig.axes if not ax.images][0]
    assert colour_bar.get_ylabel() == "programming events per weight"
    assert fig.get_suptitle().endswith("; no SET pulses, no refreshes")
    for name in ("programming_events",):
        layer.wear[name] = np.zeros_like(layer.wear[name])
    assert map_plots.wear_png(layer) is None
    assert "wear" not in layer_figures(layer)


def test_no_stuck_map_without_stuck_devices():
    meta, arrays, _ = _maps_files(cols=(7, 7))
    layer = layers_from_maps(meta, arrays)[0]
    assert "stuck" in layer_figures(layer)
    layer.stuck = np.zeros_like(layer.stuck)
    assert list(layer_figures(layer)) == ["conductance", "weights", "histograms"]
