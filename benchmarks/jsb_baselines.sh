#!/usr/bin/env bash
# LSTM / GRU baselines on JSB 88-150-88 with the budget of benchmarks/hil_jsb.sh (digital, seed 0).
# Usage: benchmarks/jsb_baselines.sh JSB_FILE EPOCHS [MODEL ...]   (MODEL lstm gru; default both)
#   JSB_FILE: the Boulanger-Lewandowski JSB Chorales file (.json or .pickle)
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 JSB_FILE EPOCHS [MODEL ...]  (JSB_FILE: the JSB Chorales .json or .pickle)" >&2; exit 2
fi
DATA=$(realpath "$1"); shift
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}; shift || true
MODELS=("$@"); [ ${#MODELS[@]} -eq 0 ] && MODELS=(lstm gru)
export OMP_NUM_THREADS=1
for model in "${MODELS[@]}"; do
  /usr/bin/time -f "$model: %e s wall" .venv/bin/analog-snu train --task jsb --model "$model" --epochs "$EPOCHS" \
    --seed 0 --data "$DATA" --layers 150 --eval-batch-size 16 --no-progress \
    --force --out "bench_out/jsb/$model-digital"
done
