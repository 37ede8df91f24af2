"""Where LD4MRec hands its settings on: the soft target gets p and γ in their own places
(Eq. 7), and forward-free ranking denoises at step 0 (Algorithm 2), k steps down to 1 with
``inference_steps`` = k."""

from __future__ import annotations

import torch

from mmrec_ld4mrec.models import rows


def test_the_soft_target_gets_p_and_gamma_in_their_own_places(monkeypatch, data_path, build_ld4mrec):
    """p = 0.1 and γ = 0.02 differ, so a swap shows: kept clicks become 1 - γ = 0.98 and the
    sampled unclicked items γ = 0.02, as Eq. 7 says."""
    seen = []

    def recording(original):
        def wrapper(*args, **kwargs):
            target = original(*args, **kwargs)
            seen.append(target.detach().clone())
            return target
        return wrapper

    for name in ("soft_reconstruction_target", "soft_reconstruction_target_padded"):
        monkeypatch.setattr(rows, name, recording(getattr(rows, name)))
    model, loader = build_ld4mrec(data_path, soft_prob=0.1, smooth=0.02, loss="mse", input_norm="none",
                                  input_dropout=0.0)
    model.train()
    model.calculate_loss(next(iter(loader)))
    assert len(seen) == 1
    values = set(torch.unique(seen[0]).tolist())
    assert values == {0.0, 1.0, torch.tensor(0.98).item(), torch.tensor(0.02).item()}, values
    share = (seen[0] == torch.tensor(0.98)).sum() / ((seen[0] > 0.5).sum())
    assert 0.02 < float(share) < 0.3  # about p = 0.1 of the clicks, not γ = 0.02 of them


def test_forward_free_ranking_denoises_once_at_step_0(data_path, build_ld4mrec, monkeypatch):
    model, _ = build_ld4mrec(data_path, steps=5)
    model.eval()
    steps = []
    denoise = model.denoise
    monkeypatch.setattr(model, "denoise", lambda x, t, users: (steps.append(t.tolist()), denoise(x, t, users))[1])
    users = torch.arange(4)
    model.full_sort_predict([users])
    assert steps == [[0, 0, 0, 0]]
    steps.clear()
    with model.inference_strategy(3):
        model.full_sort_predict([users])
    assert steps == [[3] * 4, [2] * 4, [1] * 4]
