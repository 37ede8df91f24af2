#!/bin/bash
# The equal-budget search behind experiments/tiktok-tuned.yaml: every model of the TikTok
# roster gets the same number of finished trials (TRIALS, default 20; pruned trials count),
# the same early stopping (MMRec's and ours: 1000 epochs at most, patience 20 evaluations on
# validation Recall@20), one seed per trial, TPE seed 0. All studies share one journal file,
# so the script resumes where it stopped and several copies of it (or a Slurm array) share the
# work: docs/tuning.md. Each study exports its best trial (on validation) as a profile that
# tiktok-tuned.yaml runs with 5 seeds.
#   DATA=D MMREC_ROOT=M bash experiments/tune-tiktok.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-D}; TRIALS=${TRIALS:-20}
OUT=experiments/results/tune/tiktok
COMMON=(-d tiktok --data-path "$DATA" --trials "$TRIALS" --results "$OUT" --storage "journal:$OUT/studies.journal"
        --set epochs=1000 stopping_step=20)
for model in LD4MRec LD4MRecPaper EASE DiffRec SimGCL MMSSL DiffMM; do
  mmrec-ld4mrec tune -m "$model" "${COMMON[@]}"
done
for model in BPR LightGCN VBPR LATTICE MGCN SLMRec BM3; do
  mmrec-ld4mrec tune -m "$model" "${COMMON[@]}" --engine mmrec --mmrec-root "${MMREC_ROOT:?set MMREC_ROOT to an MMRec checkout with our install}"
done
