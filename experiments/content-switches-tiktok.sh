#!/bin/bash
# Issue 17, first screen of the content-aware switches on TikTok: LD4MRec.yaml as it stood
# before it carried the content graph (item_graph_k=0, set on every run below; graph10 turns it
# back on) against the same configuration with one switch on, each on the tuning seeds 1001-1003 (apart
# from the reported seeds 1-10), the same early stopping as the comparisons (patience 20).
# Validation decides; test metrics are recorded beside it and not used. Resumable: a finished
# run's JSON is kept. The variants of the switches that did not carry (docs/findings.md) ran at
# commit 8aa543d; their results stay in experiments/results/content-switches/.
# SEEDS picks tuning seeds (default all three), so two copies can share the cores.
#   DATA=D [SEEDS="1001 1002"] bash experiments/content-switches-tiktok.sh [VARIANT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-D}
OUT=experiments/results/content-switches
mkdir -p "$OUT"
declare -A SWITCH=(
  [base]=""
  [graph10]="item_graph_k=10 item_graph_weight=0.5"
  [graph20]="item_graph_k=20 item_graph_weight=0.5"
  [graph10w1]="item_graph_k=10 item_graph_weight=1.0"
  [graph10again]="item_graph_k=10 item_graph_weight=0.5"  # graph10 on today's code (its product on the batch)
  [graph10w1again]="item_graph_k=10 item_graph_weight=1.0"  # LD4MRec.yaml as it stands, on today's code
)
VARIANTS=("$@"); [ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=(base graph10)
for seed in ${SEEDS:-1001 1002 1003}; do
  for v in "${VARIANTS[@]}"; do
    out="$OUT/tiktok-$v-s$seed.json"
    [ -f "$out" ] && continue
    # shellcheck disable=SC2086
    mmrec-ld4mrec run -m LD4MRec -d tiktok --data-path "$DATA" --set epochs=1000 stopping_step=20 seed=$seed \
        item_graph_k=0 ${SWITCH[$v]} --out "$out"
  done
done
