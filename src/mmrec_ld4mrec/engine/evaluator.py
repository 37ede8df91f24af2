"""Full ranking over all items, training items masked, in user batches (no |I| x |I| work)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .beyond_accuracy import BEYOND, beyond_accuracy_metrics
from .dataloader import EvalDataLoader
from .metrics import topk_metrics
from .precision import precision_context


@torch.no_grad()
def rank_topk(model, loader: EvalDataLoader, k: int, config=None) -> np.ndarray:
    """Top-``k`` item ids per evaluation user, [n_eval_users, k]; ``config``'s ``precision``
    applies to the scoring."""
    model.eval()
    chunks = []
    for users, mask_index in loader:
        with precision_context(config) if config is not None else contextlib.nullcontext():
            scores = model.full_sort_predict([users])
        chunks.append(masked_topk(scores, mask_index[0], mask_index[1], k).cpu().numpy())
    return np.concatenate(chunks, axis=0)


MASKED = -1e10  # a training item's score: ranked below every other item


def masked_topk(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, k: int) -> torch.Tensor:
    """The top-``k`` item ids of each row of ``scores`` once the (row, item) pairs given (the
    users' training items) are masked: the evaluation's ranking, and ``recommend``'s."""
    scores = scores.float()
    scores[rows, cols] = MASKED
    return torch.topk(scores, k, dim=-1).indices


def hit_matrix(topk_index: np.ndarray, loader: EvalDataLoader, n_items: int) -> np.ndarray:
    """Boolean [n_users, k]: is the ranked item one of the user's held-out items?"""
    held_out = loader.get_eval_items()
    rows = np.repeat(np.arange(len(held_out)), [len(x) for x in held_out])
    truth = rows * n_items + np.concatenate(held_out)
    ranked = np.arange(len(held_out))[:, None] * n_items + topk_index
    return np.isin(ranked, truth)


def evaluate(model, loader: EvalDataLoader, config) -> tuple[dict[str, float], np.ndarray]:
    """Metrics dict (accuracy and beyond-accuracy, as ``config["metrics"]`` names them) and the
    top-max(topk) ranking of every evaluation user."""
    topk = list(config["topk"])
    metrics = list(config["metrics"])
    topk_index = rank_topk(model, loader, max(topk), config)
    hits = hit_matrix(topk_index, loader, model.n_items)
    accuracy = [m for m in metrics if m.lower() not in BEYOND]
    return {**topk_metrics(hits, loader.get_eval_len_list(), accuracy, topk),
            **beyond_accuracy_metrics(topk_index, loader.train_items, loader.item_popularity, metrics, topk)}, topk_index
