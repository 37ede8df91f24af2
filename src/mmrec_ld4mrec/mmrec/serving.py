"""``recommend --engine mmrec``: serve a checkpoint that ``run --engine mmrec --save`` wrote,
with MMRec's own model class, inside the checkout (a child process whose working directory is
``<mmrec_root>/src``, as the driver's). The ranking, the timing and the output are the
standalone engine's (``engine.recommend``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..engine.checkpoint import checkpoint_model, checkpoint_path, dataset_fingerprint, load_checkpoint, load_state
from ..engine.recommend import users_file
from ..errors import UserInputError
from .driver import child_environment, child_main
from .overlay import check_checkout

MACHINE_KEYS = {"data_path", "device", "gpu_id", "use_gpu", "eval_batch_size", "model", "dataset"}


def _child(request: dict) -> dict:  # runs inside <mmrec_root>/src
    from ..engine.dataloader import interaction_matrix
    from ..engine.quick_start import feature_paths
    from ..engine.recommend import serve_to_file
    from .cache_files import guard_torch_files
    from .shims import apply as apply_shims

    apply_shims()
    guard_torch_files(torch)
    from utils.configurator import Config  # MMRec's, importable only here (see driver._child)
    from utils.dataloader import TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model as mmrec_model
    from utils.utils import init_seed

    path = Path(request["checkpoint"])
    stored = torch.load(path, map_location="cpu", weights_only=True)["config"]
    settings = {k: v for k, v in stored.items() if k not in MACHINE_KEYS}
    if request.get("data_path"):
        settings["data_path"] = request["data_path"]
    config = Config(request["model"], request["dataset"], settings)
    dataset = RecDataset(config)
    payload = load_checkpoint(path, dataset_fingerprint(dataset, feature_paths(config)), request["dataset"],
                              request["model"])
    train_ds, _, _ = dataset.split()
    for part in (dataset, train_ds):
        str(part)  # sets inter_num, which MMRec's dataloaders read (as driver._child)
    init_seed(config["seed"])
    train = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"], shuffle=False)
    model = mmrec_model(config["model"])(config, train).to(config["device"])
    load_state(model, payload["state_dict"], path, request["model"])
    return serve_to_file(model, interaction_matrix(train_ds, "csr"), Path(config["data_path"]) / request["dataset"],
                         request["users"], request["k"], request["batch_size"], request["requests"],
                         Path(request["out"]), config["device"])


def recommend_in_mmrec(mmrec_root: str | Path, checkpoint: str | Path, dataset: str, data_path: str | None,
                       users: str | None, k: int, batch_size: int, requests: int, out: Path) -> dict:
    """Serve an MMRec-engine checkpoint inside ``mmrec_root``; returns the timing summary."""
    root = check_checkout(Path(mmrec_root))
    path = checkpoint_path(Path(checkpoint)).resolve()
    model, engine, trained_on = checkpoint_model(path)
    if engine != "mmrec":
        raise UserInputError(f"{path}: trained by the standalone engine ({model}); serve it without --engine mmrec")
    if trained_on != dataset:  # its stored config holds that dataset's files: refused before MMRec reads them
        raise UserInputError(f"{path}: refusing to load: it was trained on dataset {str(trained_on)[:80]!r}, "
                             f"not {dataset!r}")
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "summary.json"
        request = {"model": model, "dataset": dataset, "checkpoint": str(path), "data_path": data_path,
                   "users": str(users_file(users).resolve()) if users and users_file(users) else users, "k": k,
                   "batch_size": batch_size, "requests": requests, "out": str(Path(out).resolve()),
                   "summary": str(summary_file)}
        proc = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.mmrec.serving", json.dumps(request)],
                              cwd=root / "src", env=child_environment(),
                              capture_output=True, text=True)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        if proc.returncode == 2 and errors:
            raise UserInputError(errors[-1][len("error: "):])
        if proc.returncode != 0 or not summary_file.is_file():
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise UserInputError(f"serving {model} in {root} failed (exit {proc.returncode}): {tail[0][:300]}")
        return json.loads(summary_file.read_text())


if __name__ == "__main__":
    child_main(_child, "summary")
