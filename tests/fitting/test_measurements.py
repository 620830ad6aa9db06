"""The measurement readers: formats, and one-line errors naming file, line and column."""

import numpy as np
import pytest

from analog_snu.errors import DataError
from analog_snu.fitting import fit_device, read_measurement_file, read_measurements
from analog_snu.fitting.fit import check_bins
from analog_snu.fitting.measurements import Measurements, ProgrammingData


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_kinds_follow_from_the_header_and_rows_group_by_device(tmp_path):
    prog = write(tmp_path, "p.csv", "# a comment\ng_measured_uS,device_id,g_target_uS\n1.5,a,2\n0,b,3\n")
    kind, data = read_measurement_file(prog)
    assert kind == "programming"
    assert data.device_id == ("a", "b") and data.g_measured.tolist() == [1.5, 0.0] and data.t.tolist() == [0, 0]
    drift = write(tmp_path, "d.csv", "device_id,g_target_uS,t_seconds,g_uS\na,5,1,5\nb,4,1,4\na,5,10,4.9\nb,4,5,3.9\nb,4,9,3.8\n")
    kind, data = read_measurement_file(drift)
    assert kind == "drift" and data.device_id == ("a", "b")
    assert data.t[1].tolist() == [1.0, 5.0, 9.0] and np.isnan(data.t[0, 2]) and data.g_target.tolist() == [5.0, 4.0]
    noise = write(tmp_path, "r.csv", "device_id,t_seconds,g_uS\n" + "".join(f"a,{60 + k},{5 + k / 100}\n" for k in range(4)))
    measurements = read_measurements([prog, drift, noise])
    assert measurements.kinds() == ["programming", "drift", "read_noise"]


@pytest.mark.parametrize("text, match", [
    ("device_id,g_target_uS,g_measured_uS\na,2,-0.5\n", r"p\.csv, line 2, column g_measured_uS: -0.5 is negative"),
    ("device_id,g_target_uS,g_measured_uS\na,2,1\nb,2,nan\n", r"p\.csv, line 3, column g_measured_uS: nan is not finite"),
    ("device_id,g_target_uS,g_measured_uS\na,2,inf\n", r"line 2, column g_measured_uS: inf is not finite"),
    ("device_id,g_target_uS,g_measured_uS\na,2e-6,2.1e-6\nb,1e-5,9e-6\n",
     r"p\.csv, line 3, column g_target_uS: the largest value is 1e-05, which looks like siemens"),
    ("device_id,g_target_uS,g_measured_uS,t_seconds\na,2,2,-1\n", r"line 2, column t_seconds: -1 s; times must be >= 0"),
    ("device_id,g_target_uS,g_measured_uS\na,2,2\na,3,3\n", r"line 3, column device_id: device 'a' already read on line 2"),
    ("device_id,g_target_uS,g_measured_uS\na,2,x\n", r"line 2, column g_measured_uS: 'x' is not a number"),
    ("device_id,g_target,g_measured_uS\na,2,2\n", r"p\.csv: header device_id, g_target, g_measured_uS matches no"),
    ("device_id,g_target_uS,g_measured_uS\na,2\n", r"p\.csv, line 2: 2 fields, the header names 3"),
])
def test_bad_programming_files_name_file_line_and_column(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_measurement_file(write(tmp_path, "p.csv", text))


def test_drift_needs_t_above_zero_and_two_times_per_device(tmp_path):
    head = "device_id,g_target_uS,t_seconds,g_uS\n"
    with pytest.raises(DataError, match=r"d\.csv, line 3, column t_seconds: 0 s; times must be > 0"):
        read_measurement_file(write(tmp_path, "d.csv", head + "a,5,1,5\na,5,0,5\n"))
    with pytest.raises(DataError, match=r"d\.csv, line 4, column t_seconds: device 'b' is read at one time only"):
        read_measurement_file(write(tmp_path, "d.csv", head + "a,5,1,5\na,5,10,4.9\nb,5,1,5\nb,5,1,5.1\n"))
    with pytest.raises(DataError, match=r"line 3, column g_target_uS: device 'a' has target 6"):
        read_measurement_file(write(tmp_path, "d.csv", head + "a,5,1,5\na,6,10,4.9\n"))


def test_read_noise_needs_four_reads_per_device(tmp_path):
    text = "device_id,t_seconds,g_uS\n" + "".join(f"a,{60 + k},5\n" for k in range(3))
    with pytest.raises(DataError, match=r"r\.csv, line 2, column g_uS: device 'a' has 3 reads; read noise needs at least 4"):
        read_measurement_file(write(tmp_path, "r.csv", text))


def test_two_files_of_one_kind_and_no_files_are_refused(tmp_path):
    prog = write(tmp_path, "p.csv", "device_id,g_target_uS,g_measured_uS\na,2,2\n")
    with pytest.raises(DataError, match="are both programming data"):
        read_measurements([prog, prog])
    with pytest.raises(DataError, match="no measurement file given"):
        read_measurements([])


def test_too_few_devices_per_bin_says_how_many_are_needed():
    targets = np.array([1.0] * 30 + [10.0] * 30 + [20.0] * 4)  # two full bins of 3.125 µS, a third with 4
    data = ProgrammingData("p.csv", tuple(map(str, range(64))), targets, targets, np.zeros(64))
    with pytest.raises(DataError, match=r"p\.csv, column g_target_uS: too few devices per conductance bin: 2 of the 8 "
                                        r"bins .* needs 3 such bins, i.e. at least 30 devices"):
        check_bins(Measurements(programming=data), 25.0, 3)
    with pytest.raises(DataError, match="too few devices per conductance bin"):
        fit_device(Measurements(programming=data), bootstrap=2)
