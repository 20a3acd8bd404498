"""NTKMTL-SR — NTKMTL from the shared representation (Qin et al., NeurIPS 2025, arXiv 2510.18258).

The batch is split into n chunks (``n_splits``: 4, or the benchmark's default — 1 on NYUv2, as
the reference's NYUv2 trainer; ``chunking``: the reference's ``torch.chunk`` layout, so a batch of
9 gives three chunks of 3) and J_k (n × dim z) holds the
gradients of the chunk losses L_kj with respect to the shared representation z (for MTAN, task
k's attended features), not the parameters. Each chunk's loss depends only on its own rows of z,
so the rows of J_k are orthogonal and the largest eigenvalue of J_k J_kᵀ is λ_k = max_j ‖∂L_kj/∂z‖².
With w_k = (Σ_j λ_j / λ_k) ^ ntk_exp the loss Σ_k w_k · mean_j L_kj takes ONE backward pass:
almost the cost of plain training, against K backward passes through the encoder for NTKMTL.
A model that hands each head its own view of z (``[z.view_as(z) for _ in heads]``) and returns
the K views lets all K representation gradients come from one backward through the heads
(``gradients.representation_chunk_norms``); with one shared z it takes K.
"""

from dataclasses import replace

from ntkmtl.methods.base import CHUNKING, WeightMethod
from ntkmtl.methods.contract import Requirements, StepResult
from ntkmtl.methods.gradients import representation_chunk_norms
from ntkmtl.methods.ntkmtl import EPS, NTK_EXP, ntk_weights
from ntkmtl.options import HParam


class NTKMTLSR(WeightMethod):
    name = "ntkmtl_sr"
    paper = "Qin et al., NTKMTL (shared-representation variant NTKMTL-SR), NeurIPS 2025"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    ntk_exp: float
    n_splits: int
    eps: float
    chunking: str
    hparams = (
        NTK_EXP,
        HParam("n_splits", int, 4, "chunks per batch whose representation gradients give λ_k", low=1, high=64),
        EPS,
        CHUNKING,
    )

    requires = Requirements(representation=True)

    @property
    def requirements(self) -> Requirements:
        return replace(self.requires, chunks=self.n_splits, chunking=self.chunking)

    def _backward(self, losses, shared, heads, representation):
        chunked = losses if losses.dim() == 2 else losses.unsqueeze(0)
        rows = (representation[0] if isinstance(representation, (list, tuple)) else representation).shape[0]
        slices = self.requirements.batch_chunks(rows) if chunked.shape[0] > 1 else [slice(0, rows)]
        eigenvalues = representation_chunk_norms(chunked, representation, slices).max(0).values
        weights = ntk_weights(eigenvalues.detach(), self.ntk_exp, self.eps)
        total = (weights * chunked.mean(0)).sum()
        total.backward()
        return StepResult(weights, {"ntk_eigenvalues": eigenvalues.detach(), "loss": total.detach()})
