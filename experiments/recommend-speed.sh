#!/bin/bash
# Serving speed on TikTok (docs/speed.md#serving-top-k-lists): LD4MRec as configs/model/LD4MRec.yaml
# ships, MGCN (MMRec's, its equal-budget profile) and EASE (its profile), each saved by `run --save`
# and served by `recommend`: every user's top 20 in batches of 4096 (throughput) and 1000
# single-user requests (p50 / p99 latency), one model after the other on one quiet machine.
# The checkpoints are taken after one training epoch (EASE has none): serving cost depends on
# the architecture and sizes, not on the weights' values.
#   DATA=D MMREC_ROOT=M OUT=serve bash experiments/recommend-speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding tiktok/}; OUT=${OUT:?set OUT to a scratch folder}
MMREC=(--engine mmrec --mmrec-root "${MMREC_ROOT:?set MMREC_ROOT to an MMRec checkout with our install}")
PROFILES=experiments/results/tune/tiktok
mkdir -p "$OUT"
[ -f "$OUT/LD4MRec/model.pt" ] || mmrec-ld4mrec run -m LD4MRec -d tiktok --data-path "$DATA" --set epochs=1 \
  --save "$OUT/LD4MRec" > "$OUT/LD4MRec.train.log"
[ -f "$OUT/EASE/model.pt" ] || mmrec-ld4mrec run -m EASE -d tiktok --data-path "$DATA" \
  --profile "$PROFILES/EASE-tiktok.best.yaml" --save "$OUT/EASE" > "$OUT/EASE.train.log"
[ -f "$OUT/MGCN/model.pt" ] || mmrec-ld4mrec run -m MGCN -d tiktok --data-path "$DATA" "${MMREC[@]}" \
  --profile "$PROFILES/MGCN-tiktok.best.yaml" --set epochs=1 --save "$OUT/MGCN" > "$OUT/MGCN.train.log"
serve() {
  local model=$1; shift
  echo "== $model"
  mmrec-ld4mrec recommend --checkpoint "$OUT/$model" -d tiktok --data-path "$DATA" -k 20 --requests 1000 \
    --out "$OUT/$model-top20.csv" "$@"
}
serve LD4MRec
serve EASE
serve MGCN "${MMREC[@]}"
