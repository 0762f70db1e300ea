#!/bin/bash
# bench/gpu_paper.py on a GPU machine lent in short calls that bring back only a few files from $OUT.
#
#   bash bench/gpu_lease.sh WAIT [gpu_paper.py run options...]
#
# The first call installs the carried wheels (.whl/, see bench/gpu_paper.py), then starts `gpu_paper.py run` in a
# session of its own, so the stages outlive the call as long as the machine is held; every call (the first too)
# waits up to WAIT seconds for the run to end and bundles what exists into $OUT (run records, logs, results and
# the smaller models; never the checkpoints). The run options are read by the first call only.
#
# Carry gpu_pack/ and .whl/ in the first call only: a later call that carries them again replaces the pack while
# the stages read it (a stage then dies on a missing image; on 2026-11-26 the teacher at epoch 44 of 50). If a
# stage died anyway, `rm /tmp/gpu_lease/started` before this script starts the run again: it resumes from the
# checkpoints.
set -u
WAIT=${1:?usage: bench/gpu_lease.sh WAIT [gpu_paper.py run options]}
shift
G=/tmp/gpu_lease
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
mkdir -p "$G"
if [ ! -f "$G/started" ]; then
  date > "$G/started"
  nvidia-smi > "$G/nvidia-smi.txt" 2>&1
  setsid nohup nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
    >> "$G/smi.csv" 2>&1 < /dev/null &
  setsid nohup python3 bench/gpu_paper.py run --out "$G" "$@" >> "$G/run.log" 2>&1 < /dev/null &
  echo $! > "$G/run.pid"
fi
end=$((SECONDS + WAIT))
while [ $SECONDS -lt $end ] && kill -0 "$(cat "$G/run.pid")" 2>/dev/null; do sleep 5; done
grep -h "^pipeline:" "$G/run.log" | grep -v "^pipeline: scored" | tail -30
grep -h "Error" "$G"/pipeline/logs/*.log 2>/dev/null | sort | uniq -c | head
cp "$G/run.log" "$OUT/run.log"
python3 bench/gpu_paper.py bundle --from "$G" --to "$OUT" --max-mb 60
