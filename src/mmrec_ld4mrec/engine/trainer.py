"""Training loop with MMRec's protocol: Adam, per-epoch validation, early stopping on
``valid_metric`` (Recall@20, compared at MMRec's 4-decimal rounding) after
``stopping_step`` epochs without improvement, test metrics taken at the best-validation
epoch, NaN loss ends training."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .dataloader import EvalDataLoader, TrainDataLoader
from .evaluator import evaluate
from .precision import apply_matmul_precision, precision_context

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int = -1
    valid: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    epochs_run: int = 0
    train_seconds: list = field(default_factory=list)
    history: list = field(default_factory=list)
    best_state: dict | None = None
    test_topk: np.ndarray | None = None
    stopped_on_nan: bool = False

    @property
    def train_seconds_per_epoch(self) -> float:
        return float(np.mean(self.train_seconds)) if self.train_seconds else 0.0


def build_optimizer(config, model) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd = float(config["learning_rate"]), float(config["weight_decay"] or 0.0)
    learners = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
                "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}
    name = str(config["learner"]).lower()
    if name not in learners:
        log.warning("learner %r is not known; using Adam (as MMRec does)", name)
    learner = learners.get(name, torch.optim.Adam)
    # One kernel over all parameters (fused Adam / AdamW), else one batched update (foreach),
    # instead of torch's default Python loop over parameters: 30x faster at LD4MRec's sizes.
    if learner in (torch.optim.Adam, torch.optim.AdamW):
        try:
            return learner(params, lr=lr, weight_decay=wd, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            pass
    return learner(params, lr=lr, weight_decay=wd, foreach=True)


class Trainer:
    def __init__(self, config, model):
        self.config, self.model = config, model
        apply_matmul_precision(config)
        self.optimizer = build_optimizer(config, model)
        factor, period = config["learning_rate_scheduler"] or [1.0, 50]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: factor ** (e / period))
        self.valid_metric = config["valid_metric"]
        self.clip = config["clip_grad_norm"]
        self.eval_step = max(1, int(config["eval_step"] or 1))  # evaluate every eval_step epochs, as MMRec
        # test metrics of every evaluated epoch, in history (a config from before the key: off)
        self.test_history = bool(config["test_history"]) if "test_history" in config else False

    def train_epoch(self, loader: TrainDataLoader) -> float | None:
        """One epoch's training as MMRec's trainer times it: the model's ``pre_epoch_processing``
        (where DiffMM trains its denoisers and MMSSL rebuilds its graphs), then the batches.
        The summed loss, or None on a NaN loss."""
        with precision_context(self.config):
            self.model.pre_epoch_processing()
        return self._train_epoch(loader)

    def _evaluate_aside(self, loader: EvalDataLoader) -> dict:
        """Metrics on ``loader`` without touching the random streams training draws from (a
        model with stochastic inference would otherwise train differently with test_history)."""
        device = torch.device(self.config["device"])
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return evaluate(self.model, loader, self.config)[0]

    def _train_epoch(self, loader: TrainDataLoader) -> float | None:
        self.model.train()
        total = 0.0
        for batch in loader:
            self.optimizer.zero_grad()
            with precision_context(self.config):
                loss = self.model.calculate_loss(batch)
            if isinstance(loss, tuple):
                loss = sum(loss)
            if torch.isnan(loss):
                return None
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip)
            self.optimizer.step()
            total += float(loss.detach())
        return total

    def fit(self, train: TrainDataLoader, valid: EvalDataLoader, test: EvalDataLoader, keep_state: bool = False) -> FitResult:
        result = FitResult()
        best, stale = -np.inf, 0
        trains = getattr(self.model, "needs_training", True)
        epochs = int(self.config["epochs"]) if trains else 1
        for epoch in range(epochs):
            loss, seconds = 0.0, 0.0
            if trains:
                start = time.perf_counter()
                loss = self.train_epoch(train)
                if loss is None:
                    log.warning("epoch %d: loss is NaN, training stopped", epoch)
                    result.stopped_on_nan = True
                    break
                self.scheduler.step()
                seconds = time.perf_counter() - start
                self.model.post_epoch_processing()  # after the scheduler and outside the clock, as MMRec
                result.train_seconds.append(seconds)
            result.epochs_run = epoch + 1
            if (epoch + 1) % self.eval_step and epoch + 1 < epochs:
                log.info("epoch %3d  loss %.6f  train %.2fs", epoch, loss, seconds)
                continue
            start = time.perf_counter()
            valid_result, _ = evaluate(self.model, valid, self.config)
            score = round(valid_result[self.valid_metric], 4)
            improved = score > best
            if improved:
                best, stale = score, 0
                test_result, topk = evaluate(self.model, test, self.config)
                result.best_epoch, result.valid, result.test, result.test_topk = epoch, valid_result, test_result, topk
                if keep_state:
                    result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            else:
                stale += 1
            entry = {"epoch": epoch, "loss": loss, "train_seconds": seconds,
                     "valid_" + self.valid_metric: valid_result[self.valid_metric]}
            if self.test_history:
                # recorded for comparison with code that picks the epoch on test; never used to select
                tested = test_result if improved else self._evaluate_aside(test)
                entry.update({f"test_{k}": v for k, v in tested.items()})
            result.history.append(entry)
            log.info("epoch %3d  loss %.6f  train %.2fs  valid %s %.4f  eval %.2fs%s", epoch, loss, seconds,
                     self.valid_metric, valid_result[self.valid_metric], time.perf_counter() - start,
                     "  *best" if improved else "")
            if stale > int(self.config["stopping_step"]):
                log.info("early stopping: no validation improvement in %d evaluations; best epoch %d",
                         stale, result.best_epoch)
                break
        return result
