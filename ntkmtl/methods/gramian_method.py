"""``GramianMethod``: gradient methods whose task weights are a function of the Gramian G Gᵀ alone.

Most gradient methods (MGDA, PCGrad, CAGrad, IMTL-G, Nash-MTL, FairGrad, PIVRG, ConsMTL, NTKMTL)
need of G (K × P) only the K × K Gramian: they implement ``gramian_weights(gram, losses)``, which
a test can call on a hand-written matrix. Everything that touches P-sized vectors — G itself,
the Gramian, the K-scaling and the update Σ_k w_k g_k — is done here once.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch

from ntkmtl.methods.base import GradientMethod
from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gradients import gramian


class GramianMethod(GradientMethod):
    """A gradient method whose weights are a function of the K × K Gramian G Gᵀ (and the losses).

    Subclasses implement ``gramian_weights(gram, losses) -> StepResult``; the base computes G and
    its Gramian, converts the weights to G's dtype, applies the K-scaling ``k_scaling`` and forms
    the update Σ_k w_k g_k (``combine``):

    - ``None``: the weights are applied as returned (PCGrad, CAGrad, IMTL-G, Nash-MTL, log-MGDA);
    - ``"weights"``: the returned x is scaled to K·x, applied and logged (MGDA, FairGrad, …);
    - ``"update"``: the update is K · Σ_k x_k g_k and x itself is logged (NTKMTL).

    ``diagonal_only``: the weighting reads only diag(G Gᵀ) = ‖g_k‖², so the base computes just
    those K norms and passes the diagonal matrix (NTKMTL: no K × K products).
    """

    k_scaling: ClassVar[str | None] = None
    diagonal_only: ClassVar[bool] = False

    @abstractmethod
    def gramian_weights(self, gram: torch.Tensor, losses: torch.Tensor) -> StepResult:
        """The weights (before the K-scaling) and what to log, from the Gramian [K, K] and losses [K]."""

    def gramian(self, grads: torch.Tensor) -> torch.Tensor:
        """G Gᵀ, or diag(‖g_k‖²) for a weighting that reads only the diagonal."""
        if self.diagonal_only:
            return torch.diag(torch.linalg.vector_norm(grads, dim=1).square())
        return gramian(grads)

    def aggregate(self, grads, losses):
        result = self.gramian_weights(self.gramian(grads), losses)
        return self.combine(result, grads)

    def combine(self, result: StepResult, grads: torch.Tensor) -> tuple[torch.Tensor, StepResult]:
        """(the update from the weights and G, the result with the applied weights), per ``k_scaling``."""
        weights = torch.as_tensor(result.weights, dtype=grads.dtype, device=grads.device)
        if self.k_scaling == "weights":
            weights = self.n_tasks * weights
        direction = weights @ grads
        if self.k_scaling == "update":
            direction = self.n_tasks * direction
        return direction, StepResult(weights, result.values)
