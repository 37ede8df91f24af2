#!/bin/bash
# The protocol-2 studies that are GPU work (docs/tuning.md#on-a-gpu), as parallel workers inside
# one time limit, so that a short GPU lease advances them and what it finished comes back:
#   DATA=D MMREC_ROOT=M OUT=folder LIMIT=420 WORKERS=2 bash experiments/gpu/tune.sh tiktok:MGCN ml-1m:SimGCL ...
# Each DATASET:MODEL gets WORKERS copies of experiments/tune-DATASET.sh restricted to MODEL (so the
# budget is those scripts' own, unchanged), all at once. At LIMIT seconds (or on SIGTERM, SIGHUP or
# Ctrl-C in a terminal; a job started with & in a script ignores SIGINT)
# every worker gets SIGTERM: its running trial is marked failed and queued again with the same
# parameters; finished trials stay. Workers get up to GRACE seconds (default 90) to record that,
# then are killed. Each journal is then copied to OUT/DATASET-studies.journal with a budget line
# per study in OUT/DATASET-studies.txt, and the workers' logs to OUT/logs.tar.gz. Plan a time
# limit of LIMIT + GRACE + 30 s (under Slurm, GRACE below its KillWait). The exit code is 1 when
# a worker ended in an error of its own or a journal or its summary is missing, else 0.
# PYTHON (default python3) is the interpreter with this package and Optuna; relative DATA,
# MMREC_ROOT and OUT are read from the current folder.
# A journal only grows, so back home the returned one replaces the local one when it extends it:
#   J=experiments/results/tune/tiktok/studies.journal
#   cmp -n "$(stat -c %s $J)" $J OUT/tiktok-studies.journal && cp OUT/tiktok-studies.journal $J
# (run no local worker on that dataset meanwhile), with the stopped trials' snapshots beside it:
#   tar -xf OUT/tiktok-snapshots.tar -C experiments/results/tune/tiktok
# then the same script without the time limit, or `tune` itself, resumes the stopped trials from
# their snapshots and exports each finished study's profile.
set -uo pipefail
: "${DATA:?set DATA to the folder holding the prepared datasets}" "${MMREC_ROOT:?set MMREC_ROOT}" "${OUT:?set OUT}"
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
DATA=$(absolute "$DATA"); MMREC_ROOT=$(absolute "$MMREC_ROOT"); OUT=$(absolute "$OUT")
cd "$(dirname "$0")/../.."
LIMIT=${LIMIT:-420}; WORKERS=${WORKERS:-2}; GRACE=${GRACE:-90}
[ $# -gt 0 ] || { echo "usage: $0 DATASET:MODEL ..." >&2; exit 2; }
for pair in "$@"; do  # every pair checked before any worker starts
  dataset=${pair%%:*}; model=${pair#*:}
  [[ -f experiments/tune-$dataset.sh && -n $model && $model != "$pair" ]] \
    || { echo "$pair: expected DATASET:MODEL with experiments/tune-$dataset.sh present" >&2; exit 2; }
done
mkdir -p "$OUT/logs"

datasets=(); groups=" "; pids=(); names=()
# true while a process of the workers' process groups (one per timeout) is alive: a worker's python
# is still marking its stopped trial and queueing it again after its bash has gone
alive() {
  local f stat
  for f in /proc/[0-9]*/stat; do
    { stat=$(<"$f"); } 2>/dev/null || continue
    set -- ${stat##*) }  # state ppid pgrp ...: the fields after the command's name
    [[ $1 != Z && $groups == *" $3 "* ]] && return 0  # a zombie has ended; only its reaping is due
  done
  return 1
}
signals=0
stop_all() { local g; signals=$((signals + 1)); for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done; }
trap stop_all INT TERM HUP

for pair in "$@"; do
  dataset=${pair%%:*}; model=${pair#*:}
  [[ " ${datasets[*]} " == *" $dataset "* ]] || datasets+=("$dataset")
  for w in $(seq 1 "$WORKERS"); do
    # timeout signals its whole process group: the worker's python and any MMRec child get SIGTERM
    DATA=$DATA MMREC_ROOT=$MMREC_ROOT MODELS=$model OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
      timeout -s TERM "$LIMIT" bash "experiments/tune-$dataset.sh" > "$OUT/logs/$dataset-$model-$w.log" 2>&1 &
    groups+="$! "; pids+=("$!"); names+=("$dataset-$model-$w")
  done
done
[ "$signals" -eq 0 ] || stop_all  # a signal while workers were being started: the later ones too
errors=0
for i in "${!pids[@]}"; do
  while :; do  # a trapped signal interrupts wait; wait again, which returns the worker's own code
    seen=$signals; wait "${pids[$i]}"; code=$?
    [ "$signals" -eq "$seen" ] && break
  done
  # 0: its study reached its trials; 124: stopped at LIMIT; 143: stopped by a signal to this script
  case $code in 0|124|143) ;; *) echo "worker ${names[$i]} ended with code $code (see its log)" >&2; errors=1 ;; esac
done
for _ in $(seq 1 "$GRACE"); do alive || break; sleep 1; done
if alive; then
  echo "workers still running after ${GRACE} s of grace: killed; their trials stay 'running' until a later worker queues them again" >&2
  for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
  sleep 1
fi
for dataset in "${datasets[@]}"; do
  journal=experiments/results/tune/$dataset/studies.journal
  [ -f "$journal" ] || { echo "$journal: no journal (no worker started a study)" >&2; errors=1; continue; }
  cp "$journal" "$OUT/$dataset-studies.journal"
  # the stopped trials' training state, so that their retries, here or back home, go on from it
  snapshots=experiments/results/tune/$dataset/snapshots
  if [ -d "$snapshots" ]; then
    (cd "$(dirname "$snapshots")" && find snapshots -name '*.snapshot' -print0 | sort -z |
       { mapfile -d '' files; [ ${#files[@]} -eq 0 ] || tar -cf "$OUT/$dataset-snapshots.tar" "${files[@]}"; }) || errors=1
  fi
  "${PYTHON:-python3}" - "$journal" > "$OUT/$dataset-studies.txt" <<'EOF' || errors=1
import sys
import optuna
from mmrec_ld4mrec.study.tune import budget_row, open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = open_storage(f"journal:{sys.argv[1]}")
for summary in optuna.get_all_study_summaries(storage):
    print(summary.study_name, budget_row(optuna.load_study(study_name=summary.study_name, storage=storage)))
EOF
done
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
for dataset in "${datasets[@]}"; do cat "$OUT/$dataset-studies.txt" 2>/dev/null; done
exit "$errors"
