#!/bin/bash
# bench/gpu_paper.py on a GPU machine lent in short calls that bring back only a few files from $OUT.
#
#   bash bench/gpu_lease.sh WAIT [gpu_paper.py run options...]
#
# A call starts `gpu_paper.py run` in a session of its own when none is going (the first call, or after the run
# ended or died: it then resumes from the checkpoints), so the stages outlive the call as long as the machine is
# held. Every call waits up to WAIT seconds for the run to end and bundles what exists into $OUT (run records,
# logs, results and the smaller model folders; never the checkpoints). The carried wheels (.whl/, see
# bench/gpu_paper.py) are installed once.
#
# Carry gpu_pack/ and .whl/ in the first call only: a later call that carries them again replaces the pack while
# the stages read it (a stage then dies on a missing image; on 2026-11-26 the teacher at epoch 44 of 50).
set -u
WAIT=${1:?usage: bench/gpu_lease.sh WAIT [gpu_paper.py run options]}
shift
G=/tmp/gpu_lease
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
mkdir -p "$G"
alive() { [ -f "$G/$1.pid" ] && kill -0 "$(cat "$G/$1.pid")" 2>/dev/null; }
# $! is the started process itself only without job control (a script's default): under `set -m` setsid forks
if ! alive smi; then
  setsid nohup nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
    >> "$G/smi.csv" 2>&1 < /dev/null &
  echo $! > "$G/smi.pid"
fi
# start unless a run is going or one finished well
should_start() { if [ -f "$G/run.rc" ]; then [ "$(cat "$G/run.rc")" != 0 ]; else ! alive run; fi; }
if should_start; then
  rm -f "$G/run.rc"
  nvidia-smi >> "$G/nvidia-smi.txt" 2>&1
  # the exit code lands in run.rc, which also tells a later call that the run ended (a finished process that
  # nobody reaps would still answer kill -0)
  setsid nohup sh -c 'python3 bench/gpu_paper.py run --out "$0" "$@"; echo $? > "$0/run.rc"' "$G" "$@" \
    >> "$G/run.log" 2>&1 < /dev/null &
  echo $! > "$G/run.pid"
fi
end=$((SECONDS + WAIT))
while [ $SECONDS -lt $end ] && [ ! -f "$G/run.rc" ]; do sleep 5; done
grep -h "^pipeline:" "$G/run.log" | grep -v "^pipeline: scored" | tail -30
grep -h "Error" "$G"/pipeline/logs/*.log 2>/dev/null | sort | uniq -c | head
[ -f "$G/run.rc" ] && echo "gpu_paper run exit code $(cat "$G/run.rc")"
cp "$G/run.log" "$OUT/run.log"
python3 bench/gpu_paper.py bundle --from "$G" --to "$OUT"
