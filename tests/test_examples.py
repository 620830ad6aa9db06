"""Every script in examples/ runs as a researcher would run it, at toy size (``--toy``).

Each runs in its own process, in an empty folder, and must exit 0 and print what it promises.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
#: example number -> lines (or parts of lines) its output must hold
EXPECTED = {
    "01": ["PCM devices: 256 (a G+/G- pair per weight)", "compensation none   1 year"],
    "02": ["test_my_pcm-", "test_pcm_joshi2020-"],
    "03": ["digital: test accuracy", "hwa: test accuracy", "global compensation"],
    "04": ["imported network, outputs equal the exported one's: True",
           "without the maps, outputs equal the exported one's: False"],
    "05": ["/programming_events: mean", "/set_pulses: mean"],
    "06": ["dfa+grapes-propagating", "bp+grapes-local"],
    "07": ["drift scale 1.0: test_accuracy", "drift scale 2.0: test_accuracy"],
    "08": ["loaded my_pcm: drift t0", "stuck.fraction_at_zero", "report: runs/examples/08/fit_report/index.html"],
}


def test_examples_are_numbered_one_to_eight_and_listed_in_the_docs():
    assert [path.name[:2] for path in EXAMPLES] == sorted(EXPECTED)
    listing = (ROOT / "docs" / "examples.md").read_text()
    assert all(f"`{path.name}`" in listing for path in EXAMPLES)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs_at_toy_size(script, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), "--toy"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in EXPECTED[script.name[:2]]:
        assert expected in done.stdout, f"{script.name} did not print {expected!r}:\n{done.stdout[-3000:]}"
