import pytest

from analog_snu.experiments import train_run


@pytest.fixture
def kill_after():
    """``kill_after(config, run_dir, epoch)``: train ``config`` in ``run_dir`` and stop it once epoch
    ``epoch`` is checkpointed, as a kill after that epoch would leave the run."""

    class Killed(Exception):
        pass

    def hook_for(epoch):
        def hook(done, _row):
            if done == epoch:
                raise Killed(f"killed after epoch {done}")

        return hook

    def kill(config, run_dir, epoch):
        with pytest.raises(Killed):
            train_run(config, run_dir, progress=False, on_epoch_end=hook_for(epoch))

    return kill
