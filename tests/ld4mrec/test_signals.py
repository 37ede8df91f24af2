import numpy as np
import pytest
import scipy.sparse as sp

from mmrec_ld4mrec.ld4mrec.signals import (
    cached_signals,
    clear_signal_cache,
    collaborative_signal,
    modality_preference_signal,
    normalize_features,
    signal_cache_size,
)


def _matrix(seed=0, users=60, items=40, density=0.15):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < density).astype(np.float32))


def test_collaborative_signal_is_svd_vectors_and_their_normalised_aggregation():
    X = _matrix()
    q = 5
    c = collaborative_signal(X, q)
    assert c.shape == (60, 2 * q)
    u_exact, _, vt_exact = np.linalg.svd(X.toarray(), full_matrices=False)
    # the leading singular vector agrees with the exact SVD up to sign; the randomized
    # SVD approximates the others (random matrices have small spectral gaps)
    assert abs(abs(np.dot(c[:, 0], u_exact[:, 0])) - 1) < 1e-3
    assert abs(abs(np.dot(c[:, 1], u_exact[:, 1])) - 1) < 0.1
    du = np.asarray(X.sum(1)).ravel()
    di = np.asarray(X.sum(0)).ravel()
    norm = X.toarray() / np.sqrt(np.outer(np.maximum(du, 1), np.maximum(di, 1)))
    vt_signed = vt_exact[0] * np.sign(np.dot(c[:, 0], u_exact[:, 0]))
    assert np.allclose(c[:, q], norm @ vt_signed, atol=1e-3)


def test_modality_preference_matches_eq16_by_hand():
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    f = np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    p = modality_preference_signal(X, f, feature_norm="none")
    # user 0: |N_u| = 2; item 0 has 1 user, item 1 has 2
    expected0 = f[0] / np.sqrt(2 * 1) + f[1] / np.sqrt(2 * 2)
    expected1 = f[1] / np.sqrt(2 * 2) + f[2] / np.sqrt(2 * 1)
    assert np.allclose(p, [expected0, expected1], atol=1e-6)


def test_feature_norms():
    f = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    assert np.allclose(normalize_features(f, "l2")[0], [0.6, 0.8])
    assert np.allclose(normalize_features(f, "l2")[1], 0.0)
    std = normalize_features(f, "standard")
    assert np.allclose(std.mean(0), 0.0) and np.allclose(std.std(0), 1.0)
    with pytest.raises(ValueError, match="feature_norm"):
        normalize_features(f, "zscore")


def test_signals_are_cached_per_content():
    clear_signal_cache()
    X = _matrix(1)
    f = np.random.default_rng(0).normal(size=(40, 3))
    first = cached_signals(X, [f], 4, "l2")
    again = cached_signals(X.copy(), [f.copy()], 4, "l2")
    assert first[0] is again[0] and signal_cache_size() == 1
    cached_signals(X, [f + 1], 4, "l2")
    assert signal_cache_size() == 2


def _rating_like(users=900, items=600, factors=10, seed=0):
    """Binary matrix from a few strong factors: a flat spectrum past them, as real data have."""
    rng = np.random.default_rng(seed)
    logits = rng.gamma(1.0, 1.0, (users, factors)) @ rng.gamma(0.5, 1.0, (items, factors)).T
    return sp.csr_matrix((rng.random((users, items)) < np.minimum(0.03 * logits / logits.mean(), 1.0)).astype(np.float32))


def _subspace_cosines(c, X, q):
    """Cosines of the principal angles between the signal's U_q and the exact top-q left singular vectors."""
    u_exact = np.linalg.svd(X.toarray().astype(np.float64), full_matrices=False)[0][:, :q]
    u = c[:, :q].astype(np.float64)
    return np.linalg.svd(u_exact.T @ (u / np.linalg.norm(u, axis=0)), compute_uv=False)


def test_collaborative_signal_spans_the_exact_top_q_subspace():
    X, q = _rating_like(), 30
    cos = _subspace_cosines(collaborative_signal(X, q), X, q)
    assert cos.mean() > 0.99 and cos.min() > 0.9
    # q test vectors and 4 power iterations (before oversampling) miss much of it
    bare = _subspace_cosines(collaborative_signal(X, q, power_iterations=4, oversampling=0), X, q)
    assert bare.mean() < 0.9
