"""Run a model through MMRec's own pipeline (its Config, RecDataset, dataloaders, Trainer and
TopKEvaluator) with the shims applied, and report the same JSON as the standalone engine.

It follows MMRec's ``quick_start`` step by step but selects the grid point on
**validation** (MMRec's summary selects on test). The run happens in a child process whose
working directory is ``<mmrec_root>/src``, as ``python main.py`` would.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..engine.config import read_yaml
from ..engine.metrics import DISPLAY
from ..errors import UserInputError
from .overlay import check_checkout


def _display(metrics: dict) -> dict:
    out = {}
    for key, value in (metrics or {}).items():
        name, _, k = key.partition("@")
        out[f"{DISPLAY.get(name.lower(), name)}@{k}"] = float(value)
    return out


def _child(request: dict) -> dict:  # runs inside <mmrec_root>/src
    from mmrec_ld4mrec.mmrec.shims import apply

    apply()
    import numpy as np
    import torch
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model, get_trainer, init_seed

    from mmrec_ld4mrec.engine.quick_start import peak_rss_mb

    config = Config(request["model"], request["dataset"], request["config"])
    init_logger(config)
    dataset = RecDataset(config)
    train_ds, valid_ds, test_ds = dataset.split()
    log = logging.getLogger()
    for part in (dataset, train_ds, valid_ds, test_ds):
        log.info(str(part))  # also sets inter_num, which MMRec's dataloaders read
    train = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"], shuffle=True)
    valid = EvalDataLoader(config, valid_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])
    test = EvalDataLoader(config, test_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])
    keys = list(config["hyper_parameters"])
    if "seed" not in keys:
        keys = ["seed"] + keys
    axes = [v if isinstance(v, list) else [v] for v in (config[k] for k in keys)]
    metric = config["valid_metric"].lower()
    runs = []
    for idx, combo in enumerate(itertools.product(*axes)):
        for key, value in zip(keys, combo):
            config[key] = value
        init_seed(config["seed"])
        train.pretrain_setup()
        model = get_model(config["model"])(config, train).to(config["device"])
        trainer = get_trainer()(config, model, False)
        seconds = []
        train_epoch = trainer._train_epoch

        def timed(*args, _inner=train_epoch, seconds=seconds, **kwargs):
            start = time.perf_counter()
            out = _inner(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            return out

        trainer._train_epoch = timed
        _, best_valid, best_test = trainer.fit(train, valid_data=valid, test_data=test, saved=False)
        start = time.perf_counter()
        with torch.no_grad():
            model.eval()
            for first in range(0, model.n_users, int(config["eval_batch_size"])):
                users = torch.arange(first, min(first + int(config["eval_batch_size"]), model.n_users),
                                     device=config["device"])
                torch.topk(model.full_sort_predict([users]), max(config["topk"]), dim=-1)
        inference = time.perf_counter() - start
        runs.append({"idx": idx, "point": dict(zip(keys, combo)), "valid": _display(best_valid),
                     "test": _display(best_test), "best_epoch": len(seconds) - 1 - trainer.cur_step,
                     "epochs_run": len(seconds), "train_seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
                     "inference_seconds": inference})
    valid_key = next(iter(_display({metric: 0})))
    best = max(runs, key=lambda r: r["valid"].get(valid_key, -1.0))
    final = {k: (str(v) if isinstance(v, torch.device) else v) for k, v in config.final_config_dict.items()}
    final.update(best["point"])
    return {
        "model": request["model"], "dataset": request["dataset"], "engine": "mmrec", "config": final,
        "hyper_parameters": best["point"], "best_epoch": best["best_epoch"], "epochs_run": best["epochs_run"],
        "valid": best["valid"], "test": best["test"], "train_seconds_per_epoch": best["train_seconds_per_epoch"],
        "inference_seconds": best["inference_seconds"], "peak_rss_mb": peak_rss_mb(),
        "selection": f"best {config['valid_metric']} on validation across {len(runs)} grid point(s)",
        "grid": [{k: r[k] for k in ("point", "best_epoch", "valid", "test")} for r in runs],
    }


def dataset_settings(root: Path, dataset: str, config: dict) -> dict:
    """The dataset's keys for MMRec's ``Config``. MMRec reads only ``src/configs/dataset/NAME.yaml``;
    where that does not exist, the ``NAME.yaml`` that ``prepare`` wrote beside the data is handed
    over as config entries (below the run's own overrides), so a prepared dataset runs without
    copying anything into the checkout. Neither: refused in one line, before MMRec starts."""
    own = root / "src" / "configs" / "dataset" / f"{dataset}.yaml"
    if own.is_file():
        return {}
    data_path = config.get("data_path") or read_yaml(root / "src" / "configs" / "overall.yaml").get("data_path") or ""
    folder = Path(str(data_path))
    if not folder.is_absolute():
        folder = root / "src" / folder  # MMRec resolves data_path from its src folder
    prepared = folder / dataset / f"{dataset}.yaml"
    if not prepared.is_file():
        raise UserInputError(f"no dataset config for {dataset!r}: neither {own} nor {prepared} exists "
                             "(prepare the dataset with `mmrec-ld4mrec prepare`, or pass --data-path to where it is)")
    settings = read_yaml(prepared)
    settings.pop("hyper_parameters", None)
    return settings


def run_in_mmrec(mmrec_root: str | Path, model: str, dataset: str, config: dict | None = None,
                 timeout: float | None = None) -> dict:
    """Run ``model`` on ``dataset`` inside the checkout; returns the result dict."""
    root = check_checkout(Path(mmrec_root))
    config = {**dataset_settings(root, dataset, dict(config or {})), **(config or {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        request = {"model": model, "dataset": dataset, "config": config, "out": str(out)}
        env = dict(os.environ)
        env.pop("MMREC_LD4MREC_STANDALONE", None)
        proc = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.mmrec.driver", json.dumps(request)],
                              cwd=root / "src", env=env, timeout=timeout, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise UserInputError(f"MMRec run of {model} on {dataset} failed (exit {proc.returncode}); see its log above")
        return json.loads(out.read_text())


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    req = json.loads(sys.argv[1])
    result = _child(req)
    Path(req["out"]).write_text(json.dumps(result, indent=2, default=float))
