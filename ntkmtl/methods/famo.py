"""FAMO — fast adaptive multitask optimisation (Liu et al., NeurIPS 2023).

Task logits ξ give z = softmax(ξ). Each step minimises Σ_k z_k log L_k, normalised so the applied
weights on the raw gradients sum to 1:

    w_k = z_k / (c · L_k),   c = Σ_j z_j / L_j          (L_k + 1e-8 throughout)

After optimizer.step() the trainer passes the same batch's new losses to ``update``; with
δ_k = log L_k(before) − log L_k(after) the logits take one Adam step (lr ``w_lr``, weight decay
``gamma``) along J_softmax(ξ)ᵀ δ: tasks whose loss fell most lose weight. One backward pass per
step plus one forward pass for the new losses.
"""

import torch

from ntkmtl.methods.base import LOG_EPS, LossWeightingMethod
from ntkmtl.methods.contract import Requirements
from ntkmtl.options import HParam


class FAMO(LossWeightingMethod):
    name = "famo"
    paper = "Liu et al., FAMO: Fast Adaptive Multitask Optimization, NeurIPS 2023"
    hparams = (
        HParam("gamma", float, 0.01, "weight decay of the task logits (0.001 on some benchmarks)", low=0.0),
        HParam("w_lr", float, 0.025, "Adam learning rate of the task logits", low=0.0, low_open=True),
    )
    state_attributes = ("logits", "logit_optimizer", "previous_losses")
    requires = Requirements(losses_after_step=True)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.logits = torch.nn.Parameter(torch.zeros(n_tasks, device=self.device))
        self.logit_optimizer = torch.optim.Adam([self.logits], lr=self.w_lr, weight_decay=self.gamma)
        self.previous_losses = None

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        losses = losses.detach()
        self.previous_losses = losses.clone()
        z = torch.softmax(self.logits.detach(), dim=0).to(dtype=losses.dtype, device=losses.device)
        inverse = z / (losses + LOG_EPS)
        return inverse / inverse.sum()

    def update(self, losses_after_step: torch.Tensor) -> None:
        if self.previous_losses is None:
            raise ValueError("method 'famo': update() called before backward() gave this batch's losses")
        before = (self.previous_losses + LOG_EPS).log()
        after = (losses_after_step.detach().to(before) + LOG_EPS).log()
        delta = (before - after).to(self.logits)
        with torch.enable_grad():
            z = torch.softmax(self.logits, dim=0)
            (grad,) = torch.autograd.grad(z, self.logits, grad_outputs=delta)
        self.logit_optimizer.zero_grad()
        self.logits.grad = grad
        self.logit_optimizer.step()
        self.logits.grad = None
