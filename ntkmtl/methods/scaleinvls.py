"""Scale-invariant LS — L = Σ_k log L_k (the log-loss baseline of Liu et al., FAMO, NeurIPS 2023).

∇ log L_k = ∇L_k / L_k, so it is the weighting w_k = 1 / L_k (detached): multiplying any loss by a
constant does not change the update. L_k is floored at LOG_EPS to stay finite at zero loss.
"""

import torch

from ntkmtl.methods.base import LOG_EPS, LossWeightingMethod


class ScaleInvariantLS(LossWeightingMethod):
    name = "scaleinvls"
    paper = "Scale-invariant linear scalarisation Σ_k log L_k (Liu et al., FAMO, NeurIPS 2023)"

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return 1.0 / (losses.detach() + LOG_EPS)
