"""Runtime shims that let an unmodified MMRec checkout run on today's stack.

Each one applies only where the old attribute or module is missing, so an old stack sees
no change. Written for this project from the behaviour MMRec expects:

1. ``torchvision`` / ``PIL`` (end-to-end image mode only): stand-in modules whose use raises.
2. ``matplotlib`` (loss plots only): a stand-in whose use raises.
3. ``scipy.sparse.dok_matrix._update`` (removed in scipy 1.12+): bulk assignment.
4. ``numpy.float`` (removed in numpy 1.24): the builtin ``float``, which it aliased.
5. ``torch_scatter`` (compiled, not installable here): ``scatter_add`` / ``scatter`` with
   sum, mean, max, min on plain torch.
6. ``sklearn.cluster.KMeans`` when scikit-learn is absent (SLMRec imports it): raises on use.
7. ``Tensor.cuda()`` / ``Module.cuda()`` on a machine without CUDA: stay on the CPU instead
   of failing, so MGCN, LATTICE, SMORE, GRCN and DAMRS construct.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import scipy.sparse as sp
import torch

APPLIED: list[str] = []


def _missing(module: str) -> bool:
    if module in sys.modules:
        return False
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


class _Unavailable:
    """Any use (call or attribute) raises, naming what to install."""

    def __init__(self, name: str, hint: str):
        self._name, self._hint = name, hint

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self._name} is not installed ({self._hint})")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}", self._hint)


def _stub_module(name: str, hint: str, attrs: dict | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__mmrec_ld4mrec_stub__ = True

    def missing_attr(attr: str):  # PEP 562 module __getattr__
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{name}.{attr}", hint)

    module.__getattr__ = missing_attr
    for key, value in (attrs or {}).items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


def _stub_package(names: list[str], hint: str) -> None:
    for name in names:
        module = _stub_module(name, hint)
        module.__path__ = []
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules:
            setattr(sys.modules[parent], child, module)


def shim_optional_modules() -> None:
    if _missing("torchvision"):
        _stub_package(["torchvision", "torchvision.transforms", "torchvision.transforms.functional"],
                      "needed only for MMRec's end-to-end image mode")
        APPLIED.append("torchvision stand-in")
    if _missing("PIL"):
        _stub_package(["PIL", "PIL.Image"], "needed only for MMRec's end-to-end image mode")
        APPLIED.append("PIL stand-in")
    if _missing("matplotlib"):
        _stub_package(["matplotlib", "matplotlib.pyplot"], "needed only for Trainer.plot_train_loss")
        APPLIED.append("matplotlib stand-in")
    if _missing("sklearn"):
        _stub_package(["sklearn", "sklearn.cluster"], "pip install scikit-learn")
        APPLIED.append("sklearn stand-in")


def _dok_update(self, data: dict) -> None:
    """Bulk-assign {(row, col): value}, as the removed private ``dok_matrix._update`` did."""
    rows, cols = self.shape
    for r, c in data:
        if not (0 <= r < rows and 0 <= c < cols):
            raise IndexError(f"index ({r}, {c}) out of bounds for shape {self.shape}")
    store = getattr(self, "_dict", None)
    if isinstance(store, dict):
        store.update({k: v for k, v in data.items() if v != 0})
    else:
        for key, value in data.items():
            self[key] = value


def shim_scipy() -> None:
    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = _dok_update
        APPLIED.append("scipy dok_matrix._update")


def shim_numpy() -> None:
    if "float" not in np.__dict__:
        np.float = float  # the alias numpy removed: it was the builtin
        APPLIED.append("numpy.float")


def _expand_index(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
    if index.dim() == src.dim():
        return index
    shape = [1] * src.dim()
    shape[dim] = -1
    return index.view(shape).expand_as(src)


def scatter(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
            dim_size: int | None = None, reduce: str = "sum") -> torch.Tensor:
    """``torch_scatter.scatter`` on plain torch (sum, add, mean, max, min, mul)."""
    dim = dim % src.dim()
    index = _expand_index(index, src, dim)
    if out is None:
        size = list(src.shape)
        size[dim] = int(dim_size) if dim_size is not None else (int(index.max()) + 1 if index.numel() else 0)
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
    ops = {"sum": "sum", "add": "sum", "mean": "mean", "max": "amax", "min": "amin", "mul": "prod"}
    if reduce not in ops:
        raise ValueError(f"scatter: unsupported reduce {reduce!r}")
    return out.scatter_reduce(dim, index, src, reduce=ops[reduce], include_self=False)


def scatter_add(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None,
                dim_size: int | None = None) -> torch.Tensor:
    return scatter(src, index, dim, out, dim_size, reduce="sum")


def scatter_mean(src, index, dim=-1, out=None, dim_size=None):
    return scatter(src, index, dim, out, dim_size, reduce="mean")


def shim_torch_scatter() -> None:
    if _missing("torch_scatter"):
        _stub_module("torch_scatter", "only scatter, scatter_add and scatter_mean are provided",
                     {"scatter": scatter, "scatter_add": scatter_add, "scatter_mean": scatter_mean})
        APPLIED.append("torch_scatter on plain torch")


def shim_cuda() -> None:
    if torch.cuda.is_available() or getattr(torch.Tensor.cuda, "__mmrec_ld4mrec_shim__", False):
        return

    def tensor_cuda(self, *args, **kwargs):
        return self

    def module_cuda(self, *args, **kwargs):
        return self

    tensor_cuda.__mmrec_ld4mrec_shim__ = True
    torch.Tensor.cuda = tensor_cuda
    torch.nn.Module.cuda = module_cuda
    APPLIED.append("cuda() stays on CPU (no CUDA here)")


def apply() -> list[str]:
    """Apply every shim that is needed; idempotent. Returns what was applied."""
    shim_optional_modules()
    shim_scipy()
    shim_numpy()
    shim_torch_scatter()
    shim_cuda()
    return list(APPLIED)
