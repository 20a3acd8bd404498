"""RLW — random loss weighting (Lin et al., Reasonable Effectiveness of Random Weighting, TMLR 2022).

Every step draws w = softmax(ε), ε ~ N(0, I_K), from torch's global generator of the losses'
device (so the trainer's saved RNG state makes a resumed run draw the same weights).
"""

import torch

from ntkmtl.methods.base import LossWeightingMethod


class RandomLossWeighting(LossWeightingMethod):
    name = "rlw"
    paper = "Lin et al., Reasonable Effectiveness of Random Weighting, TMLR 2022"

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(self.n_tasks, dtype=losses.dtype, device=losses.device)
        return torch.softmax(noise, dim=0)
