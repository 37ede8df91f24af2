#!/bin/bash
# The protocol-2 studies that are GPU work (docs/tuning.md#on-a-gpu), as parallel workers inside
# one time limit, so that a short GPU lease advances them and what it finished comes back:
#   DATA=D MMREC_ROOT=M OUT=folder LIMIT=480 WORKERS=2 bash experiments/gpu/tune.sh tiktok:MGCN ml-1m:SimGCL ...
# Each DATASET:MODEL gets WORKERS copies of experiments/tune-DATASET.sh restricted to MODEL (so the
# budget is those scripts' own, unchanged), all at once. At LIMIT seconds every worker gets
# SIGTERM: its running trial is marked failed and queued again with the same parameters; finished
# trials stay. Then each journal is copied to OUT/DATASET-studies.journal with a budget line per
# study in OUT/DATASET-studies.txt, and each worker's log to OUT/logs.tar.gz.
# PYTHON (default python3) is the interpreter with this package and Optuna.
# A journal only grows, so back home the returned one replaces the local one when it extends it:
#   J=experiments/results/tune/tiktok/studies.journal
#   cmp -n "$(stat -c %s $J)" $J OUT/tiktok-studies.journal && cp OUT/tiktok-studies.journal $J
# (run no local worker on that dataset meanwhile), then the same script without the time limit,
# or `tune` itself, exports each finished study's profile.
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${DATA:?set DATA to the folder holding the prepared datasets}" "${MMREC_ROOT:?set MMREC_ROOT}" "${OUT:?set OUT}"
LIMIT=${LIMIT:-480}; WORKERS=${WORKERS:-2}
[ $# -gt 0 ] || { echo "usage: $0 DATASET:MODEL ..." >&2; exit 2; }
mkdir -p "$OUT/logs"
datasets=(); groups=" "
# true while a process of the workers' process groups (one per timeout) is alive: a worker's python
# is still marking its stopped trial and queueing it again after its bash has gone
alive() {
  local f stat
  for f in /proc/[0-9]*/stat; do
    stat=$(<"$f") 2>/dev/null || continue
    set -- ${stat##*) }  # state ppid pgrp ...: the fields after the command's name
    [[ $groups == *" $3 "* ]] && return 0
  done
  return 1
}
for pair in "$@"; do
  dataset=${pair%%:*}; model=${pair#*:}
  script=experiments/tune-$dataset.sh
  [[ -f $script && -n $model && $model != "$pair" ]] || { echo "$pair: expected DATASET:MODEL with $script present" >&2; exit 2; }
  [[ " ${datasets[*]} " == *" $dataset "* ]] || datasets+=("$dataset")
  for w in $(seq 1 "$WORKERS"); do
    # timeout signals its whole process group: the worker's python and any MMRec child get SIGTERM
    DATA=$DATA MMREC_ROOT=$MMREC_ROOT MODELS=$model OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
      timeout -s TERM -k 60 "$LIMIT" bash "$script" > "$OUT/logs/$dataset-$model-$w.log" 2>&1 &
    groups+="$! "
  done
done
wait
for _ in $(seq 1 90); do alive || break; sleep 1; done
for dataset in "${datasets[@]}"; do
  journal=experiments/results/tune/$dataset/studies.journal
  cp "$journal" "$OUT/$dataset-studies.journal"
  "${PYTHON:-python3}" - "$journal" > "$OUT/$dataset-studies.txt" <<'EOF'
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
cat "$OUT"/*-studies.txt
