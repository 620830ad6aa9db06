"""The thread policy: decisions from the work, the usable CPUs and their load; the user's environment;
the share of a sweep trial; the libraries it sets."""

import pytest
import threadpoolctl
import torch

from analog_snu import threads
from analog_snu.errors import ConfigError
from analog_snu.threads import WORK_PER_THREAD, apply_threads, cpu_share, decide_threads, usable_cpus

BIG = 1000 * WORK_PER_THREAD
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                    "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS")


@pytest.fixture
def no_thread_environment(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def machine(monkeypatch):
    """``machine(cpus, load)``: a process on ``cpus`` CPUs (affinity, no cgroup quota) of which other
    processes keep ``load`` busy (the load probe is mocked)."""

    def make(cpus, load=0.0):
        monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
        monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
        monkeypatch.setattr(threads, "other_load", lambda: load)

    return make


def _never_sampled():
    raise AssertionError("the load was sampled where it cannot change the answer")


@pytest.mark.parametrize(
    ("work", "cpus", "load", "expected"),
    [
        (BIG, 8, 0.0, 8),                       # big work, idle machine: every usable CPU
        (BIG, 2, 1.0, 1),                       # a busy neighbour on 2 CPUs: one thread
        (BIG, 2, 0.4, 2),                       # under half a CPU of other work takes none away
        (BIG, 2, 0.6, 1),                       # half a CPU or more takes that CPU
        (BIG, 16, 3.7, 12),                     # round(16 - 3.7)
        (BIG, 4, 9.0, 1),                       # overloaded: never fewer than one
        (3 * WORK_PER_THREAD + 5, 8, 0.0, 3),   # each thread gets at least WORK_PER_THREAD
        (None, 4, 0.0, 4),                      # unknown work: no limit from it
        (640 * 64 * 128, 8, 0.0, 1),            # the digits network's products: 5.2 M, one thread
    ],
)
def test_auto_decisions(work, cpus, load, expected):
    decision = decide_threads("auto", work=work, cpus=cpus, load=load, environ={})
    assert (decision.threads, decision.source) == (expected, "auto")
    assert decision.reason.endswith(f": {expected}")


def test_small_work_or_one_cpu_is_one_thread_without_sampling_the_load(monkeypatch):
    monkeypatch.setattr(threads, "other_load", _never_sampled)
    assert decide_threads(work=WORK_PER_THREAD - 1, cpus=64, environ={}).threads == 1
    assert decide_threads(work=BIG, cpus=1, environ={}).threads == 1


def test_decisions_from_a_mocked_affinity_and_load_average(monkeypatch):
    """The default probes: affinity {0..3} of 8 CPUs, no /proc/stat (not Linux): the 1-minute load
    average 4.0 spread over 8 CPUs puts 2.0 on this process's 4, which leaves 2 threads."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (4.0, 3.0, 2.0))
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)

    def no_proc_stat(cpus):
        raise OSError("no /proc/stat")

    monkeypatch.setattr(threads, "_cpu_ticks", no_proc_stat)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    assert usable_cpus() == 4
    assert threads.other_load() == pytest.approx(2.0)
    assert decide_threads(work=BIG, environ={}).threads == 2
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert decide_threads(work=BIG, environ={}).threads == 4


def test_other_load_is_the_cpus_busy_time_less_this_process(monkeypatch):
    """CPU 0 busy 10 of 10 ticks, CPU 1 2 of 10 (1.2 CPUs busy), this process used 0.05 s of CPU in
    0.1 s (0.5 CPU): others keep 0.7 CPUs busy."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    samples = iter([{0: (50, 100), 1: (10, 100)}, {0: (60, 110), 1: (12, 110)}])
    monkeypatch.setattr(threads, "_cpu_ticks", lambda cpus: next(samples))
    own = iter([1.0, 1.05])
    wall = iter([10.0, 10.1])
    monkeypatch.setattr(threads.time, "process_time", lambda: next(own))
    monkeypatch.setattr(threads.time, "perf_counter", lambda: next(wall))
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    assert threads.other_load() == pytest.approx(0.7)


def test_proc_stat_lines_give_busy_and_total_ticks(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\n"
                    "cpu0 10 1 2 100 3 4 5 6 0 0\n"
                    "cpu1 7 0 0 50 0 0 0 0 0 0\n"
                    "cpu2 1 1 1 1 1 1 1 1 0 0\n"
                    "intr 1 2 3\n")
    # busy = user + nice + system + irq + softirq + steal; total adds idle + iowait
    assert threads._cpu_ticks({0, 1}, stat) == {0: (28, 131), 1: (7, 57)}


def test_a_sweep_share_caps_the_threads_and_the_load_counts_on_every_cpu(machine):
    machine(16, load=12.0)  # three sibling trials of four threads each
    with cpu_share(4):
        assert usable_cpus() == 4
        assert decide_threads(work=BIG, environ={}).threads == 4
        with cpu_share(2):
            assert usable_cpus() == 2
        assert usable_cpus() == 4
    assert usable_cpus() == 16
    machine(16, load=13.0)
    with cpu_share(4):
        assert decide_threads(work=BIG, environ={}).threads == 3


def test_cgroup_quotas_limit_the_usable_cpus(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "cpu.max").write_text("max 100000\n")
    (root / "a" / "cpu.max").write_text("150000 100000\n")  # the parent's limit holds for its children
    v2 = tmp_path / "v2"
    v2.write_text("0::/a/b\n")
    assert threads._cgroup_quota(root, v2) == 1.5
    v1 = tmp_path / "v1"
    v1.write_text("4:memory:/x\n3:cpu,cpuacct:/x\n")
    (root / "cpu,cpuacct" / "x").mkdir(parents=True)
    (root / "cpu,cpuacct" / "x" / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu,cpuacct" / "x" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads._cgroup_quota(root, v1) is None
    (root / "cpu,cpuacct" / "x" / "cpu.cfs_quota_us").write_text("300000\n")
    assert threads._cgroup_quota(root, v1) == 3.0
    assert threads._cgroup_quota(root, tmp_path / "missing") is None
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert usable_cpus() == 2


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OMP_NUM_THREADS": "3"}, (3, "OMP_NUM_THREADS=3")),
        ({"OMP_NUM_THREADS": "4,2"}, (4, "OMP_NUM_THREADS=4")),  # OpenMP's nested form: the outer count
        ({"MKL_NUM_THREADS": "5"}, (5, "MKL_NUM_THREADS=5")),
        ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "5"}, (2, "OMP_NUM_THREADS=2")),  # torch's order
    ],
)
def test_auto_respects_the_users_thread_count(environ, expected, monkeypatch):
    monkeypatch.setattr(threads, "other_load", _never_sampled)
    decision = decide_threads("auto", work=BIG, cpus=8, environ=environ)
    assert (decision.threads, decision.reason, decision.source) == (*expected, "environment")


