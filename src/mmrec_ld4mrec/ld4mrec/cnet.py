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
    """Neighbours' weights (open choices ``item_graph_k``, ``item_graph_source``; off in the paper's reading):
    an item-weight matrix W [|I|, d] becomes W + w S W, with S the frozen kNN item graph of
    ``item_graph.build_item_graph`` and w = ``item_graph_weight``; FC_in and FC_out use it.

    The same product can be taken on the batch instead of the weights, and is cheaper there
    when a batch has fewer rows than W has columns (B < d), with no sparse product in the
    weights' backward:
        x (W + w S W) = (x + w x S) W                 (FC_in: ``rows``)
        h (W + w S W)^T = s + w s S^T, s = h W^T      (FC_out: ``scores``)
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

    def _product(self, transpose: bool, dense: torch.Tensor) -> torch.Tensor:
        S, S_t = (self.graph_t, self.graph) if transpose else (self.graph, self.graph_t)
        device = dense.device.type
        if dense.dtype != S.dtype or torch.is_autocast_enabled(device):
            # neither cuSPARSE nor MKL has a bfloat16 CSR x dense product: under bf16 autocast
            # (CUDA or CPU) the graph product stays in float32
            with torch.autocast(device, enabled=False):
                return _FrozenSparseProduct.apply(S, S_t, dense.to(S.dtype))
        return _FrozenSparseProduct.apply(S, S_t, dense)

    def forward(self, item_weights: torch.Tensor) -> torch.Tensor:
        """W + w S W."""
        return item_weights + self.weight * self._product(False, item_weights)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x + w x S for dense rows x [B, |I|]: FC_in's product with W + w S W, taken on x."""
        return x + self.weight * self._product(True, x.T).T

    def scores(self, s: torch.Tensor) -> torch.Tensor:
        """s + w s S^T for scores s = h W^T [B, |I|]: h (W + w S W)^T, taken on the scores (in
        the scores' dtype, as the weight path returns them)."""
        return (s + self.weight * self._product(False, s.T).T).to(s.dtype)


class _FrozenSparseProduct(torch.autograd.Function):
    """S @ D for a frozen sparse S: the backward is S^T @ grad, from a CSR S^T kept beside S
    (autograd would otherwise transpose S at every step), and no gradient for S."""

    @staticmethod
    def forward(ctx, S: torch.Tensor, S_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.S_t = S_t
        return torch.sparse.mm(S, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.S_t, grad)


def content_projections(feature_dims: list[int], out_dim: int) -> nn.ModuleList:
    """One learned map P_m: F^m -> out_dim per modality, starting at zero, so that a
    content-aware item-weight matrix starts as the plain one."""
    projections = nn.ModuleList(nn.Linear(d, out_dim, bias=False) for d in feature_dims)
    for proj in projections:
        nn.init.zeros_(proj.weight)
    return projections


def with_content(weight: torch.Tensor, projections: nn.ModuleList, features: list[torch.Tensor]) -> torch.Tensor:
    """Item weights W + sum_m F^m P_m: an item seen in few training rows still gets a weight
    from its content (``item_features``, ``item_features_input``)."""
    for proj, f in zip(projections, features, strict=True):
        weight = weight + proj(f)
    return weight


class ItemInput(nn.Module):
    """FC_in (section 5.3): item space -> d_e, a sparse product for sparse rows.

    ``sparse=False`` densifies sparse input first (the reference for the speed benchmark).
    Open choice ``item_features_input`` (off in the paper's reading): with item feature
    matrices F^m, FC_in's weight of item i becomes W_i + sum_m F^m_i P_m (P_m from zero).
    """

    def __init__(self, n_items: int, out_dim: int, sparse: bool = True, feature_dims: list[int] = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.sparse = sparse
        nn.init.xavier_normal_(self.weight)
        self.projections = content_projections(list(feature_dims), out_dim)

    def forward(self, x: torch.Tensor, graph: ItemGraph | None = None, features: list[torch.Tensor] = ()) -> torch.Tensor:
        weight = with_content(self.weight, self.projections, list(features))
        if graph is not None:
            if not x.is_sparse and x.shape[0] < weight.shape[1]:
                x = graph.rows(x)  # (x + w x S) W = x (W + w S W), cheaper for B < d
            else:
                weight = graph(weight)
        if x.is_sparse:
            if self.sparse:
                if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
                    # cuSPARSE has no bfloat16 sparse x dense product: this one (a few dozen
                    # entries a row) stays in float32 under bf16 autocast
                    with torch.autocast("cuda", enabled=False):
                        return torch.sparse.mm(x.float(), weight.float()) + self.bias
                return torch.sparse.mm(x, weight) + self.bias
            x = x.to_dense()
        return x @ weight + self.bias


class CGBlock(nn.Module):
    """Collaboration-aware generation block (Eq. 18-20).

    a = act(W_a [h || e_step] + b_a)            (Eq. 18)
    c = act(W_c c_u + b_c)                      (Eq. 19)
    g = sigmoid(W_g e_step + b_g)               (Eq. 20, gate driven by the diffusion step)
    h' = g * a + (1 - g) * c                    (Eq. 20)

    With ``use_collab=False`` (the "w/o CG" ablation) it is the DiffRec-style layer
    act(W_a [h || e_step] + b_a): no collaborative signal, no gate.

    Open choices (switches; the defaults are the paper's reading):
    ``gate_input="step_state"`` feeds the gate [e_step || c_u] instead of e_step alone, so the
    mix can differ per user through its collaborative signal, not only through e_in(u);
    ``gate_bias`` initialises b_g (0: g = 0.5; negative: start closer to the collaborative path).
    """

    def __init__(self, in_dim: int, out_dim: int, step_dim: int, collab_dim: int,
                 activation: str = "tanh", use_collab: bool = True, gate_input: str = "step",
                 gate_bias: float = 0.0):
        super().__init__()
        self.behaviour = nn.Linear(in_dim + step_dim, out_dim)
        self.act = ACTIVATIONS[activation]()
        self.use_collab = use_collab
        self.gate_input = gate_input
        if use_collab:
            self.collab = nn.Linear(collab_dim, out_dim)
            self.gate = nn.Linear(step_dim + (collab_dim if gate_input == "step_state" else 0), out_dim)
            nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, h: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None) -> torch.Tensor:
        a = self.act(self.behaviour(torch.cat([h, e_step], dim=-1)))
        if not self.use_collab:
            return a
        c = self.act(self.collab(collab))
        gate_in = torch.cat([e_step, collab], dim=-1) if self.gate_input == "step_state" else e_step
        g = torch.sigmoid(self.gate(gate_in))
        return g * a + (1.0 - g) * c


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
    """FC_out (section 5.3): d_e -> item space, x_hat = h W^T + b.

    Open choice ``item_features`` (off in the paper's reading): with item feature matrices
    F^m, each item's output weight becomes W_i + sum_m F^m_i P_m (P_m learned, starting at
    zero), so an item seen in few training rows still gets a weight from its content.
    """

    def __init__(self, n_items: int, in_dim: int, feature_dims: list[int] = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, in_dim))
        self.bias = nn.Parameter(torch.zeros(n_items))
        nn.init.xavier_normal_(self.weight)
        self.projections = content_projections(list(feature_dims), in_dim)

    def item_weights(self, features: list[torch.Tensor], graph: ItemGraph | None = None) -> torch.Tensor:
        w = with_content(self.weight, self.projections, features)
        return w if graph is None else graph(w)

    def forward(self, h: torch.Tensor, features: list[torch.Tensor] = (), graph: ItemGraph | None = None) -> torch.Tensor:
        if graph is not None and h.shape[0] < h.shape[1]:
            # h (W + w S W)^T = s + w s S^T with s = h W^T: cheaper on the batch for B < d
            return graph.scores(h @ self.item_weights(list(features)).T) + self.bias
        # addmm: the bias enters the product, sparing a pass (and a copy) over the B x |I| output
        return torch.addmm(self.bias, h, self.item_weights(list(features), graph).T)


