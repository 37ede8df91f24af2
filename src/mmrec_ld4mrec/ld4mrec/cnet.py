"""C-Net, LD4MRec's conditional denoiser (Eq. 4, 18-22).

    x --FC_in--> h (d_e) --CG_1--> (d_h) --PG--> (d_h) --CG_2--> (d_e) --FC_out--> x_hat

Observed rows are sparse (a few dozen ones among thousands of items), so FC_in is a sparse
product at inference. A corrupted training row x_t = a*x + c*eps is dense (Gaussian noise on
every item), so training takes the dense product: splitting it into a*(W x) + c*(W eps)
would cost the same dense product plus the sparse one.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leakyrelu": nn.LeakyReLU, "gelu": nn.GELU}


class ItemGraph(nn.Module):
    """Neighbours' weights (open choice ``item_graph_k``; off in the paper's reading):
    an item-weight matrix W [|I|, d] becomes W + w S W, with S the frozen kNN item graph of
    ``item_graph.content_item_graph`` and w = ``item_graph_weight``; FC_in and FC_out use it.

    The same product can be taken on the batch instead of the weights, and is cheaper there
    when a batch has fewer rows than W has columns (B < d), with no sparse product in the
    weights' backward:
        x (W + w S W) = (x + w x S) W                 (FC_in: ``rows``)
        h (W + w S W)^T = s + w s S^T, s = h W^T      (FC_out: ``scores``)
    Each is one (I + w S) D product with a dense D of |I| contiguous rows (:class:`_GraphMix`).
    """

    def __init__(self, graph: torch.Tensor, weight: float):
        super().__init__()
        # S and S^T in CSR (several times faster than COO in a CPU sparse x dense product);
        # rebuilt from the features, never saved
        with warnings.catch_warnings():  # torch calls its CSR layout beta, once per process
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.register_buffer("graph", graph.to_sparse_csr(), persistent=False)
            self.register_buffer("graph_t", graph.t().coalesce().to_sparse_csr(), persistent=False)
        self.weight = weight
        self._ranked: dict[tuple, torch.Tensor] = {}  # W + w S W while W stays the same, gradients off
        self._steps = 0  # products taken with gradients: a training step may follow each

    def _mix(self, transpose: bool, dense: torch.Tensor) -> torch.Tensor:
        """(I + w S) D, or (I + w S^T) D with ``transpose``, for D [|I|, n]."""
        if torch.is_grad_enabled():
            self._steps += 1
        S, S_t = (self.graph_t, self.graph) if transpose else (self.graph, self.graph_t)
        device = dense.device.type
        if dense.dtype != S.dtype or torch.is_autocast_enabled(device):
            # neither cuSPARSE nor MKL has a bfloat16 CSR x dense product: under bf16 autocast
            # (CUDA or CPU) the graph product stays in float32
            with torch.autocast(device, enabled=False):
                return _GraphMix.apply(S, S_t, dense.to(S.dtype).contiguous(), self.weight)
        return _GraphMix.apply(S, S_t, dense.contiguous(), self.weight)

    def forward(self, item_weights: torch.Tensor) -> torch.Tensor:
        """W + w S W. While ranking (eval mode, no gradients: batch after batch with the same
        weights) it is computed once and kept until W changes: a full ranking then takes one
        sparse product per matrix, not one per batch."""
        if torch.is_grad_enabled() or self.training or torch.is_inference_mode_enabled():
            return self._mix(False, item_weights)  # kept only while ranking (eval mode, no gradients)
        # W changes by an optimiser step, which follows a product with gradients here (counted:
        # fused Adam leaves W's version counter as it was), or by a load (which bumps it)
        key = (item_weights.data_ptr(), item_weights._version, self._steps, item_weights.dtype,
               torch.is_autocast_enabled(item_weights.device.type))
        if key not in self._ranked:
            if len(self._ranked) >= 2:  # FC_in's and FC_out's: older ones are stale
                self._ranked.clear()
            self._ranked[key] = self._mix(False, item_weights)
        return self._ranked[key]

    def train(self, mode: bool = True):
        """Every switch between training and ranking drops the kept W + w S W: the trainers switch
        modes around each epoch and each ranking, and a CUDA graph replays its training steps
        without running this module's Python."""
        self._ranked.clear()
        return super().train(mode)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x + w x S for dense rows x [B, |I|]: FC_in's product with W + w S W, taken on x."""
        return self._mix(True, x.T).T

    def scores(self, s: torch.Tensor) -> torch.Tensor:
        """s + w s S^T for scores s = h W^T [B, |I|]: h (W + w S W)^T, taken on the scores (in
        the scores' dtype, as the weight path returns them)."""
        return self._mix(False, s.T).T.to(s.dtype)