@pytest.mark.parametrize("value", ["abc", "0", "-2", ""])
def test_a_variable_that_is_no_count_is_ignored(value):
    assert decide_threads("auto", work=BIG, cpus=8, load=0.0, environ={"OMP_NUM_THREADS": value}).source == "auto"


def test_an_explicit_count_wins_over_environment_load_and_work():
    decision = decide_threads(3, work=1, cpus=2, load=5.0, environ={"OMP_NUM_THREADS": "1"})
    assert (decision.threads, decision.source) == (3, "setting")


@pytest.mark.parametrize("value", [0, -1, 4097, "x", "4", 2.5, True, None])
def test_bad_settings_are_refused_in_one_line(value):
    with pytest.raises(ConfigError, match=rf"^threads must be 'auto' or an int from 1 to 4096, got {value!r}$"):
        decide_threads(value)


@pytest.fixture
def restore_threads():
    """The thread counts of torch and of every loaded OpenMP/BLAS pool, put back after the test."""
    torch_threads = torch.get_num_threads()
    pools = [(lib, lib.num_threads) for lib in threadpoolctl.ThreadpoolController().lib_controllers]
    yield
    for lib, count in pools:
        lib.set_num_threads(count)
    torch.set_num_threads(torch_threads)


def _pool_threads() -> dict[str, set[int]]:
    counts: dict[str, set[int]] = {}
    for info in threadpoolctl.threadpool_info():
        counts.setdefault(info["internal_api"], set()).add(info["num_threads"])
    return counts


def test_apply_sets_torch_and_every_pool(restore_threads, no_thread_environment, machine):
    import analog_snu.experiments  # noqa: F401 - loads aihwkit's OpenBLAS, as a run does

    assert "openblas" in _pool_threads() and "openmp" in _pool_threads()
    assert apply_threads(2).threads == 2
    assert torch.get_num_threads() == 2 and set(_pool_threads()) and all(c == {2} for c in _pool_threads().values())
    machine(2, load=1.0)  # a busy neighbour
    decision = apply_threads("auto", work=BIG)
    assert decision.threads == 1 and torch.get_num_threads() == 1
    assert all(c == {1} for c in _pool_threads().values())
    machine(2, load=0.0)
    assert apply_threads("auto", work=BIG).threads == 2 and torch.get_num_threads() == 2


def test_apply_leaves_a_library_whose_own_variable_the_user_set(restore_threads, no_thread_environment, machine,
                                                                 monkeypatch):
    apply_threads(1)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    machine(2, load=0.0)
    assert apply_threads("auto", work=BIG).threads == 2
    pools = _pool_threads()
    assert torch.get_num_threads() == 2 and pools["openmp"] == {2} and pools["openblas"] == {1}
    apply_threads(2)  # an explicit count reaches every library
    assert _pool_threads()["openblas"] == {2}


def test_apply_respects_omp_num_threads(restore_threads, no_thread_environment, machine, monkeypatch):
    machine(2, load=0.0)
    apply_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    decision = apply_threads("auto", work=BIG)
    assert (decision.threads, decision.source) == (1, "environment") and torch.get_num_threads() == 1


def test_apply_sets_numba_only_where_its_pool_runs(restore_threads, no_thread_environment):
    numba = pytest.importorskip("numba")
    numba.get_num_threads()  # starts numba's pool
    apply_threads(1)
    assert numba.get_num_threads() == 1
    if numba.config.NUMBA_NUM_THREADS >= 2:
        apply_threads(2)
        assert numba.get_num_threads() == 2
