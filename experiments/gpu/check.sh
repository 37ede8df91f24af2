#!/bin/bash
# LD4MRec.yaml as shipped (content item graph on) on a GPU in one script (an H100/H200-class
# machine, minutes): bench, a full-H&M shape, three seeds, whether CUDA-graph capture of the
# item graph gives the eager steps' losses, and a profile of one epoch. docs/speed.md's GPU
# figures were measured without the item graph (its commands say so).
#   DATA=path/holding/tiktok OUT=results/folder bash experiments/gpu/check.sh
# DATA holds the prepared TikTok (`mmrec-ld4mrec prepare diffmm --src ../shared/data/tiktok
# --out DATA/tiktok`); each step has its own time limit and writes its JSON under OUT.
DATA=${DATA:-D}; OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
M="python3 -m mmrec_ld4mrec.cli"
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
timeout 60 $M run -m LD4MRec -d synthetic --set epochs=3 --out "$OUT/smoke.json" > "$OUT/smoke.log" 2>&1 \
  || { echo SMOKE FAILED; tail -30 "$OUT/smoke.log"; exit 1; }
echo "smoke ok $(el) s"
timeout 150 $M bench -d tiktok --data-path "$DATA" -m LD4MRec,LD4MRec:cuda_graphs=false,LD4MRec:precision=bf16,DiffRec:steps=5 \
  --epochs 4 --repeats 2 --out "$OUT/bench-tiktok-h200.json" 2>&1 | grep -v "^\[bench\]" | tail -14
echo "bench done $(el) s"
timeout 240 $M bench --scale-shape 1371980x105542 -m LD4MRec --epochs 1 --repeats 1 --set eval_batch_size=1024 \
  --out "$OUT/shape-hm-full-h200.json" 2>&1 | tail -12
echo "shape done $(el) s"
for s in 1 2 3; do
  timeout 30 $M run -m LD4MRec -d tiktok --data-path "$DATA" --set seed=$s --out "$OUT/tiktok-seed$s.json" > /dev/null 2>&1
done
echo "seeds done $(el) s"
# LD4MRec.yaml's item graph under CUDA graphs (forced static batches): the losses of eager steps?
timeout 120 python3 "$(dirname "$0")/graph_capture.py" "$(realpath "$DATA")" > "$OUT/graph-capture.txt" 2>&1
tail -3 "$OUT/graph-capture.txt"; grep -h "capture failed" "$OUT/graph-capture.txt"
echo "graph check done $(el) s"
timeout 35 python3 "$(dirname "$0")/profile_epoch.py" "$(realpath "$DATA")/" > "$OUT/profile.txt" 2>&1; head -5 "$OUT/profile.txt"
echo "all done $(el) s"
