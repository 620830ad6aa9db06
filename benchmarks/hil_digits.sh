#!/usr/bin/env bash
# Does mixed-precision HIL training fix what plain pulsed in-memory training cannot do?
# The digits SNU 64-128-10 (task defaults: 15 epochs, batch 32, rate 10) on pcm_joshi2020, seed 0:
# HIL-mixed (Adam, the task's lr; and SGD 0.05) vs pulsed (aihwkit PCM preset unit cells, SGD 0.05).
# Usage: benchmarks/hil_digits.sh [RUN ...]   RUN: hil-mixed hil-mixed-sgd pulsed hil-mixed-sgd05 pulsed-sgd05
#   hil-reprogram (default: the first three; *-sgd05: SGD at lr 0.5, where digital SGD trains this SNU well)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=("$@"); [ ${#RUNS[@]} -eq 0 ] && RUNS=(hil-mixed hil-mixed-sgd pulsed)
A=".venv/bin/analog-snu"
OUT=bench_out/digits
COMMON=(--task digits --seed 0 --device pcm_joshi2020 --no-progress --force)
export OMP_NUM_THREADS=1
for name in "${RUNS[@]}"; do
  case $name in
    hil-mixed) extra=(--training hil --hil-scheme mixed) ;;
    hil-mixed-sgd) extra=(--training hil --hil-scheme mixed --optimizer sgd --lr 0.05) ;;
    hil-mixed-sgd05) extra=(--training hil --hil-scheme mixed --optimizer sgd --lr 0.5) ;;
    pulsed-sgd05) extra=(--training pulsed --optimizer sgd --lr 0.5) ;;
    hil-reprogram) extra=(--training hil --hil-scheme reprogram) ;;
    pulsed) extra=(--training pulsed --optimizer sgd --lr 0.05) ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  dir="$OUT/$name"
  /usr/bin/time -f "digits-$name: %e s wall" "$A" train "${COMMON[@]}" "${extra[@]}" --out "$dir"
  "$A" eval "$dir" --drift-times 0 86400 31536000
done
