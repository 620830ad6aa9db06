#!/usr/bin/env bash
# GPU check of analog_snu on a CUDA machine without network (see the README, "Sweeps (Ray) and GPUs").
#
#   bash benchmarks/gpu_bundle.sh               # beforehand, on a machine with network
#   bash benchmarks/gpu_check.sh [BUNDLE_DIR]   # on the CUDA machine, from the repository root
#
# Steps, all inside TIME_LIMIT seconds (default 480 = 8 min), everything under one scratch folder:
#  1. unpack Debian's OpenBLAS (+ libgfortran5, libquadmath0) with dpkg -x, point OpenBLAS_HOME at it;
#  2. install the bundled wheels (scikit-build, distro, pybind11; pydantic, filelock, tomli-w,
#     hypothesis) with pip --no-index --target, on PYTHONPATH;
#  3. build aihwkit 1.2.0's CPU core against this machine's torch (its torch tiles then run on CUDA);
#  4. run the tests marked `cuda` (pytest -m cuda) and tests/experiments/test_accelerator.py;
#  5. benchmarks/bench_accelerator.py: SNU training step, digital vs preset HWA, batch 64 and 1024,
#     CPU vs GPU;
#  6. with the time left, build aihwkit again with USE_CUDA=1 for this GPU's architecture only
#     (C++ CUDA tiles); if it finishes, time one InferenceRPUConfig step on CUDA.
# Prints one JSON object on the last line of stdout (logs go to $WORK/*.log, named in the JSON).
#
# Environment: PYTHON (default python3), TIME_LIMIT, WORK (scratch folder, default mktemp -d),
# GPU_CHECK_SKIP_BUILD=1 uses the aihwkit already importable (a smoke run on a machine set up
# with `make setup`), JOBS (build parallelism, default nproc), BENCH_ARGS (extra flags of
# bench_accelerator.py, e.g. "--steps 3 --batches 64" for a smoke run).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUNDLE=$(realpath "${1:-benchmarks/gpu_bundle}")
PYTHON=${PYTHON:-python3}
TIME_LIMIT=${TIME_LIMIT:-480}
WORK=${WORK:-$(mktemp -d /tmp/analog_snu_gpu_check.XXXXXX)}
JOBS=${JOBS:-$(nproc)}
START=$(date +%s)
mkdir -p "$WORK"
declare -A R=()   # results: key -> JSON value

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( TIME_LIMIT - $(elapsed) )); }
log() { echo "[gpu_check $(elapsed) s] $*" >&2; }
emit() {  # print the JSON object (last line of stdout) and exit
  R[total_s]=$(elapsed); R[work]="\"$WORK\""
  local body="" key
  for key in "${!R[@]}"; do body+="\"$key\": ${R[$key]}, "; done
  echo "{${body%, }}"
  exit "${1:-0}"
}
fail() { R[error]=$("$PYTHON" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"); log "FAILED: $1"; emit 1; }

R[gpu]=$("$PYTHON" -c 'import json, torch; print(json.dumps(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None))' 2>/dev/null || echo null)
R[torch]=$("$PYTHON" -c 'import json, torch; print(json.dumps(torch.__version__))' 2>/dev/null || echo null)
[ "${R[torch]}" = null ] && fail "$PYTHON cannot import torch"
ARCH=$("$PYTHON" -c 'import torch; c = torch.cuda.get_device_capability(0) if torch.cuda.is_available() else None; print(f"{c[0]}{c[1]}" if c else "")' 2>/dev/null)
R[cuda_arch]="\"$ARCH\""
SITE=$WORK/site; BUILDTOOLS=$WORK/buildtools; mkdir -p "$SITE" "$BUILDTOOLS"

# --- 1-2: OpenBLAS prefix and wheels -----------------------------------------------------------------
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  [ -d "$BUNDLE/debs" ] || fail "no bundle at $BUNDLE (run benchmarks/gpu_bundle.sh first and carry it)"
  OB=$WORK/openblas; mkdir -p "$OB/prefix"
  for deb in "$BUNDLE"/debs/*.deb; do dpkg -x "$deb" "$OB" || fail "dpkg -x $deb"; done
  ln -sfn "$OB/usr/include/x86_64-linux-gnu/openblas-pthread" "$OB/prefix/include"
  ln -sfn "$OB/usr/lib/x86_64-linux-gnu/openblas-pthread" "$OB/prefix/lib"
  export OpenBLAS_HOME=$OB/prefix
  export LD_LIBRARY_PATH="$OB/usr/lib/x86_64-linux-gnu/openblas-pthread:$OB/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$BUILDTOOLS" "$BUNDLE"/build/*.whl >"$WORK/pip_build.log" 2>&1 \
    || fail "installing build wheels (see $WORK/pip_build.log)"
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "$BUNDLE"/site/*.whl >"$WORK/pip_site.log" 2>&1 \
    || fail "installing runtime wheels (see $WORK/pip_site.log)"
fi
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
R[setup_s]=$(elapsed)

# --- 3: aihwkit CPU core -------------------------------------------------------------------------------
build_aihwkit() {  # $1 = target folder, $2 = log, rest = extra env assignments
  local target=$1 logfile=$2; shift 2
  rm -rf "$WORK/src" && mkdir -p "$WORK/src" && tar -xzf "$BUNDLE"/aihwkit-1.2.0.tar.gz -C "$WORK/src" || return 1
  ( cd "$WORK/src/aihwkit-1.2.0" && env "$@" PYTHONPATH="$BUILDTOOLS${PYTHONPATH:+:$PYTHONPATH}" \
      PATH="$BUILDTOOLS/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
      "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index --target "$target" . ) >"$logfile" 2>&1
}
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  log "building aihwkit (CPU core) with $JOBS jobs"
  t0=$(date +%s)
  timeout "$(left)" bash -c "$(declare -f build_aihwkit); WORK='$WORK' BUNDLE='$BUNDLE' BUILDTOOLS='$BUILDTOOLS' JOBS='$JOBS' PYTHON='$PYTHON' PYTHONPATH='$PYTHONPATH' build_aihwkit '$WORK/aihwkit_cpu' '$WORK/build_cpu.log'" \
    || fail "aihwkit CPU build failed or ran out of time after $(( $(date +%s) - t0 )) s (see $WORK/build_cpu.log)"
  R[aihwkit_cpu_build_s]=$(( $(date +%s) - t0 ))
  AIHWKIT_DIR=$WORK/aihwkit_cpu
  export PYTHONPATH="$REPO:$AIHWKIT_DIR:$SITE"
fi
"$PYTHON" -c 'from aihwkit.simulator import rpu_base; import analog_snu' 2>"$WORK/import.log" \
  || fail "aihwkit/analog_snu do not import (see $WORK/import.log)"

# --- 4: tests ------------------------------------------------------------------------------------------
log "running the CUDA tests"
t0=$(date +%s)
timeout "$(( $(left) - 200 > 60 ? $(left) - 200 : 60 ))" "$PYTHON" -m pytest -o addopts="--import-mode=importlib" -q -p no:cacheprovider -m cuda tests \
  tests/experiments/test_accelerator.py >"$WORK/pytest.log" 2>&1
R[tests_rc]=$?
R[tests_s]=$(( $(date +%s) - t0 ))
R[tests_summary]=$("$PYTHON" -c 'import json,sys; lines=[l for l in open(sys.argv[1]) if " passed" in l or " failed" in l or " skipped" in l or "error" in l]; print(json.dumps(lines[-1].strip() if lines else None))' "$WORK/pytest.log")

# --- 5: benchmark --------------------------------------------------------------------------------------
log "benchmark"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
if "$PYTHON" benchmarks/bench_accelerator.py --json ${BENCH_ARGS:-} >"$WORK/bench.json" 2>"$WORK/bench.log"; then
  R[bench]=$(tail -n 1 "$WORK/bench.json")
else
  R[bench]=null; R[bench_error]="\"see $WORK/bench.log\""
fi

# --- 6: C++ CUDA tiles, with the time left ------------------------------------------------------------
R[cuda_tiles_built]=false
if [ -n "$ARCH" ] && [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ] && [ "$(left)" -gt 30 ]; then
  budget=$(( $(left) - 20 ))
  log "building aihwkit with USE_CUDA=1 for sm_$ARCH (at most $budget s)"
  t0=$(date +%s)
  if timeout "$budget" bash -c "$(declare -f build_aihwkit); WORK='$WORK' BUNDLE='$BUNDLE' BUILDTOOLS='$BUILDTOOLS' JOBS='$JOBS' PYTHON='$PYTHON' PYTHONPATH='$PYTHONPATH' build_aihwkit '$WORK/aihwkit_cuda' '$WORK/build_cuda.log' USE_CUDA=1 CMAKE_ARGS=-DRPU_CUDA_ARCHITECTURES=$ARCH"; then
    R[cuda_tiles_built]=true
    R[cuda_tiles_step_ms]=$(PYTHONPATH="$REPO:$WORK/aihwkit_cuda:$SITE" timeout 15 "$PYTHON" - <<'EOF' 2>>"$WORK/cuda_tiles.log" || echo null
import json, time, torch
from aihwkit.simulator.configs import InferenceRPUConfig
from analog_snu.models import SNUNetwork
net = SNUNetwork([784, 256, 256, 10], threshold=0.5, rpu_config=InferenceRPUConfig()).cuda()
x = torch.bernoulli(torch.full((20, 64, 784), 0.15)).cuda(); y = torch.randint(0, 10, (64,)).cuda()
times = []
for i in range(6):
    torch.cuda.synchronize(); t = time.perf_counter()
    torch.nn.functional.cross_entropy(net(x), y).backward(); torch.cuda.synchronize()
    times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(round(sorted(times[1:])[2], 3)))
EOF
)
  fi
  R[cuda_build_s]=$(( $(date +%s) - t0 ))
else
  R[cuda_build_s]=null
fi
emit 0
