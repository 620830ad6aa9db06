"""Times as people write them (1s 1h 1d 1y, or seconds): parsed, formatted, read back exactly."""

import pytest

from analog_snu.errors import ConfigError
from analog_snu.experiments.config import TrainingConfig
from analog_snu.times import format_time, parse_time

DAY, YEAR = 86_400.0, 365 * 86_400.0


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("1h", 3600.0), ("1d", DAY), ("1y", YEAR), ("10y", 10 * YEAR), ("30min", 1800.0),
    ("1.5h", 5400.0), ("2 d", 2 * DAY), ("86400", DAY), ("0", 0.0), ("1e3s", 1000.0), (60, 60.0), (0.5, 0.5),
])
def test_parse(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (1, "1s"), (0.5, "0.5s"), (90, "1.5min"), (3600, "1h"), (43_200, "12h"), (DAY, "1d"),
    (30 * DAY, "30d"), (YEAR, "1y"), (10 * YEAR, "10y"), (100_000, "100000s"), (1234.5678, "1234.5678s"),
    (3e7, "30000000s"), (1000 * DAY, "1000d"), (1e-3, "0.001s"),
])
def test_format_is_the_largest_exact_unit_and_reads_back(seconds, text):
    assert format_time(seconds) == text
    assert parse_time(text) == seconds


@pytest.mark.parametrize("value, problem", [
    ("1m", "a time such as 1s, 1h, 1d, 1y"), ("1 week", "a time such as"), ("1.2.3h", "a time such as"),
    ("d", "a time such as"), (True, "a time such as"), (None, "a time such as"),
    ("-1d", "a finite time >= 0"), (-1, "a finite time >= 0"), (float("inf"), "a finite time >= 0"),
])
def test_refusals_name_the_argument(value, problem):
    with pytest.raises(ConfigError, match=f"^--drift-times must be {problem}"):
        parse_time(value, "--drift-times")


def test_config_fields_holding_a_time_take_units_and_store_seconds():
    assert TrainingConfig(mode="hil", chip_seconds_per_batch="1min").chip_seconds_per_batch == 60.0
    assert TrainingConfig(mode="hil", chip_seconds_per_batch=2).to_dict()["chip_seconds_per_batch"] == 2.0
    with pytest.raises(ConfigError, match="chip_seconds_per_batch"):
        TrainingConfig(mode="hil", chip_seconds_per_batch="1m")
