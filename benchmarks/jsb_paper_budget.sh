#!/usr/bin/env bash
# JSB 88-150-88 at the paper budget (40 epochs) with best-validation selection (--select best):
# digital SNU and sSNU, HWA SNU on pcm_joshi2020 (then test NLL after 0 s, 1 day, 1 year).
# Usage: benchmarks/jsb_paper_budget.sh JSB_FILE RUN   (RUN: snu-digital ssnu-digital snu-hwa ssnu-hwa)
#   JSB_FILE: the Boulanger-Lewandowski JSB Chorales file (.json or .pickle)
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1" ]; then
  echo "usage: $0 JSB_FILE RUN  (JSB_FILE: the JSB Chorales .json or .pickle)" >&2; exit 2
fi
DATA=$(realpath "$1")
cd "$(dirname "$0")/.."
RUN=$2
MODEL=${RUN%%-*}; MODE=${RUN#*-}
export OMP_NUM_THREADS=1
dir="bench_out/jsb40/$RUN"
extra=(); [ "$MODE" = hwa ] && extra=(--device pcm_joshi2020 --training hwa)
/usr/bin/time -f "$RUN: %e s wall" .venv/bin/analog-snu train --task jsb --model "$MODEL" --epochs 40 --select best \
  --seed 0 --data "$DATA" --layers 150 --g leaky_relu --eval-batch-size 16 \
  --no-progress --force "${extra[@]}" --out "$dir"
if [ "$MODE" = hwa ]; then .venv/bin/analog-snu eval "$dir" --drift-times 0 86400 31536000; fi
