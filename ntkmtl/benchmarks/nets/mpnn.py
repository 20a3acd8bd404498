"""MPNN for QM9 (Gilmer et al., ICML 2017), the multi-task set-up of Nash-MTL, FAMO and NTKMTL.

Atom features (11) → Linear(11→64) → 3 message-passing steps, each an edge-conditioned NNConv
(edge network Linear(5→128)-ReLU-Linear(128→64·64), mean aggregation) followed by a GRU update
shared across steps → Set2Set readout (3 steps, 128-d) → Linear(128→64)-ReLU. That 64-d graph
embedding is the shared representation z (one row per molecule, what NTKMTL-SR differentiates
against); 11 linear heads read one target each.

Cost on complete graphs: NNConv turns every edge's features into a 64×64 matrix
(edge network Linear(128→4096) per edge and step), ~90% of the MPNN's work. With h_e the edge
network's 128-d hidden layer and W_e = reshape(A h_e + b), the message x_j W_e regroups as
h_e · (x_j A) + x_j B: the 4096-wide product is taken per atom (N ≈ E / 17 on QM9) instead of
per edge. Same function, same parameters (state-dict compatible with PyG's NNConv); only the
floating-point summation order differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import NNConv, Set2Set
from torch_geometric.utils import scatter

from ntkmtl.benchmarks.base import MultiTaskModel


class FactorizedNNConv(NNConv):
    """PyG's NNConv (edge network nn = Linear-ReLU-Linear, mean aggregation), evaluated per atom.

    ``forward(x, edge_index, hidden)`` takes ``hidden = edge_hidden(edge_attr)`` ([E, 128], the
    edge network without its last layer, computed once for all message steps).
    """

    def edge_hidden(self, edge_attr: torch.Tensor) -> torch.Tensor:
        return self.nn[:-1](edge_attr)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        n_nodes, n_in, n_out = x.shape[0], self.in_channels_l, self.out_channels
        last = self.nn[-1]  # Linear(128 → n_in · n_out); row k · n_out + o of its weight is W[k, o]
        # per_atom[j, o, c] = Σ_k x_j[k] A[k·n_out + o, c]: the edge network's last layer applied to x_j.
        per_atom = (x @ last.weight.view(n_in, n_out * hidden.shape[1])).view(n_nodes, n_out, -1)
        # Group each atom's outgoing edges into rows of a padded [N, D, 128] block for one bmm.
        order = torch.argsort(src, stable=True)
        src_sorted = src[order]
        degree = torch.bincount(src_sorted, minlength=n_nodes)
        first = torch.cumsum(degree, 0) - degree
        slot = torch.arange(src.numel(), device=src.device) - first[src_sorted]
        padded = hidden.new_zeros(n_nodes, int(degree.max()) if src.numel() else 0, hidden.shape[1])
        padded = padded.index_put((src_sorted, slot), hidden[order])
        messages = torch.bmm(padded, per_atom.transpose(1, 2))[src_sorted, slot]
        messages = messages + (x @ last.bias.view(n_in, n_out))[src_sorted]
        out = scatter(messages, dst[order], dim=0, dim_size=n_nodes, reduce="mean")
        return out + self.lin(x) + self.bias


class MPNN(MultiTaskModel):
    def __init__(self, n_tasks: int, num_features: int = 11, edge_features: int = 5, dim: int = 64, steps: int = 3):
        super().__init__()
        self.steps = steps
        self.lin0 = nn.Linear(num_features, dim)
        edge_net = nn.Sequential(nn.Linear(edge_features, 128), nn.ReLU(), nn.Linear(128, dim * dim))
        self.conv = FactorizedNNConv(dim, dim, edge_net, aggr="mean")
        self.gru = nn.GRU(dim, dim)
        self.set2set = Set2Set(dim, processing_steps=3)
        self.lin1 = nn.Linear(2 * dim, dim)
        self.heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(n_tasks))

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions [B, K], z) for a PyG batch of B molecules; z = the graph embeddings [B, 64],
        returned as one view per head so NTKMTL-SR gets every ∂L_k/∂z from one backward pass."""
        out = F.relu(self.lin0(batch.x))
        h = out.unsqueeze(0)
        hidden = self.conv.edge_hidden(batch.edge_attr)
        for _ in range(self.steps):
            message = F.relu(self.conv(out, batch.edge_index, hidden))
            out, h = self.gru(message.unsqueeze(0), h)
            out = out.squeeze(0)
        z = F.relu(self.lin1(self.set2set(out, batch.batch)))
        views = [z.view_as(z) for _ in self.heads]  # head k reads views[k]: ∂L_k/∂z in one backward
        return torch.cat([head(v) for head, v in zip(self.heads, views)], dim=1), views

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("heads.")]

    def task_specific_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())
