#!/usr/bin/env bash
# The SNU paper's hardware experiment at reduced budget: JSB 88-150-88 on pcm_joshi2020,
# digital vs HWA vs HIL-reprogram vs HIL-mixed vs pulsed, then test NLL after 1 day and 1 year.
# Usage: benchmarks/hil_jsb.sh MODEL EPOCHS STREAM   (MODEL snu|ssnu; STREAM a = analog/digital runs, b = mixed runs)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-snu}; EPOCHS=${2:-10}; STREAM=${3:-a}
A=".venv/bin/analog-snu"
OUT=bench_out/jsb
DATA=/work/shared/data/jsb-chorales-quarter.json
COMMON=(--task jsb --model "$MODEL" --epochs "$EPOCHS" --seed 0 --data "$DATA" --layers 150 --g leaky_relu
        --eval-batch-size 16 --no-progress --force)
export OMP_NUM_THREADS=1
run() {  # name, extra flags...
  local name=$1; shift
  local dir="$OUT/$MODEL-$name"
  /usr/bin/time -f "%e s wall" "$A" train "${COMMON[@]}" "$@" --out "$dir"
  [ "$name" = digital ] && "$A" eval "$dir" --device pcm_joshi2020 --drift-times 0 86400 31536000 \
    || "$A" eval "$dir" --drift-times 0 86400 31536000
}
if [ "$STREAM" = a ]; then
  run digital
  run hwa --device pcm_joshi2020 --training hwa
  run hil-reprogram --device pcm_joshi2020 --training hil --hil-scheme reprogram
  run pulsed --device pcm_joshi2020 --training pulsed --optimizer sgd --lr 0.05
else
  # At the task's Adam lr 0.01 the mixed scheme diverged on JSB (valid NLL 7,871 after epoch 1,
  # 2.6e10 after epoch 2); 0.001 is the largest of the two tried that trains.
  run hil-mixed --device pcm_joshi2020 --training hil --hil-scheme mixed --lr 0.001
fi
