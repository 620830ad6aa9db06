import importlib.util
import signal
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def _deterministic_seed():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(1234)
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one (benchmarks/gpu_check.sh runs them)")


@pytest.fixture
def load_benchmark():
    """Import ``benchmarks/<name>.py`` by path (the benchmarks are scripts, not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def no_hang():
    """Turn a read that blocks (a FIFO opened as a file) into a test failure after 30 s instead of a hung run."""

    def hung(*_):
        raise AssertionError("a read blocked (a FIFO was opened as a file?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
