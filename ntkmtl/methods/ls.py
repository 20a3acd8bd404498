"""LS — linear scalarisation: the plain sum of the task losses, L = Σ_k L_k (all weights 1).

The baseline every speed ratio in docs/PERFORMANCE.md is measured against.
"""

import torch

from ntkmtl.methods.base import LossWeightingMethod


class LinearScalarization(LossWeightingMethod):
    name = "ls"
    paper = "Linear scalarisation (equal weights), the standard multi-task baseline"

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.ones(self.n_tasks, dtype=losses.dtype, device=losses.device)
