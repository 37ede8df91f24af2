"""MMRec's own ``Trainer``, subclassed inside MMRec's process (its class exists only there) to
record what a run of ours reports: each epoch's training time, each validation, the best epoch,
and a snapshot between epochs. MMRec's ``fit`` loop, early stopping and evaluation are its own,
untouched.
"""

from __future__ import annotations

import json
import time

import torch

from ..engine.metrics import DISPLAY
from .resume import training_state


def display_metrics(metrics: dict) -> dict:
    """MMRec's metric names (``recall@20``) as ours (``Recall@20``), values as floats."""
    out = {}
    for key, value in (metrics or {}).items():
        name, _, k = key.partition("@")
        out[f"{DISPLAY.get(name.lower(), name)}@{k}"] = float(value)
    return out


def recording_trainer(base: type) -> type:
    """A subclass of MMRec's ``Trainer`` class ``base`` (``utils.utils.get_trainer()``)."""

    class RecordingTrainer(base):
        """``base`` that records ``seconds`` (each epoch's training time, the model's
        ``pre_epoch_processing`` included, as MMRec times an epoch), ``reported`` (each
        validation as a JSON line, appended to the file ``progress`` too when given),
        ``best_epoch`` (by early stopping's own rule), ``best_valid_topk`` / ``best_test_topk``
        (the ranked lists of that epoch), and saves ``snapshot`` when one is due before an
        epoch starts (not the one the run starts or resumes at)."""

        def __init__(self, config, model, valid_data, train_data, progress: str | None = None, snapshot=None):
            super().__init__(config, model, False)
            self.valid_data, self.train_data = valid_data, train_data
            self.progress, self.snapshot = progress, snapshot
            self.seconds: list[float] = []
            self.reported: list[str] = []
            self.best_epoch = -1
            self._first_epoch: int | None = None
            self._pre_seconds = 0.0
            pre_epoch = model.pre_epoch_processing

            def before_epoch():  # fit calls the model's hook first in each epoch: the one place before it
                self._save_if_due()
                start = time.perf_counter()
                out = pre_epoch()
                self._pre_seconds = time.perf_counter() - start
                return out

            model.pre_epoch_processing = before_epoch
            # the ranked lists MMRec's evaluator scores (training items masked), kept for the
            # best epoch: the beyond-accuracy metrics and segments are computed from them
            self.best_valid_topk = self.best_test_topk = self._last_topk = None
            self.keep_best_state, self.best_state = False, None
            self._valid_improved = False
            score_lists = self.evaluator.evaluate

            def keeping_lists(batch_matrix_list, eval_data, *args, **kwargs):
                self._last_topk = torch.cat(batch_matrix_list, dim=0).cpu().numpy()
                return score_lists(batch_matrix_list, eval_data, *args, **kwargs)

            self.evaluator.evaluate = keeping_lists

        def _save_if_due(self) -> None:
            epoch = len(self.seconds)  # one entry per finished epoch: the epoch about to start
            if self._first_epoch is None:
                self._first_epoch = epoch
            if self.snapshot is not None and epoch > self._first_epoch and self.snapshot.due():
                self.snapshot.save(training_state(self, self.model, self.train_data, epoch))

        def _train_epoch(self, train_data, epoch_idx, loss_func=None):
            start = time.perf_counter()
            out = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func)
            self.seconds.append(time.perf_counter() - start + self._pre_seconds)
            self._pre_seconds = 0.0
            return out

        def _valid_epoch(self, valid_data):
            score, result = super()._valid_epoch(valid_data)
            if valid_data is self.valid_data:  # fit calls this for the test split too
                epoch = len(self.seconds) - 1
                better = score > self.best_valid_score if self.valid_metric_bigger else score < self.best_valid_score
                self._valid_improved = better
                if better:  # early_stopping's rule: fit makes this epoch the best right after
                    self.best_epoch = epoch
                    self.best_valid_topk = self._last_topk
                    if self.keep_best_state:  # for `run --save`: MMRec keeps no weights of its own
                        self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                line = json.dumps({"epoch": epoch, "valid": display_metrics(result)})
                self.reported.append(line)
                if self.progress:
                    with open(self.progress, "a", encoding="utf-8") as f:
                        f.write(line + "\n")
            elif self._valid_improved:  # fit evaluates the test split after every validation: keep the best one's
                self.best_test_topk = self._last_topk
            return score, result

    return RecordingTrainer
