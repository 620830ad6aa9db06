#!/usr/bin/env bash
# Fetch, on a machine with network, what benchmarks/gpu_check.sh needs on a CUDA machine without it.
#
#   bash benchmarks/gpu_bundle.sh [DIR]        # default DIR: benchmarks/gpu_bundle (git-ignored)
#
# DIR/debs/   Debian's OpenBLAS (pthread) runtime + headers, libgfortran5, libquadmath0 (apt-get download)
# DIR/build/  wheels of aihwkit's build tools: scikit-build (+ distro), pybind11>=3.0.1
# DIR/site/   wheels of this package's pure-Python needs that the CUDA machine lacks (pydantic, filelock,
#             tomli-w, hypothesis), for its Python (PY_VERSION, default 3.12)
# DIR/aihwkit-1.2.0.tar.gz   aihwkit's sdist
# Then copy DIR along with the repository (or carry it) and run benchmarks/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-benchmarks/gpu_bundle}
PY_VERSION=${PY_VERSION:-3.12}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DIR/debs" "$DIR/build" "$DIR/site"

(cd "$DIR/debs" && apt-get download libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0)

$PIP download -q --no-deps --only-binary=:all: --dest "$DIR/build" "scikit-build>=0.18.1" distro "pybind11>=3.0.1"
$PIP download -q --only-binary=:all: --python-version "$PY_VERSION" --platform manylinux2014_x86_64 \
    --implementation cp --dest "$DIR/site" "pydantic>=2.7" "filelock>=3.12" tomli-w "hypothesis>=6"
# aihwkit's metadata step needs scikit-build: take it from .venv (make setup) rather than building in isolation
${SDIST_PIP:-.venv/bin/python -m pip} download -q --no-deps --no-binary=:all: --no-build-isolation --dest "$DIR" "aihwkit==1.2.0"
ls -l "$DIR" "$DIR"/*/
du -sh "$DIR"
