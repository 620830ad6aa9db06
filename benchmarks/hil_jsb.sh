#!/usr/bin/env bash
# The SNU paper's hardware experiment at reduced budget: JSB 88-150-88 on pcm_joshi2020,
# digital vs HWA vs HIL-reprogram vs HIL-mixed vs pulsed, then test NLL after 0 s, 1 day and 1 year.
# Usage: benchmarks/hil_jsb.sh JSB_FILE MODEL EPOCHS [RUN ...]
#   JSB_FILE the Boulanger-Lewandowski JSB Chorales file (.json or .pickle)
#   MODEL snu|ssnu; RUN any of digital hwa hil-reprogram hil-mixed pulsed hil-mixed-sgd
#   (default: the first five, in that order; hil-mixed-sgd: SGD lr 0.5 instead of Adam).
# Every run is a normal run directory under bench_out/jsb/MODEL-RUN (resumable with --resume).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 JSB_FILE MODEL EPOCHS [RUN ...]  (JSB_FILE: the JSB Chorales .json or .pickle)" >&2; exit 2
fi
DATA=$(realpath "$1"); shift
cd "$(dirname "$0")/.."
MODEL=${1:-snu}; EPOCHS=${2:-10}; shift 2 || true
RUNS=("$@"); [ ${#RUNS[@]} -eq 0 ] && RUNS=(digital hwa hil-reprogram hil-mixed pulsed)
A=".venv/bin/analog-snu"
OUT=bench_out/jsb
COMMON=(--task jsb --model "$MODEL" --epochs "$EPOCHS" --seed 0 --data "$DATA" --layers 150 --g leaky_relu
        --eval-batch-size 16 --no-progress --force)
export OMP_NUM_THREADS=1
for name in "${RUNS[@]}"; do
  case $name in
    digital) extra=() ;;
    hwa) extra=(--device pcm_joshi2020 --training hwa) ;;
    hil-reprogram) extra=(--device pcm_joshi2020 --training hil --hil-scheme reprogram) ;;
    hil-mixed) extra=(--device pcm_joshi2020 --training hil --hil-scheme mixed) ;;
    hil-mixed-sgd) extra=(--device pcm_joshi2020 --training hil --hil-scheme mixed --optimizer sgd --lr 0.5) ;;
    pulsed) extra=(--device pcm_joshi2020 --training pulsed --optimizer sgd --lr 0.05) ;;
    *) echo "unknown run $name (digital hwa hil-reprogram hil-mixed pulsed hil-mixed-sgd)" >&2; exit 2 ;;
  esac
  dir="$OUT/$MODEL-$name"
  /usr/bin/time -f "$MODEL-$name: %e s wall" "$A" train "${COMMON[@]}" "${extra[@]}" --out "$dir"
  if [ "$name" = digital ]; then
    "$A" eval "$dir" --device pcm_joshi2020 --drift-times 0 86400 31536000
  else
    "$A" eval "$dir" --drift-times 0 86400 31536000
  fi
done
