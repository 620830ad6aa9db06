import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_seed():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(1234)
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one (benchmarks/gpu_check.sh runs them)")
