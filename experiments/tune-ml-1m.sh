#!/bin/bash
# The equal-budget search behind experiments/ml-1m-tuned.yaml, as tune-tiktok.sh for TikTok:
# every model that applies to MovieLens-1M (interactions only: no multimodal baseline) gets the
# same number of finished trials (TRIALS, default 20; pruned trials count), the same early
# stopping (1000 epochs at most, patience 20 evaluations on validation Recall@20), one seed per
# trial, TPE seed 0, all in one resumable journal (docs/tuning.md).
#   DATA=D MMREC_ROOT=M bash experiments/tune-ml-1m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-D}; TRIALS=${TRIALS:-20}
OUT=experiments/results/tune/ml-1m
COMMON=(-d ml-1m --data-path "$DATA" --trials "$TRIALS" --results "$OUT" --storage "journal:$OUT/studies.journal"
        --set epochs=1000 stopping_step=20)
for model in LD4MRec LD4MRecPaper EASE DiffRec SimGCL; do
  mmrec-ld4mrec tune -m "$model" "${COMMON[@]}"
done
for model in BPR LightGCN; do
  mmrec-ld4mrec tune -m "$model" "${COMMON[@]}" --engine mmrec --mmrec-root "${MMREC_ROOT:?set MMREC_ROOT to an MMRec checkout with our install}"
done
