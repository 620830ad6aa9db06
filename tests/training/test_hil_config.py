"""One HILConfig: defaults, rules and ranges declared once, built from the flat stored layout too."""

import pytest
import torch

from analog_snu import SNUNetwork
from analog_snu.errors import ConfigError
from analog_snu.experiments import RunConfig, build_config
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config
from analog_snu.training import HILConfig, HILHook


def test_defaults_follow_the_scheme():
    assert HILConfig().model_dump() == {"scheme": "reprogram", "program_every": 1, "chip_seconds_per_batch": 1.0,
                                        "granularity": None, "headroom": 1.5, "program_all": False}
    mixed = HILConfig(scheme="mixed")
    assert (mixed.headroom, mixed.program_every, mixed.granularity) == (8.0, 1, None)
    assert HILConfig(scheme="mixed", headroom=3.0).headroom == 3.0
    assert HILConfig(chip_seconds_per_batch="1min").chip_seconds_per_batch == 60.0


@pytest.mark.parametrize(("options", "problem"), [
    ({"scheme": "pulsed"}, r"scheme: Input should be 'reprogram' or 'mixed'"),
    ({"program_every": 0}, r"program_every: Input should be greater than 0"),
    ({"program_every": True}, r"program_every: Input should be a valid integer"),
    ({"scheme": "mixed", "program_every": 2}, r"--program-every applies to --hil-scheme reprogram, not mixed"),
    ({"granularity": 0.01}, r"--granularity applies to --hil-scheme mixed only"),
    ({"scheme": "mixed", "granularity": 1.5}, r"granularity: Input should be less than or equal to 1"),
    ({"headroom": 0.5}, r"headroom: Input should be greater than or equal to 1"),
    ({"headroom": 2e3}, r"headroom: Input should be less than or equal to 1000"),
    ({"chip_seconds_per_batch": -1.0}, r"chip_seconds_per_batch: Input should be greater than or equal to 0"),
    ({"program_all": 1}, r"program_all: Input should be a valid boolean"),
    ({"schema": "mixed"}, r"unknown key 'schema'"),
])
def test_bad_options_are_refused_once_with_one_line(options, problem):
    with pytest.raises(ConfigError, match=problem):
        HILConfig(**options)


# training part of a config.json as runs store it (flat: the layout of every run directory so far)
STORED = {"task": {"name": "digits"}, "model": {"layers": [8]}, "device": preset("pcm_joshi2020").to_dict(),
          "training": {"mode": "hil", "hil_scheme": "mixed", "program_every": None, "chip_seconds_per_batch": 60.0,
                       "granularity": 0.02, "headroom": None}}


def test_a_stored_flat_config_builds_the_hil_config_and_stays_flat():
    config = RunConfig.from_dict(STORED)
    assert config.hil == HILConfig(scheme="mixed", chip_seconds_per_batch=60.0, granularity=0.02, headroom=8.0)
    stored = config.to_dict()
    assert "hil" not in stored and stored["training"]["hil_scheme"] == "mixed"
    assert stored["training"]["headroom"] is None  # the default is not written into old runs' layout
    assert RunConfig.from_dict(stored) == config


def test_flags_build_the_same_hil_config():
    config = build_config(flags={"task": "digits", "device": "pcm_joshi2020", "training": "hil",
                                 "program-every": 3, "chip-seconds-per-batch": "1h"})
    assert config.hil == HILConfig(program_every=3, chip_seconds_per_batch=3600.0)
    assert build_config(flags={"task": "digits"}).hil is None


def _analog(device):
    torch.manual_seed(0)
    return SNUNetwork([64, 6, 10], rpu_config=device_rpu_config(device, "inference"))


def test_hook_takes_a_config_or_keywords_alike():
    device = preset("pcm_joshi2020")
    model = _analog(device)
    by_config = HILHook(model, HILConfig(scheme="mixed", headroom=2.0, chip_seconds_per_batch=5.0), seed=1)
    by_keywords = HILHook(model, scheme="mixed", headroom=2.0, chip_seconds_per_batch=5.0, seed=1)
    settings = [{k: v for k, v in hook.state_dict().items() if not isinstance(v, torch.Tensor)}
                for hook in (by_config, by_keywords)]
    assert settings[0] == settings[1] and settings[0]["chip"]["headroom"] == 2.0
    assert by_config.chip.headroom == 2.0 and by_config.config == by_keywords.config


def test_hook_keywords_keep_their_defaults():
    device = preset("pcm_joshi2020")
    model = _analog(device)
    # the Python API's headroom default is 1.5 for both schemes (a run config's mixed default is 8)
    mixed = HILHook(model, scheme="mixed", program_every=1)
    assert (mixed.chip.headroom, mixed.program_every, mixed.chip_seconds_per_batch) == (1.5, 1, 1.0)


def test_hook_refuses_a_config_and_keywords_together():
    device = preset("pcm_joshi2020")
    model = _analog(device)
    with pytest.raises(ConfigError, match=r"not both \(got config and \['headroom'\]\)"):
        HILHook(model, HILConfig(), headroom=3.0)
    with pytest.raises(ConfigError, match="config must be a HILConfig, got dict"):
        HILHook(model, {"scheme": "mixed"})  # type: ignore[arg-type]
