import pytest

from analog_snu.functional import snu as snu_module


@pytest.fixture(params=["compiled", "torch"])
def loops(request, monkeypatch):
    """Run the SNU recurrences through the compiled numba loops (the CPU default) or their torch fallback
    (``snu_sequence``'s torch loops, and ``max_pool2d`` after them for the pooled grid: the GPU's path)."""
    if request.param == "torch":
        monkeypatch.setenv(snu_module.TORCH_LOOPS_ENV, "1")
    return request.param
