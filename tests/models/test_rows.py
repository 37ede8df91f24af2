"""DeviceRows: the training matrix held on the device gives exactly scipy's rows."""

import numpy as np
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.models.rows import DeviceRows


def test_device_rows_match_scipy_for_any_users_in_any_order():
    rng = np.random.default_rng(0)
    dense = rng.random((30, 12)) < 0.3
    dense[5] = False  # a user without training items
    matrix = sp.csr_matrix(dense.astype(np.float32))
    rows = DeviceRows(matrix, "cpu")
    users = torch.tensor([5, 0, 29, 5, 17, 3])
    x = rows.dense(users)
    expected = matrix[users.numpy()].toarray()
    assert torch.equal(x, torch.from_numpy(expected))
    indptr, cols, _ = rows.batch(users)
    for r in range(len(users)):
        assert cols[indptr[r]:indptr[r + 1]].tolist() == np.flatnonzero(expected[r]).tolist()  # sorted per row
    padded, valid = rows.padded(users)
    assert padded.shape == valid.shape == (len(users), rows.max_row)  # fixed by the batch size alone
    for r in range(len(users)):
        assert padded[r][valid[r]].tolist() == np.flatnonzero(expected[r]).tolist()
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    unit = np.divide(expected, norms, out=np.zeros_like(expected), where=norms > 0)
    assert np.allclose(rows.sparse(users, normalized=True).to_dense().numpy(), unit)
    assert np.allclose(rows.dense(users, normalized=True).numpy(), unit)


def test_padding_slots_never_write_over_a_real_entry():
    # the last user's padding slots point past its row: clamped to the last stored entry,
    # which is its own real item; they add zeros, so the item stays 1
    matrix = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    rows = DeviceRows(matrix, "cpu")
    assert torch.equal(rows.dense(torch.tensor([1, 0, 1])), torch.tensor([[0, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1.0]]))
