"""``python -m analog_snu.demo``: the main job, same as ``analog-snu demo`` (see :mod:`analog_snu.experiments.demo`)."""

from __future__ import annotations

import sys

from analog_snu.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
