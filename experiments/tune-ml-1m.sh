#!/bin/bash
# The equal-budget search behind experiments/ml-1m-tuned.yaml (docs/tuning.md#an-equal-budget): every
# model that applies to MovieLens-1M (interactions only: no multimodal baseline) gets the same
# number of finished trials (TRIALS, default 10 on the 2-core CPU; pruned trials count), the same
# early stopping (1000 epochs at most, patience 20 evaluations on validation Recall@20), the same
# median pruner (5 startup trials, warm-up = the patience), one tuning seed per trial (1001), TPE
# seed 0, all in one resumable journal. Cheapest models first, so finished rows accumulate.
# Start it several times at once: every copy is a worker on the same studies (docs/tuning.md).
#   DATA=D MMREC_ROOT=M [MODELS="SimGCL"] bash experiments/tune-ml-1m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-D}; TRIALS=${TRIALS:-10}
OUT=experiments/results/tune/ml-1m
COMMON=(-d ml-1m --data-path "$DATA" --trials "$TRIALS" --results "$OUT" --storage "journal:$OUT/studies.journal"
        --set epochs=1000 stopping_step=20)
MMREC=(--engine mmrec --mmrec-root "${MMREC_ROOT:?set MMREC_ROOT to an MMRec checkout with our install}")
# MODELS="A B" runs only those studies (each still in the order below); a name no line below
# studies is refused before any runs.
MODELS=$(echo ${MODELS:-})  # one space between names
for m in $MODELS; do grep -q "^study $m " "experiments/$(basename "$0")" || { echo "MODELS: $0 has no study of $m" >&2; exit 2; }; done
study() { [[ -z $MODELS || " $MODELS " == *" $1 "* ]] || return 0; mmrec-ld4mrec tune -m "$@"; }
study EASE "${COMMON[@]}"
study BPR "${COMMON[@]}" "${MMREC[@]}"
study LD4MRecPaper "${COMMON[@]}"
study LD4MRec "${COMMON[@]}"
study SimGCL "${COMMON[@]}"
study DiffRec "${COMMON[@]}"
study LightGCN "${COMMON[@]}" "${MMREC[@]}"
