"""One value for the device a command puts a run on: the device, the name it came by, the changes."""

import pytest

from analog_snu.errors import ConfigError
from analog_snu.experiments import DeviceChoice
from analog_snu.pcm import preset


def test_a_preset_name_is_resolved_once_and_kept_as_the_source():
    choice = DeviceChoice.of("pcm_aged_lowyield")
    assert choice.device == preset("pcm_aged_lowyield") and choice.source == "pcm_aged_lowyield"
    assert choice.chosen and choice.applied_to(preset("pcm_joshi2020")) == preset("pcm_aged_lowyield")


def test_a_device_file_is_its_own_source(tmp_path):
    path = tmp_path / "mine.toml"
    preset("pcm_joshi2020").updated({"drift": {"scale": 2.0}}).save(path)
    choice = DeviceChoice.of(str(path))
    assert choice.source == str(path) and choice.device.drift.scale == 2.0


def test_changes_apply_to_the_runs_own_device_when_none_is_chosen():
    own = preset("pcm_joshi2020")
    choice = DeviceChoice.of(None, [("device.drift.scale", 1.5), ("device.drift.scale", 3.0)])
    assert choice.chosen and choice.source is None and choice.device is None
    used = choice.applied_to(own)
    assert used.drift.scale == 3.0  # in order: the last one wins
    assert used == own.updated({"drift": {"scale": 3.0}})


def test_the_default_is_the_runs_own_device_unchanged():
    own = preset("pcm_joshi2020")
    assert not DeviceChoice().chosen and DeviceChoice().applied_to(own) is own
    assert DeviceChoice.of(own).source is None and DeviceChoice.of(own).applied_to(None) == own


def test_a_choice_given_again_keeps_its_source_and_adds_changes():
    first = DeviceChoice.of("pcm_joshi2020", [("device.drift.scale", 1.5)])
    again = DeviceChoice.of(first, [("device.stuck.fraction_at_zero", 0.1)])
    assert again.source == "pcm_joshi2020" and len(again.changes) == 2
    assert again.applied_to(None).stuck.fraction_at_zero == 0.1


@pytest.mark.parametrize(("make", "message"), [
    (lambda: DeviceChoice().applied_to(None), r"this run is digital: name a PCM device"),
    (lambda: DeviceChoice.of(None, [("training.lr", 0.1)]), r"--set here changes device parameters only .*'training.lr'"),
    (lambda: DeviceChoice(device={"name": "x"}), r"device must be a PCMDevice or None, got dict"),
    (lambda: DeviceChoice.of("no_such_preset"), r"no_such_preset"),
    (lambda: DeviceChoice.of(None, [("device.drift.scale", -1.0)]).applied_to(preset("pcm_joshi2020")), r"scale"),
])
def test_bad_choices_are_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
