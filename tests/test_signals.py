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
