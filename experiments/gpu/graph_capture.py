"""Does LD4MRec.yaml's item graph replay right under CUDA graphs? (a GPU check, check.sh)

LD4MRec trains with the item graph on compact batches and eager steps until this shows that
its sparse products, captured with static batches, give the losses of eager steps. It forces
static batches for the graph and runs seed 1 for 3 epochs with CUDA graphs on and off:
    python experiments/gpu/graph_capture.py DATA   (DATA holds the prepared tiktok/)
"""

import sys

from mmrec_ld4mrec.engine.quick_start import run
from mmrec_ld4mrec.models import ld4mrec, rows


def static_always(device_rows, static=True):
    return rows.row_batches(device_rows, static=True)


ld4mrec.row_batches = static_always
data = sys.argv[1].rstrip("/") + "/"
losses = {}
for graphs in (True, False):
    result = run("LD4MRec", "tiktok", {"data_path": data, "seed": 1, "epochs": 3, "cuda_graphs": graphs})
    losses[graphs] = [h["loss"] for h in result["history"]]
print("CUDA graphs:", losses[True])
print("eager:      ", losses[False])
print("same losses" if losses[True] == losses[False] else "LOSSES DIFFER")
