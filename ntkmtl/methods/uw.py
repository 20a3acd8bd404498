"""UW — uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each task has a learned log-variance s_k = log σ_k² (trained with the model's optimizer):

    L = Σ_k ½ (exp(−s_k) · L_k + s_k)

so the applied weight of L_k is ½ exp(−s_k); the ½ s_k term keeps σ_k from growing without bound.
"""

import torch

from ntkmtl.methods.base import LossWeightingMethod


class UncertaintyWeighting(LossWeightingMethod):
    name = "uw"
    paper = "Kendall et al., Multi-Task Learning Using Uncertainty to Weigh Losses, CVPR 2018"
    state_attributes = ("log_variances",)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.log_variances = torch.nn.Parameter(torch.zeros(n_tasks, device=self.device))

    def parameters(self):
        return [self.log_variances]

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.exp(-self.log_variances)

    def weighted_loss(self, losses):
        weights = self.loss_weights(losses)
        return (weights * losses).sum() + 0.5 * self.log_variances.sum(), weights
