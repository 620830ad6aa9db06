"""``analog-snu fit-device`` end to end on the sample measurements of examples/data."""

import re
import struct
from pathlib import Path

import pytest

from analog_snu.cli import main
from analog_snu.pcm import PCMDevice

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
SAMPLE = [str(DATA / f"pcm_{kind}.csv") for kind in ("programming", "drift", "read_noise")]


def png_dpi(data: bytes) -> float:
    """Dots per inch from a PNG's pHYs chunk (pixels per metre)."""
    offset = 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"pHYs":
            per_metre = struct.unpack(">I", data[offset + 8:offset + 12])[0]
            return per_metre * 0.0254
        offset += 12 + length
    raise AssertionError("no pHYs chunk")


def test_fit_device_writes_a_loadable_device_and_a_report(tmp_path, capsys):
    out, report = tmp_path / "mine.toml", tmp_path / "report"
    assert main(["fit-device", *SAMPLE, "--out", str(out), "--report", str(report), "--bootstrap", "4"]) == 0
    printed = capsys.readouterr().out
    assert "programming.coeffs[0]" in printed and "drift.nu_mean_slope" in printed and "read_noise.q" in printed
    assert f"device: {out}" in printed
    device = PCMDevice.from_file(out)
    assert device.name == "fit_pcm_joshi2020" and device.programming.scale == 1.0
    header = out.read_text().splitlines()
    assert header[0].startswith("# PCM device fitted by analog-snu fit-device")
    assert any(line.startswith("# inherited from pcm_joshi2020:") and "periphery.adc_bits" in line for line in header)
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == ["drift_medians.png", "programming_residuals.png", "programming_spread.png", "read_noise.png"]
    assert all(png_dpi((report / name).read_bytes()) >= 149.9 for name in pngs)
    page = (report / "index.html").read_text()
    assert "data:image/png;base64," in page and "Fitted parameters" in page and "Inherited from" in page
    assert (report / "fit.json").is_file()
    # the same command again replaces its own files
    assert main(["fit-device", *SAMPLE, "--out", str(out), "--report", str(report), "--bootstrap", "2",
                 "--quiet"]) == 0


def test_fit_device_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "device.toml"
    mine.write_text('name = "hand written"\n')
    assert main(["fit-device", SAMPLE[0], "--out", str(mine), "--bootstrap", "2"]) == 2
    assert "was not written by this command" in capsys.readouterr().err
    assert mine.read_text() == 'name = "hand written"\n'
    assert main(["fit-device", SAMPLE[0], "--out", str(mine), "--bootstrap", "2", "--force", "--quiet"]) == 0
    assert PCMDevice.from_file(mine).name == "fit_pcm_joshi2020"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mine.txt").write_text("x")
    assert main(["fit-device", SAMPLE[0], "--out", str(tmp_path / "b.toml"), "--report", str(folder)]) == 2
    assert "was not created by analog_snu and is not empty" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--out", "x.json"], "--out must be a .toml device file"),
    (["--out", "x.toml", "--bootstrap", "1"], "bootstrap must be an int >= 2"),
    (["--out", "x.toml", "--base", "nope"], "unknown preset|neither a preset nor a device file"),
])
def test_fit_device_flags_are_checked(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit-device", SAMPLE[0], *args]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_bad_measurement_file_is_one_line_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,g_target_uS,g_measured_uS\na,2,-1\n")
    assert main(["fit-device", str(bad), "--out", str(tmp_path / "d.toml")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv, line 2, column g_measured_uS" in err
