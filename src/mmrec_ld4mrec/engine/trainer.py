"""Training loop with MMRec's protocol: Adam, per-epoch validation, early stopping on
``valid_metric`` (Recall@20, compared at MMRec's 4-decimal rounding) after
``stopping_step`` epochs without improvement, test metrics taken at the best-validation
epoch, NaN loss ends training."""

from __future__ import annotations

import copy
import logging
import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .dataloader import EvalDataLoader, TrainDataLoader
from .evaluator import evaluate
from .precision import apply_matmul_precision, precision_context
from .snapshot import (
    Snapshot,
    counter_problem,
    load_model_training_state,
    loader_problem,
    metrics_problem,
    model_training_state,
    rng_state,
    seconds_problem,
    set_rng_state,
    weights_misfit,
)

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
    resumed_from_epoch: int | None = None  # where a run stopped part-way went on from its snapshot

    @property
    def train_seconds_per_epoch(self) -> float:
        return float(np.mean(self.train_seconds)) if self.train_seconds else 0.0


def build_optimizer(config, model, capturable: bool = False) -> torch.optim.Optimizer:
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
            return learner(params, lr=lr, weight_decay=wd, fused=True, **({"capturable": True} if capturable else {}))
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            pass
    return learner(params, lr=lr, weight_decay=wd, foreach=True)


# what _snapshot_state writes and _restore reads
SNAPSHOT_KEYS = ("next_epoch", "best", "stale", "fit", "evaluations", "model", "model_training_state", "optimizer",
                 "scheduler", "loader", "rng")


