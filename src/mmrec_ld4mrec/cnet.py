"""C-Net, LD4MRec's conditional denoiser (Eq. 4, 18-22).

    x --FC_in--> h (d_e) --CG_1--> (d_h) --PG--> (d_h) --CG_2--> (d_e) --FC_out--> x_hat

Observed rows are sparse (a few dozen ones among thousands of items), so FC_in is a sparse
product at inference. A corrupted training row x_t = a*x + c*eps is dense (Gaussian noise on
every item), so training takes the dense product: splitting it into a*(W x) + c*(W eps)
would cost the same dense product plus the sparse one.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leakyrelu": nn.LeakyReLU, "gelu": nn.GELU}


class ItemInput(nn.Module):
    """FC_in (section 5.3): item space -> d_e, a sparse product for sparse rows.

    ``sparse=False`` densifies sparse input first (the reference for the speed benchmark).
    """

    def __init__(self, n_items: int, out_dim: int, sparse: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.sparse = sparse
        nn.init.xavier_normal_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_sparse:
            if self.sparse:
                return torch.sparse.mm(x, self.weight) + self.bias
            x = x.to_dense()
        return x @ self.weight + self.bias


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
        self.behaviour = nn.Linear(in_dim + step_dim, out_dim)
        self.act = ACTIVATIONS[activation]()
        self.use_collab = use_collab
        if use_collab:
            self.collab = nn.Linear(collab_dim, out_dim)
            self.gate = nn.Linear(step_dim, out_dim)

    def forward(self, h: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None) -> torch.Tensor:
        a = self.act(self.behaviour(torch.cat([h, e_step], dim=-1)))
        if not self.use_collab:
            return a
        c = self.act(self.collab(collab))
        g = torch.sigmoid(self.gate(e_step))
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


class CNet(nn.Module):
    """Eq. 4: x_hat = C-Net(x_t, e_step, c_u, {p^m_u}). PG blocks exist only when there are
    modalities and ``use_pg``; ``use_cg=False`` gives the "w/o CG" ablation."""

    def __init__(self, n_items: int, embedding_size: int, hidden_size: int, step_dim: int, collab_dim: int,
                 pref_dims: list[int], activation: str = "tanh", use_cg: bool = True, use_pg: bool = True,
                 sparse_input: bool = True):
        super().__init__()
        self.fc_in = ItemInput(n_items, embedding_size, sparse=sparse_input)
        self.cg_in = CGBlock(embedding_size, hidden_size, step_dim, collab_dim, activation, use_collab=use_cg)
        self.pg = PGBlock(pref_dims, hidden_size, activation) if (use_pg and pref_dims) else None
        self.cg_out = CGBlock(hidden_size, embedding_size, step_dim, collab_dim, activation, use_collab=use_cg)
        self.fc_out = nn.Linear(embedding_size, n_items)
        nn.init.xavier_normal_(self.fc_out.weight)
        nn.init.zeros_(self.fc_out.bias)

    def forward(self, x: torch.Tensor, e_step: torch.Tensor, collab: torch.Tensor | None,
                prefs: list[torch.Tensor]) -> torch.Tensor:
        h = self.fc_in(x)
        h = self.cg_in(h, e_step, collab)
        if self.pg is not None:
            h = self.pg(h, prefs)
        h = self.cg_out(h, e_step, collab)
        return self.fc_out(h)
