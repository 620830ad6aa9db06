import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_seed():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(1234)
    yield
