#!/bin/bash
# Distillation rows side by side on one lent GPU, for a lease of a few minutes: the published S-HRNet-300W
# distilled from a frozen ONNX teacher (default: the served model) with each part of triple KD on or off.
#
#   bash bench/gpu_kd_rows.sh DEADLINE_S DEVICE [ROW...]     # from the repository root; $OUT receives the bundle
#
# Every row is one `sdhrnet distill` on the packed 300W data (bench/gpu_paper.py pack), runs recorded offline in
# $G/runs (SDHRNET_OFFLINE_RUNS: no MLflow there). At DEADLINE_S seconds the rows still training are stopped (a row
# already writing its model gets GRACE seconds more), so the bundle comes back inside the lease; a stopped row
# leaves its epoch metrics and a checkpoint, and the same command on the same machine resumes it. Here, afterwards:
#   cat DIR/bundle.tgz.* | tar xz -C X && sdhrnet import-runs X/runs     # then bench/results_table.py --row ...
# Carry gpu_pack/ and .whl/ (pydantic and pydantic-settings as wheels for the GPU machine's Python).
# Rows (NAME: distill options); EPOCHS / STEPS / TEACHER / FROM / PREFIX / WORKERS / THREADS / SEED / GRACE from the environment, and EXTRA:
# more distill options for every row (e.g. "--set max_train_samples=32" for a smoke test on the CPU).
set -u
DEADLINE=${1:?usage: bench/gpu_kd_rows.sh DEADLINE_S DEVICE [ROW...]}
DEVICE=${2:?usage: bench/gpu_kd_rows.sh DEADLINE_S DEVICE [ROW...]}
shift 2
EPOCHS=${EPOCHS:-40}
STEPS=${STEPS:-[28,36]}
TEACHER=${TEACHER:-sdhrnet/default_model}
FROM=${FROM:-s-hrnet-300w}  # what the students start from (sdhrnet/default_model: the served model, trained on)
PREFIX=${PREFIX:-300w-cpu-published-awing}  # run names: PREFIX-EPOCHSep-ROW-seedSEED-DEVICE
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}
GRACE=${GRACE:-60}
OUT=${OUT:-/tmp/gpu_kd_rows_out}
G=${G:-/tmp/gpu_kd_rows}
# the rows as the eighth to eleventh rounds measured them, teacher term at lambda 1 (the cpu preset's is now 4, the
# thirteenth round's triple-teacher4)
T1="--teacher $TEACHER --set lambda_teacher=1"
declare -A ROWS=(
  [kd-off]="--set use_teacher=false --set use_peer=false --set masked_inputs=false"
  [teacher]="$T1 --set use_peer=false --set masked_inputs=false"
  [teacher-peer]="$T1 --set masked_inputs=false --set peer_loss=heatmap --set lambda_peer=1"
  [teacher-masks]="$T1 --set use_peer=false"
  [peer-masks]="--set use_teacher=false --set peer_loss=heatmap --set lambda_peer=1"
  [triple]="$T1 --set peer_loss=heatmap --set lambda_peer=1"
  [triple-peer0.25]="$T1 --set peer_loss=heatmap --set lambda_peer=0.25"
  [triple-teacher4]="--teacher $TEACHER --set peer_loss=heatmap --set lambda_peer=0.25 --set lambda_teacher=4"
  [triple-teacher4-flip]="--teacher $TEACHER --set teacher_flip=true --set peer_loss=heatmap --set lambda_peer=0.25 --set lambda_teacher=4"
)
[ $# -gt 0 ] || set -- kd-off teacher teacher-peer teacher-masks triple
for row in "$@"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "unknown row $row; rows: ${!ROWS[*]}" >&2; exit 2; }
done
mkdir -p "$G/logs" "$OUT"
if [ -d .whl ] && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --find-links .whl --target /tmp/site pydantic pydantic-settings python-dotenv \
    || exit 3
fi
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 SDHRNET_OFFLINE_RUNS="$G/runs" SDHRNET_HOME="$G/home" \
  SDHRNET_THREADS="$THREADS"
unset MLFLOW_TRACKING_URI
nvidia-smi > "$G/logs/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$G/logs/smi.csv" 2>&1 &
smi=$!
pids=()
for row in "$@"; do
  name="${PREFIX}-${EPOCHS}ep-${row}-seed${SEED}-${DEVICE%%:*}"
  # shellcheck disable=SC2086  # the row's options are words
  python3 -m sdhrnet.cli distill --dataset 300w --data-root gpu_pack/300w --preset cpu --from-slim "$FROM" \
    ${ROWS[$row]} --set epochs="$EPOCHS" --set lr_steps="$STEPS" --set seed="$SEED" --set num_workers="$WORKERS" \
    $EXTRA --device "$DEVICE" --run-name "$name" --json >> "$G/logs/$row.json" 2>> "$G/logs/$row.log" &
  pids+=($!)
done
end=$((SECONDS + DEADLINE))
while [ $SECONDS -lt $end ]; do
  running=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
  [ $running = 1 ] || break
  sleep 5
done
# a row past its last epoch is exporting and logging its model: stopping it then loses the model (on 2026-11-26 the
# KD-off row, stopped 4 s after its last epoch beside four training rows), so the rows still training are stopped
# first and the rest share GRACE more seconds (logs are appended to, so a resumed row counts its earlier epochs)
trained() { grep -q "epoch $EPOCHS/$EPOCHS done" "$G/logs/$1.log"; }
i=0
finishing=()
for row in "$@"; do
  p=${pids[$i]}; i=$((i + 1))
  kill -0 "$p" 2>/dev/null || continue
  if trained "$row"; then finishing+=("$p"); else kill "$p" 2>/dev/null; fi
done
grace_end=$((SECONDS + GRACE))
for p in "${finishing[@]}"; do
  while [ $SECONDS -lt $grace_end ] && kill -0 "$p" 2>/dev/null; do sleep 2; done
  kill "$p" 2>/dev/null
done
sleep 3
kill "$smi" 2>/dev/null
for row in "$@"; do
  echo "$row: $(grep -c 'done:' "$G/logs/$row.log") epochs logged; $(grep 'done:' "$G/logs/$row.log" | tail -1 | \
    grep -o -E 'epoch [0-9]+/[0-9]+|epoch_seconds=[0-9.]+|val_nme=[0-9.]+' | paste -s -d ' ')"
  grep -h -m3 -E "Error|Traceback" "$G/logs/$row.log"
done
# the run's model (artifacts/model_files, its better student) comes back; the per-student copies would not fit
rm -rf "$G"/runs/*/artifacts/models
python3 bench/gpu_paper.py bundle --from "$G" --to "$OUT"
