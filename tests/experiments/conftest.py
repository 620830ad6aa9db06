import pytest


@pytest.fixture
def stop_after():
    """``stop_after(n)`` -> ``(Killed, hook)``: an ``on_epoch_end`` hook that raises ``Killed``
    once epoch ``n`` is checkpointed, as a kill after that epoch would leave the run."""

    def make(epoch):
        class Killed(Exception):
            pass

        def hook(done, _row):
            if done == epoch:
                raise Killed(f"killed after epoch {done}")

        return Killed, hook

    return make
