"""Runtime shims for MMRec on today's stack (no MMRec checkout needed)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.mmrec.shims import _dok_update, scatter, scatter_add


def test_dok_update_assigns_in_bulk_and_checks_bounds():
    A = sp.dok_matrix((3, 4), dtype=np.float32)
    _dok_update(A, {(0, 1): 1.0, (2, 3): 2.0})
    assert A.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
    assert A.nnz == 2
    with pytest.raises(IndexError):
        _dok_update(A, {(3, 0): 1.0})


def test_scatter_matches_a_loop():
    src = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    index = torch.tensor([0, 2, 0, 2])
    assert torch.equal(scatter_add(src, index, dim=0, dim_size=4),
                       torch.tensor([[6.0, 8.0], [0, 0], [10.0, 12.0], [0, 0]]))
    assert torch.equal(scatter(src, index, dim=0, reduce="mean"), torch.tensor([[3.0, 4.0], [0, 0], [5.0, 6.0]]))
    assert torch.equal(scatter(src, index, dim=0, reduce="max"), torch.tensor([[5.0, 6.0], [0, 0], [7.0, 8.0]]))
    edge_weight, row = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1, 1, 0])
    assert torch.equal(scatter_add(edge_weight, row, dim=0, dim_size=3), torch.tensor([2.0, 1.5, 0.0]))
    with pytest.raises(ValueError, match="unsupported reduce"):
        scatter(src, index, dim=0, reduce="median")


def _apply_in_child(prelude: str) -> dict:
    code = prelude + (
        "\nimport json\nfrom mmrec_ld4mrec.mmrec import shims\napplied = shims.apply()\n"
        "import numpy as np, torch, scipy.sparse as sp\n"
        "import torch_scatter, torchvision.transforms as T\nfrom PIL import Image\nimport matplotlib.pyplot as plt\n"
        "from sklearn.cluster import KMeans\n"
        "try:\n    KMeans(3)\n    kmeans = 'ran'\nexcept ImportError as e:\n    kmeans = str(e)\n"
        "out = {'applied': applied, 'np_float': np.float is float, 'dok': hasattr(sp.dok_matrix, '_update'),"
        " 'cuda': str(torch.ones(1).cuda().device) if not torch.cuda.is_available() else 'cuda', 'kmeans': kmeans,"
        " 'again': shims.apply() == applied}\nprint(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shims_on_a_current_stack():
    out = _apply_in_child("")
    assert out["np_float"] and out["dok"] and out["again"]
    assert out["cuda"] == "cpu"
    assert "numpy.float" in out["applied"] and "torch_scatter on plain torch" in out["applied"]
    if "sklearn stand-in" in out["applied"]:
        assert "pip install scikit-learn" in out["kmeans"]


def test_shims_leave_an_old_stack_alone():
    prelude = ("import numpy as np, scipy.sparse as sp\nnp.float = 'old'\n"
               "sp.dok_matrix._update = lambda self, d: 'old'\n")
    code = prelude + ("from mmrec_ld4mrec.mmrec import shims\napplied = shims.apply()\n"
                      "print(np.float, sp.dok_matrix((1, 1))._update({}), 'numpy.float' in applied)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["old", "old", "False"]
