#!/usr/bin/env bash
# LSTM / GRU baselines on JSB 88-150-88 with the budget of benchmarks/hil_jsb.sh (digital, seed 0).
# Usage: benchmarks/jsb_baselines.sh EPOCHS [MODEL ...]   (MODEL lstm gru; default both)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}; shift || true
MODELS=("$@"); [ ${#MODELS[@]} -eq 0 ] && MODELS=(lstm gru)
export OMP_NUM_THREADS=1
for model in "${MODELS[@]}"; do
  /usr/bin/time -f "$model: %e s wall" .venv/bin/analog-snu train --task jsb --model "$model" --epochs "$EPOCHS" \
    --seed 0 --data /work/shared/data/jsb-chorales-quarter.json --layers 150 --eval-batch-size 16 --no-progress \
    --force --out "bench_out/jsb/$model-digital"
done
