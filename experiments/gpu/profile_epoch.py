"""Where a TikTok LD4MRec epoch and a full ranking spend their time on a GPU (a diagnostic of
experiments/gpu/check.sh): epoch and full-ranking times after warm-up, whether the steps ran as
CUDA graphs, and torch.profiler tables of one epoch and one full ranking.

Usage: python3 experiments/gpu/profile_epoch.py DATA_PATH/   (DATA_PATH holds tiktok/)
"""

import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.dataloader import EvalDataLoader, TrainDataLoader
from mmrec_ld4mrec.engine.dataset import RecDataset
from mmrec_ld4mrec.engine.evaluator import rank_topk
from mmrec_ld4mrec.engine.quick_start import init_seed
from mmrec_ld4mrec.engine.trainer import Trainer
from mmrec_ld4mrec.models import get_model


def timed(fn: Callable[[], None]) -> float:
    """Wall seconds of ``fn`` with the GPU's queue drained at the end."""
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


config = Config("LD4MRec", "tiktok", {"data_path": sys.argv[1]})
for key in config["hyper_parameters"]:  # a grid left in the YAML: its first point, as bench does
    if isinstance(config[key], list):
        config[key] = config[key][0]
init_seed(1)
train_ds, _, _ = RecDataset(config).split()
loader = TrainDataLoader(config, train_ds, int(config["train_batch_size"]))
loader.pretrain_setup()
build = time.perf_counter()
model = get_model("LD4MRec")(config, loader)
torch.cuda.synchronize()
print(f"build {time.perf_counter() - build:.2f} s on {config['device']}", flush=True)
trainer = Trainer(config, model)
every_user = EvalDataLoader.all_users(config, loader.dataset, int(config["eval_batch_size"]))


def epoch() -> None:
    trainer.train_epoch(loader)


def ranking() -> None:
    rank_topk(model, every_user, 20, config)


for _ in range(3):
    epoch()
epochs, rankings = [], []
for _ in range(5):
    epochs.append(timed(epoch))
    rankings.append(timed(ranking))
print("epoch s", [round(x, 4) for x in epochs], "median", statistics.median(epochs))
graphs = trainer.graphs
print("graphs:", None if graphs is None else {"shapes": list(graphs.graphs), "failed": graphs.failed})
print("inference s", [round(x, 4) for x in rankings], "median", statistics.median(rankings), flush=True)
for name, fn in (("epoch", epoch), ("inference", ranking)):
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        wall = timed(fn)
    averages = prof.key_averages()
    kernels = sum(e.self_device_time_total for e in prof.events()
                  if e.device_type == torch.autograd.DeviceType.CUDA) / 1e6  # kernels only, no op rows
    runtime = {e.key: e.count for e in averages
               if e.key.startswith("cuda") and any(w in e.key for w in ("Sync", "Memcpy", "Launch"))}
    print(f"\n=== {name}: wall {wall:.4f} s (profiled), GPU kernel time {kernels:.4f} s; runtime calls {runtime}")
    print(averages.table(sort_by="self_device_time_total", row_limit=25))
    print(averages.table(sort_by="self_cpu_time_total", row_limit=25))
