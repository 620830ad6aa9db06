"""keep_freed_memory: freed blocks are reused without new page faults (glibc), and user settings win.

Each case runs in a fresh interpreter: the setting is process-wide and would outlive the test.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from analog_snu.errors import ConfigError
from analog_snu.heap import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# allocate and write 40 blocks of 1 MiB, free them, four times; print the page faults of each round
_ROUNDS = textwrap.dedent("""
    import json, resource, sys
    import torch
    from analog_snu.heap import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else None
    faults = []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [torch.ones(1 << 18) for _ in range(40)]
        del blocks
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"kept": kept, "faults": faults}))
""")


def run_rounds(mode, **env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True,
                            env={**environment, **env})
    return json.loads(result.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    first_touch = 40 * 256 // 2  # 40 MiB of 4 KiB pages, at least half of them faulted in a first time
    default = run_rounds("default")
    kept = run_rounds("keep")
    assert kept["kept"] is True
    assert default["faults"][0] > first_touch and kept["faults"][0] > first_touch
    # glibc's default hands the freed heap back: the next round faults it in again ...
    assert default["faults"][1] > first_touch
    # ... kept, the later rounds reuse it (a few hundred faults remain: torch's own small allocations, and
    # glibc settling its heap in the second round; measured 256-2,049 over rounds 2-4 against >= 10,200)
    assert sum(kept["faults"][1:]) < default["faults"][1] / 3


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_glibcs_own_variables_win():
    result = run_rounds("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert result["kept"] is False


@pytest.mark.parametrize("bad", [-1, 1.5, True, "256"])
def test_bad_amount_raises(bad):
    with pytest.raises(ConfigError, match="mib must be an int >= 0"):
        keep_freed_memory(bad)