class _GraphMix(torch.autograd.Function):
    """(I + w S) D for a frozen sparse S and a dense D with contiguous rows, in one sparse addmm
    (no separate scaling and sum over D); the backward is (I + w S^T) G, from a CSR S^T kept
    beside S (autograd would otherwise transpose S at every step), and no gradient for S."""

    @staticmethod
    def forward(ctx, S: torch.Tensor, S_t: torch.Tensor, dense: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.S_t, ctx.weight = S_t, weight
        return torch.sparse.addmm(dense, S, dense, beta=1.0, alpha=weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        return None, None, torch.sparse.addmm(grad, ctx.S_t, grad, beta=1.0, alpha=ctx.weight), None


class ItemInput(nn.Module):
    """FC_in (section 5.3): item space -> d_e, a sparse product for sparse rows (inference)
    and a dense one for the corrupted training rows. With an item graph, x (W + w S W) is
    taken on the rows' side: (x + w x S) W."""

    def __init__(self, n_items: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_normal_(self.weight)

    def forward(self, x: torch.Tensor, graph: ItemGraph | None = None) -> torch.Tensor:
        weight = self.weight
        if graph is not None:
            if not x.is_sparse and x.shape[0] < weight.shape[1]:
                x = graph.rows(x)  # (x + w x S) W = x (W + w S W), cheaper for B < d
            else:
                weight = graph(weight)
        if x.is_sparse:
            if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
                # cuSPARSE has no bfloat16 sparse x dense product: this one (a few dozen
                # entries a row) stays in float32 under bf16 autocast
                with torch.autocast("cuda", enabled=False):
                    return torch.sparse.mm(x.float(), weight.float()) + self.bias
            return torch.sparse.mm(x, weight) + self.bias
        return x @ weight + self.bias


class CGBlock(nn.Module):
    """Collaboration-aware generation block (Eq. 18-20).

    a = act(W_a [h || e_step] + b_a)            (Eq. 18)
    c = act(W_c c_u + b_c)                      (Eq. 19)
    g = sigmoid(W_g e_step + b_g)               (Eq. 20, gate driven by the diffusion step)
    h' = g * a + (1 - g) * c                    (Eq. 20)

    With ``use_collab=False`` (the "w/o CG" ablation) it is the DiffRec-style layer
    act(W_a [h || e_step] + b_a): no collaborative signal, no gate.
    """

    def __init__(self, in_dim: int, out_dim: int, step_dim: int, collab_dim: int,
                 activation: str = "tanh", use_collab: bool = True):
        super().__init__()
        self.behaviour = nn.Linear(in_dim + step_dim, out_dim)  # W_a, b_a
        self.act = ACTIVATIONS[activation]()
        self.use_collab = use_collab
        if use_collab:
            self.collab = nn.Linear(collab_dim, out_dim)  # W_c, b_c
            self.gate = nn.Linear(step_dim, out_dim)  # W_g, b_g
            nn.init.zeros_(self.gate.bias)  # b_g = 0: the gate starts at g = 0.5

    def forward(self, h: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None) -> torch.Tensor:
        a = self.act(self.behaviour(torch.cat([h, e_step], dim=-1)))  # Eq. 18
        if not self.use_collab:
            return a
        c = self.act(self.collab(collab))  # Eq. 19
        g = torch.sigmoid(self.gate(e_step))  # Eq. 20
        return g * a + (1.0 - g) * c  # Eq. 20


class FiLM(nn.Module):
    """One modality's preference-conditioned transformation (Eq. 21-22).

    gamma = MLP_gamma(p_u), beta = MLP_beta(p_u), h <- gamma * h + beta.
    The MLPs' last biases start at 1 (gamma) and 0 (beta), so the block starts near identity.
    """

    def __init__(self, pref_dim: int, hidden: int, activation: str = "tanh"):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(pref_dim, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, hidden))
        self.beta = nn.Sequential(nn.Linear(pref_dim, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, hidden))
        nn.init.ones_(self.gamma[-1].bias)
        nn.init.zeros_(self.beta[-1].bias)

    def forward(self, h: torch.Tensor, pref: torch.Tensor) -> torch.Tensor:
        return self.gamma(pref) * h + self.beta(pref)


class PGBlock(nn.Module):
    """Preference-aware generation block: FiLM per modality in a fixed order, with a
    LeakyReLU between consecutive modalities (section 5.5)."""

    def __init__(self, pref_dims: list[int], hidden: int, activation: str = "tanh"):
        super().__init__()
        self.films = nn.ModuleList(FiLM(d, hidden, activation) for d in pref_dims)
        self.between = nn.LeakyReLU()

    def forward(self, h: torch.Tensor, prefs: list[torch.Tensor]) -> torch.Tensor:
        for m, (film, pref) in enumerate(zip(self.films, prefs)):
            if m > 0:
                h = self.between(h)
            h = film(h, pref)
        return h


class ItemOutput(nn.Module):
    """FC_out (section 5.3): d_e -> item space, x_hat = h W^T + b. With an item graph,
    h (W + w S W)^T is taken on the scores' side for batches narrower than d_e."""

    def __init__(self, n_items: int, in_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, in_dim))
        self.bias = nn.Parameter(torch.zeros(n_items))
        nn.init.xavier_normal_(self.weight)

    def forward(self, h: torch.Tensor, graph: ItemGraph | None = None) -> torch.Tensor:
        if graph is not None and h.shape[0] < h.shape[1]:
            # h (W + w S W)^T = s + w s S^T with s = h W^T: cheaper on the batch for B < d
            return graph.scores(h @ self.weight.T) + self.bias
        weight = self.weight if graph is None else graph(self.weight)
        # addmm: the bias enters the product, sparing a pass (and a copy) over the B x |I| output
        return torch.addmm(self.bias, h, weight.T)


class CNet(nn.Module):
    """Eq. 4: x_hat = C-Net(x_t, e_step, c_u, {p^m_u}). PG blocks exist only when there are
    modalities and ``use_pg``; ``use_cg=False`` gives the "w/o CG" ablation.

    ``residual=True`` (an open choice, off in the paper's reading) adds act(FC_in x) to the
    output of CG_2, a skip around the d_e -> d_h -> d_e bottleneck, so that the conditioned
    blocks refine a one-layer denoiser instead of having to carry all of it. ``item_graph``
    (open, off in the paper's reading) gives FC_in and FC_out their content neighbours' weights.
    """

    def __init__(self, n_items: int, embedding_size: int, hidden_size: int, step_dim: int, collab_dim: int,
                 pref_dims: list[int], activation: str = "tanh", use_cg: bool = True, use_pg: bool = True,
                 residual: bool = False, item_graph: ItemGraph | None = None):
        super().__init__()
        self.act_in = ACTIVATIONS[activation]() if residual else None
        self.item_graph = item_graph
        self.fc_in = ItemInput(n_items, embedding_size)
        self.cg_in = CGBlock(embedding_size, hidden_size, step_dim, collab_dim, activation, use_cg)
        self.pg = PGBlock(pref_dims, hidden_size, activation) if (use_pg and pref_dims) else None
        self.cg_out = CGBlock(hidden_size, embedding_size, step_dim, collab_dim, activation, use_cg)
        self.fc_out = ItemOutput(n_items, embedding_size)

    def forward(self, x: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None,
                prefs: list[torch.Tensor]) -> torch.Tensor:
        h_in = self.fc_in(x, self.item_graph)
        h = self.cg_in(h_in, e_step, collab)  # CG_1
        if self.pg is not None:
            h = self.pg(h, prefs)  # PG, Eq. 21-22
        h = self.cg_out(h, e_step, collab)  # CG_2
        if self.act_in is not None:  # residual
            h = h + self.act_in(h_in)
        return self.fc_out(h, self.item_graph)