class CNet(nn.Module):
    """Eq. 4: x_hat = C-Net(x_t, e_step, c_u, {p^m_u}). PG blocks exist only when there are
    modalities and ``use_pg``; ``use_cg=False`` gives the "w/o CG" ablation.

    ``residual=True`` (an open choice, off in the paper's reading) adds act(FC_in x) to the
    output of CG_2, a skip around the d_e -> d_h -> d_e bottleneck, so that the conditioned
    blocks refine a one-layer denoiser instead of having to carry all of it.

    ``input_activation=True`` (open, off in the paper's reading) applies act to FC_in's output
    before CG_1: without it FC_in followed by CG_1's linear map is one rank-d_h linear map.
    ``item_graph`` (open, off) gives FC_in and FC_out their content neighbours' weights.
    ``item_feature_dims`` / ``input_feature_dims`` (open, empty) give FC_out / FC_in
    content-aware item weights W + sum_m F^m P_m.
    """

    def __init__(self, n_items: int, embedding_size: int, hidden_size: int, step_dim: int, collab_dim: int,
                 pref_dims: list[int], activation: str = "tanh", use_cg: bool = True, use_pg: bool = True,
                 sparse_input: bool = True, gate_input: str = "step", gate_bias: float = 0.0,
                 item_feature_dims: list[int] = (), residual: bool = False, input_activation: bool = False,
                 item_graph: ItemGraph | None = None, input_feature_dims: list[int] = ()):
        super().__init__()
        self.residual = residual
        self.act_in = ACTIVATIONS[activation]() if (residual or input_activation) else None
        self.input_activation = input_activation
        self.item_graph = item_graph
        gate = {"gate_input": gate_input, "gate_bias": gate_bias}
        self.fc_in = ItemInput(n_items, embedding_size, sparse=sparse_input, feature_dims=list(input_feature_dims))
        self.cg_in = CGBlock(embedding_size, hidden_size, step_dim, collab_dim, activation, use_cg, **gate)
        self.pg = PGBlock(pref_dims, hidden_size, activation) if (use_pg and pref_dims) else None
        self.cg_out = CGBlock(hidden_size, embedding_size, step_dim, collab_dim, activation, use_cg, **gate)
        self.fc_out = ItemOutput(n_items, embedding_size, list(item_feature_dims))

    def forward(self, x: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None,
                prefs: list[torch.Tensor], item_features: list[torch.Tensor] = ()) -> torch.Tensor:
        """``item_features``: the modality matrices F^m, read by whichever of FC_in and FC_out
        has content projections (neither in the paper's reading)."""
        h_in = self.fc_in(x, self.item_graph, item_features if len(self.fc_in.projections) else ())
        if self.input_activation:
            h_in = self.act_in(h_in)
        h = self.cg_in(h_in, e_step, collab)
        if self.pg is not None:
            h = self.pg(h, prefs)
        h = self.cg_out(h, e_step, collab)
        if self.residual:  # act(FC_in x), activated once whether or not input_activation is on
            h = h + (h_in if self.input_activation else self.act_in(h_in))
        return self.fc_out(h, item_features if len(self.fc_out.projections) else (), self.item_graph)
