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
    x, indptr, cols = rows.dense(users)
    expected = matrix[users.numpy()].toarray()
    assert torch.equal(x, torch.from_numpy(expected))
    for r in range(len(users)):
        assert cols[indptr[r]:indptr[r + 1]].tolist() == np.flatnonzero(expected[r]).tolist()  # sorted per row
    normed = rows.sparse(users, normalized=True).to_dense().numpy()
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(normed, np.divide(expected, norms, out=np.zeros_like(expected), where=norms > 0))
