"""NTKMTL — task balancing from the Neural Tangent Kernel (Qin et al., NeurIPS 2025, arXiv 2510.18258).

Each task's convergence speed is governed by the largest eigenvalue λ_k of its NTK. With n = 1
chunk (the paper's default, a fair comparison with other gradient methods) λ_k = ‖g_k‖², the
diagonal of the Gramian G Gᵀ of the per-task shared gradients g_k = ∂L_k/∂θ. The weights

    w_k = (Σ_j λ_j / λ_k) ^ ntk_exp          (ntk_exp = 0.5 in the paper)

slow the fast tasks and speed up the slow ones; the shared update is K · Σ_k w_k g_k, clipped to
``max_norm`` (1.0) after it is formed. Heads get the plain gradients of their own losses.

General n (described in the reference code, not used in its experiments): the batch is split
into n chunks (``chunking``: the reference's ``torch.chunk`` layout by default), J_k (n × P) holds
the chunk gradients of task k, λ_k = the largest eigenvalue of J_k J_kᵀ, and the update uses the chunk-mean
gradients: K · Σ_k w_k · mean_j g_kj. It costs n · K backward passes and n · K · P floats.

Reference defects not reproduced: λ_k is floored at eps·Σλ (a zero-gradient task gets a finite
weight instead of inf/NaN); no dead P × K × B buffer is allocated; each task's gradient is copied
once, row-wise, into G (the reference clones every parameter's .grad and copies it into a column
of a P × K buffer — bench/methods.py measures the difference).
"""

from dataclasses import replace

import torch

from ntkmtl.methods.base import CHUNKING
from ntkmtl.methods.contract import Requirements, StepResult
from ntkmtl.methods.gradients import task_gradients
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.options import HParam

NTK_EXP = HParam(
    "ntk_exp", float, 0.5, "exponent on the NTK eigenvalue ratio (paper: 0.5; try 0.5-1.0)", low=0.0, high=4.0
)
EPS = HParam(
    "eps",
    float,
    1e-8,
    "λ_k is floored at eps·Σλ, so a task with a zero or tiny gradient gets a finite weight",
    low=0.0,
    high=1.0,
    low_open=True,
)


def ntk_weights(eigenvalues: torch.Tensor, ntk_exp: float, eps: float) -> torch.Tensor:
    """w_k = (Σ_j λ_j / λ_k) ^ ntk_exp, with λ_k floored at eps·Σλ; all ones when every λ is 0."""
    total = eigenvalues.sum()
    if not total > 0:
        return torch.ones_like(eigenvalues)
    return (total / eigenvalues.clamp_min(eps * total)) ** ntk_exp


class NTKMTL(GramianMethod):
    name = "ntkmtl"
    paper = "Qin et al., NTKMTL: Mitigating Task Imbalance in Multi-Task Learning from NTK Perspective, NeurIPS 2025"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    ntk_exp: float
    n: int
    eps: float
    chunking: str
    hparams = (
        NTK_EXP,
        HParam("n", int, 1, "chunks per batch for the NTK eigenvalue (1 = squared gradient norm)", low=1, high=64),
        EPS,
        CHUNKING,
    )
    default_max_norm = 1.0

    k_scaling = "update"  # the update is K · Σ_k w_k g_k; the logged weights are w
    diagonal_only = True  # λ_k = ‖g_k‖² = diag(G Gᵀ): only the K norms are computed

    @property
    def requirements(self) -> Requirements:
        return replace(self.requires, chunks=self.n if self.n > 1 else None, chunking=self.chunking)

    def gramian_weights(self, gram, losses):
        eigenvalues = gram.diagonal().contiguous()  # a copy: reductions see the layout ‖g_k‖² had
        return StepResult(ntk_weights(eigenvalues, self.ntk_exp, self.eps), {"ntk_eigenvalues": eigenvalues})

    def _backward(self, losses, shared, heads, representation):
        if losses.dim() == 1 or losses.shape[0] == 1:
            return super()._backward(losses.reshape(-1), shared, heads, representation)
        n = losses.shape[0]
        chunk_grads = torch.stack(  # n × K × P
            [task_gradients(losses[j], shared, retain_graph=True) for j in range(n)]
        )
        per_task = chunk_grads.transpose(0, 1)  # K × n × P
        eigenvalues = torch.linalg.eigvalsh(per_task @ per_task.transpose(1, 2))[:, -1].clamp_min(0)
        weights = ntk_weights(eigenvalues, self.ntk_exp, self.eps)
        direction, result = self.combine(StepResult(weights, {"ntk_eigenvalues": eigenvalues}), per_task.mean(1))
        self.apply_update(direction, shared, heads, losses, result.weights)
        return result