class Trainer:
    def __init__(self, config, model, on_evaluation: Callable[[int, dict], None] | None = None):
        """``on_evaluation(epoch, valid_metrics)`` is called after each validation (``tune``
        reports to its pruner there, and may stop the run by raising)."""
        self.config, self.model = config, model
        self.on_evaluation = on_evaluation
        apply_matmul_precision(config)
        factor, period = config["learning_rate_scheduler"] or [1.0, 50]
        use_graphs = CudaGraphSteps.applies(config, model, constant_lr=float(factor) == 1.0)
        self.optimizer = build_optimizer(config, model, capturable=use_graphs)
        self.graphs = CudaGraphSteps(self) if use_graphs else None
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
        """The batches of one epoch. The loss is summed on the model's device and read once at
        the end, so a GPU step never waits for the host; a NaN loss therefore ends training at
        the end of its epoch rather than at its batch (MMRec stops at the batch). Either way
        the epoch is never evaluated: the result keeps the metrics (and, with ``keep_state``,
        the state) of the best earlier epoch; the parameters left in the model are not used."""
        self.model.train()
        total = None
        for batch in loader:
            loss = self.graphs.step(batch) if self.graphs is not None else self.step(batch)
            total = loss if total is None else total + loss
        if total is None:
            return 0.0
        total = float(total)
        return None if math.isnan(total) else total

    def step(self, batch, autocast_cache: bool = True) -> torch.Tensor:
        """One optimisation step, launched op by op (or recorded, inside a CUDA-graph capture,
        which needs ``autocast_cache=False``); the batch's loss (detached)."""
        self.optimizer.zero_grad()  # gradients set to None: a captured backward allocates its own
        with precision_context(self.config, cache=autocast_cache):
            loss = self.model.calculate_loss(batch)
        if isinstance(loss, tuple):
            loss = sum(loss)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip)
        self.optimizer.step()
        return loss.detach()

    def fit(self, train: TrainDataLoader, valid: EvalDataLoader, test: EvalDataLoader, keep_state: bool = False,
            snapshot: Snapshot | None = None) -> FitResult:
        """Train with early stopping; with ``snapshot``, resume from its file when there is one
        (its evaluations are passed to ``on_evaluation`` again, in order) and save to it between
        epochs, at most every ``snapshot.every_seconds``."""
        result = FitResult()
        best, stale, first = -np.inf, 0, 0
        trains = getattr(self.model, "needs_training", True)
        epochs = int(self.config["epochs"]) if trains else 1
        evaluations: list[list] = []  # [epoch, validation metrics] as on_evaluation got them, for a resume
        saved = None
        if snapshot is not None and trains:
            saved = snapshot.load(self.model, self.optimizer, SNAPSHOT_KEYS,
                                  check=lambda payload: self._snapshot_problem(payload, train, epochs))
        if saved is not None:
            with snapshot.restoring():
                first, best, stale = self._restore(saved, result, train)
            evaluations = saved["evaluations"]
            result.resumed_from_epoch = first
            if self.on_evaluation is not None:
                for epoch, valid_result in evaluations:
                    self.on_evaluation(epoch, valid_result)
        for epoch in range(first, epochs):
            if snapshot is not None and trains and epoch > first and snapshot.due():
                snapshot.save(self._snapshot_state(epoch, best, stale, result, train, evaluations))
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
            evaluations.append([epoch, valid_result])
            if self.on_evaluation is not None:
                self.on_evaluation(epoch, valid_result)
            if stale > int(self.config["stopping_step"]):
                log.info("early stopping: no validation improvement in %d evaluations; best epoch %d",
                         stale, result.best_epoch)
                break
        return result

    def _snapshot_state(self, next_epoch: int, best: float, stale: int, result: FitResult, train: TrainDataLoader,
                        evaluations: list) -> dict:
        """Everything epoch ``next_epoch`` depends on (see ``engine.snapshot``)."""
        fit = {"best_epoch": result.best_epoch, "valid": result.valid, "test": result.test,
               "epochs_run": result.epochs_run, "train_seconds": result.train_seconds, "history": result.history,
               "best_state": result.best_state,
               "test_topk": None if result.test_topk is None else torch.from_numpy(np.ascontiguousarray(result.test_topk))}
        return {"next_epoch": next_epoch, "best": float(best), "stale": stale, "fit": fit, "evaluations": evaluations,
                "model": self.model.state_dict(), "model_training_state": model_training_state(self.model),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "loader": train.order_state(), "rng": rng_state()}

    def _snapshot_problem(self, saved: dict, train: TrainDataLoader, epochs: int) -> str | None:
        """Why a snapshot's counters, results and loader orders cannot be this run's: each is
        checked for type and range before anything is put back (a trusted ``next_epoch`` of 1e9
        or a NaN best score would end the run at a wrong result)."""
        next_epoch = saved["next_epoch"]
        problem = counter_problem("next_epoch", next_epoch, 1, epochs - 1) or \
            counter_problem("stale", saved["stale"], 0, int(self.config["stopping_step"]))
        if problem:
            return problem
        best = saved["best"]
        if not isinstance(best, float) or math.isnan(best) or best == math.inf:
            return f"its 'best' is {best!r:.40}, expected a finite score (or -inf before the first)"
        evaluations = saved["evaluations"]
        if not isinstance(evaluations, list) or not all(
                isinstance(e, list) and len(e) == 2 and not counter_problem("epoch", e[0], 0, next_epoch - 1)
                and not metrics_problem("evaluation", e[1]) for e in evaluations):
            return "its 'evaluations' are not [epoch before next_epoch, metrics] pairs"
        fit = saved["fit"]
        if not isinstance(fit, dict):
            return "its 'fit' is not a mapping"
        problem = (counter_problem("fit.best_epoch", fit["best_epoch"], -1, next_epoch - 1)
                   or counter_problem("fit.epochs_run", fit["epochs_run"], 0, next_epoch)
                   or metrics_problem("fit.valid", fit["valid"]) or metrics_problem("fit.test", fit["test"])
                   or seconds_problem("fit.train_seconds", fit["train_seconds"]))
        if problem:
            return problem
        if (fit["best_epoch"] >= 0) != (best > -math.inf) or (best > -math.inf and not fit["valid"]):
            return "its best score and best epoch disagree"
        if not isinstance(fit["history"], list):
            return "its 'fit' history is not a list"
        problem = None if fit["best_state"] is None else weights_misfit(fit["best_state"], self.model)
        if problem:
            return f"its best epoch's {problem}"
        topk = fit["test_topk"]
        if topk is not None and (not isinstance(topk, torch.Tensor) or topk.dim() != 2 or topk.is_floating_point()):
            return "its best epoch's top-k lists are not a 2-D tensor of item ids"
        problem = loader_problem(saved["loader"], len(train._original_df), train.all_uids, train.all_items)
        return f"its training loader's orders {problem}" if problem else None

    def _restore(self, saved: dict, result: FitResult, train: TrainDataLoader) -> tuple[int, float, int]:
        """Load a snapshot into the model, optimizer, scheduler, loader, random generators and
        ``result``; returns (first epoch to run, best score, evaluations without improvement)."""
        self.model.load_state_dict(saved["model"])
        load_model_training_state(self.model, saved["model_training_state"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        train.load_order_state(saved["loader"])
        fit = saved["fit"]
        result.best_epoch, result.valid, result.test = fit["best_epoch"], fit["valid"], fit["test"]
        result.epochs_run, result.train_seconds, result.history = fit["epochs_run"], fit["train_seconds"], fit["history"]
        result.best_state = fit["best_state"]
        result.test_topk = None if fit["test_topk"] is None else fit["test_topk"].numpy()
        set_rng_state(saved["rng"])  # last: loading draws nothing, but keep the order obvious
        return int(saved["next_epoch"]), float(saved["best"]), int(saved["stale"])


class CudaGraphSteps:
    """Training steps replayed as CUDA graphs, one graph per batch shape.

    A step of LD4MRec on TikTok is a few hundred small kernels: launched one by one from
    Python, the GPU idles between them (in a profile of one epoch on an H200, 0.25 s of wall
    time held 0.05 s of kernels). A model whose batches have static shapes and whose step never
    waits on the host (``static_batches``) is captured once per batch shape, forward, backward
    and the optimizer step together, and replayed for each later batch of that shape with the
    batch copied into the graph's input. The first ``WARMUP`` steps run eagerly on a side stream
    (as torch's documentation asks before a capture). Every batch trains exactly once: the
    batch a graph is captured on is then replayed. If a capture fails, training goes on eagerly.
    """

    WARMUP = 2

    def __init__(self, trainer: Trainer):
        self.trainer = weakref.proxy(trainer)  # no reference cycle: the graphs go with their trainer
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.eager_steps = 0
        self.failed = False
        self.side_stream: torch.cuda.Stream | None = None

    @staticmethod
    def applies(config, model, constant_lr: bool) -> bool:
        """Graph steps apply with ``cuda_graphs`` on, a CUDA device, a model with static
        batches, Adam or AdamW (their fused kernels can be captured) and a constant learning
        rate (a captured step keeps the rate it was captured with)."""
        if not (bool(config["cuda_graphs"]) if "cuda_graphs" in config else False):
            return False
        cuda = torch.device(config["device"]).type == "cuda"
        adam = str(config["learner"]).lower() in ("adam", "adamw")  # capturable fused kernels
        return cuda and adam and constant_lr and bool(getattr(model, "static_batches", False))

    def step(self, batch: torch.Tensor) -> torch.Tensor:
        """One optimisation step on ``batch`` (eager warm-up, capture or replay); its loss."""
        if self.failed or not torch.is_tensor(batch):
            return self.trainer.step(batch)
        entry = self.graphs.get(tuple(batch.shape))
        if entry is None:
            if self.eager_steps < self.WARMUP:
                self.eager_steps += 1
                side = self.side_stream = self.side_stream or torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    loss = self.trainer.step(batch)
                torch.cuda.current_stream().wait_stream(side)
                return loss
            entry = self._capture(batch)
            if entry is None:
                return self.trainer.step(batch)
        graph, static_batch, static_loss = entry
        static_batch.copy_(batch)
        graph.replay()
        return static_loss.clone()

    def _capture(self, batch: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor] | None:
        """Capture a step on ``batch``'s shape; None (and eager steps from now on) if it fails."""
        trainer = self.trainer
        static_batch = batch.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_loss = trainer.step(static_batch, autocast_cache=False)
        except RuntimeError as exc:  # an op that cannot be captured: train eagerly from here on
            log.warning("CUDA graph capture failed (%s); training without graphs", str(exc).splitlines()[0])
            self.failed = True
            trainer.optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            return None
        self.graphs[tuple(batch.shape)] = (graph, static_batch, static_loss)
        return graph, static_batch, static_loss
