#!/bin/bash
# The equal-budget search behind experiments/tiktok-tuned.yaml (docs/tuning.md#an-equal-budget):
# every model of the TikTok roster gets the same number of finished trials (TRIALS, default 10,
# as on ML-1M; a larger budget is given to every study alike;
# pruned trials count), the same early stopping (MMRec's and ours: 1000 epochs at most,
# patience 20 evaluations on validation Recall@20), the same median pruner (5 startup trials,
# warm-up = the patience), one tuning seed per trial (1001), TPE seed 0. All studies share one
# journal file, so the script resumes where it stopped and several copies of it (or a Slurm
# array) share the work: docs/tuning.md. Each study exports its best trial (on validation) as a
# profile that tiktok-tuned.yaml runs with 5 seeds. Cheapest models first. LD4MRec searches its
# space plus the content item graph (configs/search/LD4MRec-multimodal.yaml) in the same number
# of trials.
#   DATA=D MMREC_ROOT=M [MODELS="MGCN DiffRec"] bash experiments/tune-tiktok.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-D}; TRIALS=${TRIALS:-10}
OUT=experiments/results/tune/tiktok
COMMON=(-d tiktok --data-path "$DATA" --trials "$TRIALS" --results "$OUT" --storage "journal:$OUT/studies.journal"
        --set epochs=1000 stopping_step=20)
MMREC=(--engine mmrec --mmrec-root "${MMREC_ROOT:?set MMREC_ROOT to an MMRec checkout with our install}")
# MODELS="A B" runs only those studies (each still in the order below); a name no line below
# studies is refused before any runs.
MODELS=$(echo ${MODELS:-})  # one space between names
for m in $MODELS; do grep -q "^study $m " "experiments/$(basename "$0")" || { echo "MODELS: $0 has no study of $m" >&2; exit 2; }; done
study() { [[ -z $MODELS || " $MODELS " == *" $1 "* ]] || return 0; mmrec-ld4mrec tune -m "$@"; }
study EASE "${COMMON[@]}"
study BPR "${COMMON[@]}" "${MMREC[@]}"
study VBPR "${COMMON[@]}" "${MMREC[@]}"
study LD4MRecPaper "${COMMON[@]}"
study LD4MRec "${COMMON[@]}" --space configs/search/LD4MRec-multimodal.yaml
study SimGCL "${COMMON[@]}"
study LightGCN "${COMMON[@]}" "${MMREC[@]}"
study SLMRec "${COMMON[@]}" "${MMREC[@]}"
study BM3 "${COMMON[@]}" "${MMREC[@]}"
study LATTICE "${COMMON[@]}" "${MMREC[@]}"
study MGCN "${COMMON[@]}" "${MMREC[@]}"
study MMSSL "${COMMON[@]}"
study DiffMM "${COMMON[@]}"
study DiffRec "${COMMON[@]}"
