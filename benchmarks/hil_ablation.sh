#!/usr/bin/env bash
# What each PCM nonideality costs hardware-in-the-loop training: JSB 88-150-88 on pcm_joshi2020,
# HIL reprogram, seed 0, with one nonideality switched off (or one chip setting changed) per run,
# against the full chip and the digital network. Prints the test NLL table at the end.
# Usage: benchmarks/hil_ablation.sh JSB_FILE [MODEL] [EPOCHS] [RUN ...]   (MODEL snu|ssnu, default ssnu; EPOCHS default 10;
#        RUN: any of the names below, default all)
#   ../shared/tools/one-at-a-time benchmarks/hil_ablation.sh JSB_FILE ssnu 10
# Every run is a run directory $HIL_ABLATION_OUT/MODEL-EPOCHS/NAME (default bench_out/hil_ablation): a finished
# one is kept, an interrupted one resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: benchmarks/hil_ablation.sh JSB_FILE [MODEL] [EPOCHS]}
MODEL=${2:-ssnu}; EPOCHS=${3:-10}; shift $(( $# < 3 ? $# : 3 ))
A=.venv/bin/analog-snu
OUT=${HIL_ABLATION_OUT:-bench_out/hil_ablation}/$MODEL-$EPOCHS
COMMON=(--task jsb --model "$MODEL" --epochs "$EPOCHS" --seed 0 --data "$DATA" --layers 150 --g leaky_relu
        --eval-batch-size 16 --no-progress)
HIL=(--device pcm_joshi2020 --training hil)
declare -A RUNS=(
  [digital]=""
  [full_chip]="${HIL[*]}"
  [no_programming_noise]="${HIL[*]} --set device.programming.enabled=false"
  [no_read_noise]="${HIL[*]} --set device.read_noise.enabled=false"
  [no_drift]="${HIL[*]} --set device.drift.enabled=false"
  [ideal_periphery]="${HIL[*]} --set device.periphery.enabled=false"
  [no_dac_adc]="${HIL[*]} --set device.periphery.dac_bits=0 --set device.periphery.adc_bits=0"
  [no_output_noise]="${HIL[*]} --set device.periphery.out_noise=0.0"
  [no_weight_scaling]="${HIL[*]} --set device.periphery.weight_scaling_omega=0.0"
  [headroom_1]="${HIL[*]} --headroom 1.0"
  [headroom_3]="${HIL[*]} --headroom 3.0"
  [program_every_10]="${HIL[*]} --program-every 10"
  [chip_seconds_0]="${HIL[*]} --chip-seconds-per-batch 0"
  [chip_seconds_100]="${HIL[*]} --chip-seconds-per-batch 100"
)
ORDER=(digital full_chip no_programming_noise no_read_noise no_drift ideal_periphery no_dac_adc no_output_noise
       no_weight_scaling headroom_1 headroom_3 program_every_10 chip_seconds_0 chip_seconds_100)
[ $# -gt 0 ] && ORDER=("$@")
mkdir -p "$OUT"
for name in "${ORDER[@]}"; do
  dir="$OUT/$name"
  if [ -f "$dir/final.json" ]; then continue; fi
  if [ -f "$dir/checkpoint.safetensors" ]; then
    "$A" train --resume "$dir" --no-progress
  else
    # shellcheck disable=SC2086  # the flags of a run are words
    "$A" train "${COMMON[@]}" ${RUNS[$name]} --out "$dir" --force
  fi
done
.venv/bin/python - "$OUT" "${ORDER[@]}" <<'PY'
import json, sys
from pathlib import Path
out, names = Path(sys.argv[1]), sys.argv[2:]
print("| run | test NLL (best-valid epoch = last here) | per sequence, no first frame |")
print("|---|---|---|")
for name in names:
    final = json.loads((out / name / "final.json").read_text())
    print(f"| {name} | {final['test_nll']:.4f} | {final.get('test_nll_per_sequence_no_first', float('nan')):.4f} |")
PY
