"""`analog-snu report RUN`: every file present, images non-empty at >= 150 dpi, an HTML page that
references only local data, split tiles at global indices, layer names, umask respected."""

import argparse
import csv
import importlib
import io
import json
import os
import re
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from analog_snu import SNUNetwork
from analog_snu.cli import report as report_cli
from analog_snu.data import load_digits, rate_encode
from analog_snu.errors import ConfigError
from analog_snu.experiments.report import loss_axis_label, write_report
from analog_snu.files import write_json
from analog_snu.hardware import drift, drift_study, program
from analog_snu.hardware.layer_maps import layers_from_maps
from analog_snu.pcm import preset
from analog_snu.reports import PLOT_DPI, export_weight_maps, save_drift_study
from analog_snu.tiles import device_rpu_config
from analog_snu.training.loop import accuracy, evaluate, train_epoch

DEVICE = "pcm_joshi2020"
# the module (analog_snu.hardware.drift_study is also the name of its function in analog_snu.hardware)
drift_study_module = importlib.import_module("analog_snu.reports.drift_plots")


def _batches(images, labels, size, generator, shuffle=True):
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(labels), size):
        idx = order[start:start + size]
        yield rate_encode(images[idx], 10, 10.0, generator), labels[idx]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-epoch HWA digits SNU (64-16-10, first layer split over two 32-input tiles), with the
    files a run writes, a drift study and a weight-map export, all written under umask 0o022."""
    old_umask = os.umask(0o022)
    try:
        run = tmp_path_factory.mktemp("run")
        data = load_digits()
        train_x, train_y = (part[:96] for part in data["train"])
        test_x, test_y = (part[:64] for part in data["test"])
        device = preset(DEVICE)
        rpu_config = device_rpu_config(device, "hwa")
        rpu_config.mapping.max_input_size = 32  # 64 inputs -> two tiles of 32: array.0.0 and array.1.0
        torch.manual_seed(0)
        model = SNUNetwork([64, 16, 10], rpu_config=rpu_config)
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
        loss_fn = torch.nn.functional.cross_entropy

        def test_accuracy(net) -> float:
            return evaluate(net, _batches(test_x, test_y, 64, torch.Generator().manual_seed(1), False), accuracy)

        history = []
        for epoch in range(2):
            generator = torch.Generator().manual_seed(epoch)
            loss = train_epoch(model, _batches(train_x, train_y, 32, generator), optimizer, loss_fn, progress=False)
            history.append({"epoch": epoch + 1, "train_loss": loss, "valid_loss": loss * 1.1,
                            "valid_accuracy": test_accuracy(model), "train_s": 0.1, "epoch_s": 0.2})
        config = {"task": {"name": "digits", "rate": 10.0, "steps": 10}, "model": {"cell": "snu", "layers": [16]},
                  "device": device.to_dict(), "training": {"mode": "hwa", "epochs": 2, "seed": 0}}
        write_json(run / "config.json", {"config": config, "device_source": DEVICE, "versions": {}})
        with (run / "metrics.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        write_json(run / "final.json", {"task": "digits", "metric": "accuracy", "test_accuracy": test_accuracy(model)})
        write_json(run / "hil.json", {"scheme": "reprogram", "devices": 2368,
                                      "programming_events": {"mean": 12.5, "max": 40}})
        study = drift_study(model, test_accuracy, times=(1.0, 3600.0, 31_536_000.0), seeds=(0, 1), metric="accuracy")
        study_paths = save_drift_study(study, run / "drift_study" / f"{DEVICE}_seeds0-1", run=run.name, split="test")
        program(model, seed=0)
        drift(model, 3600.0)
        (run / "weight_maps" / f"{DEVICE}_seed0_t3600").mkdir(parents=True)
        maps = export_weight_maps(model, run / "weight_maps" / f"{DEVICE}_seed0_t3600" / "maps.npz", csv=True)
    finally:
        os.umask(old_umask)
    return {"run": run, "study": study_paths, "maps": maps}


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _png_dpi(path):
    image = Image.open(path)
    assert image.format == "PNG" and image.width > 100 and image.height > 100
    return image.info["dpi"][0]


def test_report_files_images_and_html(tiny_run, tmp_path):
    run = tiny_run["run"]
    report = write_report(run, tmp_path / "report")
    names = set(report.figures)
    layers = ("layers.0.weight_ih", "readout")
    expected = {"training_curves", f"drift_{DEVICE}_seeds0-1"}
    # no stuck map: pcm_joshi2020 has no stuck devices
    expected |= {f"maps_{DEVICE}_seed0_t3600_{layer}_{kind}" for layer in layers
                 for kind in ("conductance", "weights", "histograms")}
    assert names == expected
    for path in report.figures.values():
        assert path.parent == tmp_path / "report" and path.stat().st_size > 1000
        assert _png_dpi(path) == pytest.approx(PLOT_DPI, abs=0.5)
    page = report.html.read_text()
    # self-contained: every image is a data: URI, no URL and no other reference at all
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == len(expected) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    # user-facing layer names, never tile paths
    for layer in layers:
        assert f"<h4>{layer} (" in page
    assert "analog_module" not in page and ".array." not in page
    assert "Run " + run.name in page and "test accuracy" in page and "programming events per device" in page
    assert page.count("<p>No stuck devices.</p>") == len(layers)
    assert report.notes == ["evaluations: none (run `analog-snu eval RUN --drift-times 1d 1y`)"]


def test_report_maps_use_global_indices_of_split_tiles(tiny_run):
    """The exported first layer lies on two aihwkit tiles; the report's layer is 16 x 64 again."""
    meta = json.loads(tiny_run["maps"]["json"].read_text())
    tiles = [t["name"] for t in meta["tiles"] if t["layer"] == "layers.0.weight_ih"]
    assert [t.rsplit(".", 3)[-3:] for t in tiles] == [["array", "0", "0"], ["array", "1", "0"]]
    with np.load(tiny_run["maps"]["npz"], allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    layer = layers_from_maps(meta, arrays)[0]
    assert layer.layer == "layers.0.weight_ih" and layer.shape == (16, 64)
    assert layer.tile_starts == ([0], [0, 32])
    # tile array.1.0 holds inputs 32-63 of the layer
    first, second = (arrays[f"{name}/weights_target"] for name in tiles)
    np.testing.assert_array_equal(layer.weights_target[:, :32], first)
    np.testing.assert_array_equal(layer.weights_target[:, 32:], second)


def test_files_follow_the_umask(tiny_run, tmp_path):
    run = tiny_run["run"]
    # written under umask 0o022 by the fixture: drift study, weight maps (npz, json, csv, png)
    written = [*tiny_run["study"].values(), tiny_run["maps"]["npz"], tiny_run["maps"]["json"],
               *tiny_run["maps"]["csv"], *tiny_run["maps"]["png"]]
    assert {_mode(path) for path in written} == {0o644}
    # the report's own files under a umask other than the fixture's (one full report: each takes seconds)
    old = os.umask(0o027)
    try:
        report = write_report(run, tmp_path / "b")
    finally:
        os.umask(old)
    assert {_mode(p) for p in [report.html, *report.figures.values()]} == {0o640}


def _copy_run(tiny_run, run, names=("config.json", "metrics.csv")):
    run.mkdir()
    for name in names:
        (run / name).write_text((tiny_run["run"] / name).read_text())
    return run


def _without_details(page):
    return re.sub(r"<details>.*?</details>", "", page, flags=re.S)


def test_report_shows_eval_results(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    (run / "eval").mkdir()
    # as `analog-snu eval` writes them: times as 1d, 1y; and one of an older version, in seconds
    write_json(run / "eval" / "test_pcm_joshi2020-1a2b3c4d_seed0.json", {
        "split": "test", "metric": "accuracy", "epoch": 15, "seed": 0, "as_trained": 0.9277777777777778,
        "drift": {"0s": 0.925, "1d": 0.9194444444444444, "1y": 0.8805555555555555},
        "device_label": "pcm_joshi2020-1a2b3c4d"})
    write_json(run / "eval" / "test_pcm_aged_lowyield-5e6f7a8b_seed1.json", {
        "split": "test", "metric": "accuracy", "epoch": 15, "seed": 1, "as_trained": 0.9277777777777778,
        "drift": {"86400": 0.6111111111111112, "3.1536e+07": 0.5}, "device_label": "pcm_aged_lowyield-5e6f7a8b",
        "note": "as_trained differs from final.json only through the evaluation noise seed"})
    report = write_report(run)
    page = report.html.read_text()
    # the evaluations, one row per file, a column per time after programming
    table = re.search(r"<h2>Evaluations \(eval/\)</h2>.*?</table>", page, flags=re.S).group(0)
    assert re.findall(r"<th>(.*?)</th>", table) == ["split", "device", "seed", "epoch", "as trained", "drift 0s",
                                                    "drift 1d", "drift 1y"]
    assert "<td>pcm_joshi2020-1a2b3c4d</td><td>0</td><td>15</td><td>92.78 %</td><td>92.50 %</td><td>91.94 %</td>" \
           "<td>88.06 %</td>" in table
    assert "<td>pcm_aged_lowyield-5e6f7a8b</td><td>1</td><td>15</td><td>92.78 %</td><td></td><td>61.11 %</td>" \
           "<td>50.00 %</td>" in table
    assert "note: as_trained differs from final.json only through the evaluation noise seed" in table
    assert not any("evaluations: none" in note for note in report.notes)
    assert any("evaluations: none" in note for note in write_report(_copy_run(tiny_run, tmp_path / "bare")).notes)


def test_report_tables_are_readable(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    write_json(run / "final.json", {
        "task": "digits", "metric": "accuracy", "test_accuracy": 0.9277777777777778, "test_loss": 0.2534567891234,
        "epochs": 15, "epoch": 15, "select": "last", "best_valid_epoch": 14,
        "last": {"epoch": 15, "test_accuracy": 0.9277777777777778, "test_loss": 0.2534567891234},
        "stopped_early": False, "mean_train_s_per_epoch": 2.1234567,
        "hil": {"scheme": "reprogram", "chip_seconds": 1500.0, "devices": 2368,
                "programming_events": {"mean": 12.456789, "max": 40}}})
    write_json(run / "hil.json", {"scheme": "reprogram", "chip_seconds": 1500.0, "devices": 2368,
                                  "programming_events": {"mean": 12.456789, "max": 40}})
    report = write_report(run)
    page = report.html.read_text()
    shown = _without_details(page)
    # final.json and hil.json rounded for people, labelled in words; no 16-digit floats anywhere shown
    assert not re.search(r"\d\.\d{6,}", shown)
    assert "<tr><th>test accuracy</th><td>92.78 %</td></tr>" in page
    assert "<tr><th>test loss</th><td>0.2535</td></tr>" in page
    assert "<tr><th>training time per epoch (mean)</th><td>2.1 s</td></tr>" in page
    assert "<tr><th>last epoch</th><td>test accuracy 92.78 %, test loss 0.2535, epoch 15</td></tr>" in page
    assert "<tr><th>chip clock at the end</th><td>25min</td></tr>" in page
    assert "<tr><th>PCM devices</th><td>2,368</td></tr>" in page
    assert "<tr><th>programming events per device</th><td>mean 12.46, max 40</td></tr>" in page
    assert page.count("programming events per device") == 1  # final.json's copy of hil.json is not repeated
    # the config: a summary of what was trained, the JSON behind a fold
    assert "<h2>What was trained</h2>" in page and f"<b>{DEVICE}</b>" in page and "<b>hwa</b>" in page
    assert "<pre>" not in shown and re.search(r"<details><summary>.*?</summary><pre>\{", page)


def test_hints_for_a_digital_run_name_a_device(tiny_run, tmp_path):
    run = tmp_path / "digital"
    run.mkdir()
    record = json.loads((tiny_run["run"] / "config.json").read_text())
    record["config"]["device"] = None
    record["config"]["training"]["mode"] = "digital"
    write_json(run / "config.json", {**record, "device_source": None})
    notes = write_report(run).notes
    assert "drift study: none (run `analog-snu drift-study RUN --device PRESET|FILE`)" in notes
    assert "weight maps: none (run `analog-snu export-maps RUN --device PRESET|FILE`)" in notes
    assert "evaluations: none (run `analog-snu eval RUN --device PRESET|FILE --drift-times 1d 1y`)" in notes
    page = write_report(run).html.read_text()
    assert "none: trained digitally" in page


def test_default_folder_and_missing_optional_parts(tiny_run, tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.json").write_text((tiny_run["run"] / "config.json").read_text())
    (run / "metrics.csv").write_text((tiny_run["run"] / "metrics.csv").read_text())
    report = write_report(run)
    assert report.out_dir == run / "report" and report.html == run / "report" / "index.html"
    assert list(report.figures) == ["training_curves"]
    assert any("final.json: none" in n for n in report.notes)
    assert any("drift study: none" in n for n in report.notes)
    assert any("weight maps: none" in n for n in report.notes)
    page = report.html.read_text()
    assert "Not in this report" in page
    # a second report does not pick up the first one's files
    assert list(write_report(run).figures) == ["training_curves"]


def test_unreadable_parts_become_notes(tiny_run, tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    (run / "metrics.csv").write_text("")
    (run / "weight_maps").mkdir()
    (run / "weight_maps" / "maps.json").write_text(json.dumps({"format": "analog_snu.weight_maps", "npz_file": "maps.npz",
                                                               "npz_sha256": "0" * 64, "tiles": []}))
    (run / "weight_maps" / "maps.npz").write_bytes(b"not a zip")
    report = write_report(run)
    assert report.figures == {}
    notes = " | ".join(report.notes)
    assert "config.json: could not be read" in notes
    assert "metrics.csv: no epochs recorded" in notes
    assert "weight_maps/maps.json: weight maps not readable (maps.npz: SHA-256 differs" in notes


def test_refusals(tmp_path):
    with pytest.raises(ConfigError, match=r"RUN must be a run directory .* \(not a directory\)"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"holds none of \['config.json', 'metrics.csv', 'final.json'"):
        write_report(tmp_path)
    (tmp_path / "final.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"dpi must be an int from 150 to 600, got 100"):
        write_report(tmp_path, dpi=100)


def test_cli_run(tiny_run, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    run = tmp_path / "curves_only"  # the CLI's plumbing; the figures of a full run are tested above
    run.mkdir()
    for name in ("config.json", "metrics.csv", "final.json"):
        (run / name).write_text((tiny_run["run"] / name).read_text())
    args = parser.parse_args([str(run), "--out", str(tmp_path / "r"), "--dpi", "200", "--quiet"])
    assert report_cli.run(args) == 0
    assert capsys.readouterr().out == f"report: {tmp_path / 'r' / 'index.html'}\n"
    assert _png_dpi(tmp_path / "r" / "training_curves.png") == pytest.approx(200, abs=0.5)


def test_drift_plot_labels(monkeypatch):
    """Human time ticks, the metric's unit and direction, device and run in the title."""
    figures = []
    monkeypatch.setattr(drift_study_module, "figure_png", lambda fig, dpi=PLOT_DPI: figures.append(fig) or b"")
    times = [1.0, 60.0, 3600.0, 86_400.0, 2_592_000.0, 31_536_000.0, 315_360_000.0]
    summary = [{"time_s": t, "compensated": c, "mean": 8.0 + i / 10, "std": 0.1, "n": 3}
               for i, t in enumerate(times) for c in (False, True)]
    study = {"metric": "nll", "times": times, "seeds": [0, 1, 2], "compensation": "global", "reference": 8.0,
             "summary": summary, "meta": {"devices": {"t": {"name": DEVICE}}, "run": "jsb_run", "split": "test"}}
    drift_study_module.plot_drift_study(study)
    ax = figures[0].axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1 s", "1 min", "1 h", "1 d", "30 d", "1 y", "10 y"]
    assert ax.get_ylabel() == "test NLL (nats/frame, lower is better)"
    assert f"device {DEVICE}" in ax.get_title() and "run jsb_run" in ax.get_title() and "3 programming seeds" in ax.get_title()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["before programming", "global compensation",
                                                                         "no compensation"]
    assert loss_axis_label("jsb") == "NLL (nats/frame, lower is better)"
    assert loss_axis_label("ptb", "valid") == "valid cross-entropy loss (nats/word, lower is better)"


def test_drift_plot_png_is_150_dpi(tmp_path):
    study = {"metric": "accuracy", "times": [0.0, 3600.0], "seeds": [0], "compensation": "global", "reference": 0.9,
             "summary": [{"time_s": t, "compensated": c, "mean": 0.9, "std": 0.0, "n": 1}
                         for t in (0.0, 3600.0) for c in (False, True)], "meta": {}}
    png = drift_study_module.plot_drift_study(study)
    assert Image.open(io.BytesIO(png)).info["dpi"][0] == pytest.approx(PLOT_DPI, abs=0.5)


@pytest.mark.parametrize("dpi", [601, 100_000, 10**9])
def test_a_dpi_that_would_take_gigabytes_is_refused_before_drawing(tmp_path, dpi):
    (tmp_path / "final.json").write_text("{}")
    with pytest.raises(ConfigError, match=rf"dpi must be an int from 150 to 600, got {dpi}"):
        write_report(tmp_path, dpi=dpi)
    assert not (tmp_path / "report").exists()


def test_a_figure_with_too_many_pixels_is_refused_at_any_dpi():
    from analog_snu.reports.figures import MAX_FIGURE_PIXELS, figure_png, new_figure

    big = new_figure(100.0, 100.0)  # 60,000 x 60,000 pixels at 600 dpi
    with pytest.raises(ConfigError, match=r"a figure of 60000 x 60000 pixels at 600 dpi is larger than the "
                                          r"60,000,000 pixels allowed; use a lower dpi"):
        figure_png(big, 600)
    assert 6.0 * 4.2 * 600**2 < MAX_FIGURE_PIXELS  # the report's own figures fit at the highest dpi
