"""DWA — dynamic weight average (Liu, Johns & Davison, End-to-End MTL with Attention, CVPR 2019).

Weights from the rate at which each task's loss falls, with temperature T (``temperature``, 2):

    r_k = L̄_k(recent) / L̄_k(earlier),    w_k = K · exp(r_k / T) / Σ_j exp(r_j / T)

``weight_update`` chooses what L̄ averages:

- ``iterations`` (default, the reference library's rule): a FIFO of the last 2·W step losses
  (W = ``iteration_window``, 25), filled with ones at the start; from step W + 2 on, r_k = mean of
  the newest W / mean of the oldest W, recomputed every step (before that, w = 1);
- ``epochs`` (the paper's rule): L̄_k(t) is the mean training loss of task k in epoch t (given to
  ``on_epoch_end``), r_k = L̄_k(t−1) / L̄_k(t−2), and w = 1 for the first two epochs.

``loss_reduction`` is how the weighted losses are combined: ``mean`` (the reference's
``(w · L).mean()``, i.e. Σ_k w_k L_k / K) or ``sum`` (Σ_k w_k L_k, the scale of LS).
"""

import torch

from ntkmtl.methods.base import LossWeightingMethod
from ntkmtl.options import HParam


class DynamicWeightAverage(LossWeightingMethod):
    name = "dwa"
    paper = "Liu et al., End-to-End Multi-Task Learning with Attention (DWA), CVPR 2019"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    temperature: float
    weight_update: str
    iteration_window: int
    loss_reduction: str
    hparams = (
        HParam("temperature", float, 2.0, "softmax temperature T of the loss ratios", low=0.0, low_open=True),
        HParam(
            "weight_update",
            str,
            "iterations",
            "iterations (the reference: a window of step losses) or epochs (the paper: per-epoch mean losses)",
            choices=("iterations", "epochs"),
        ),
        HParam(
            "iteration_window",
            int,
            25,
            "W: step losses per half of the FIFO (weight_update: iterations)",
            low=1,
            high=100000,
        ),
        HParam(
            "loss_reduction",
            str,
            "mean",
            "mean (the reference: Σ w_k L_k / K) or sum (Σ w_k L_k)",
            choices=("mean", "sum"),
        ),
    )
    state_attributes = ("epoch_losses", "step_losses", "weights")

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.epoch_losses = torch.zeros(0, n_tasks, dtype=torch.float64)  # the last two epochs' mean losses
        self.step_losses = torch.ones(2 * self.iteration_window, n_tasks, dtype=torch.float32)  # the FIFO
        self.weights = torch.ones(n_tasks, dtype=torch.float32)

    def on_epoch_end(self, mean_train_losses: torch.Tensor) -> None:
        latest = torch.as_tensor(mean_train_losses, dtype=torch.float64).detach().cpu().reshape(1, -1)
        if latest.shape[1] != self.n_tasks:
            raise ValueError(f"method 'dwa': {latest.shape[1]} epoch losses for {self.n_tasks} tasks")
        self.epoch_losses = torch.cat([self.epoch_losses.to(torch.float64), latest])[-2:]

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        if self.weight_update == "iterations":
            window = self.iteration_window
            latest = losses.detach().to(device="cpu", dtype=torch.float32).reshape(1, -1)
            self.step_losses = torch.cat([self.step_losses[1:], latest])
            if self.step_count > window:
                ratios = self.step_losses[window:].mean(0) / self.step_losses[:window].mean(0).clamp_min(1e-12)
                self.weights = self.n_tasks * torch.softmax(ratios / self.temperature, dim=0)
        elif self.epoch_losses.shape[0] >= 2:
            previous, latest = self.epoch_losses
            ratios = latest / previous.clamp_min(1e-12)
            self.weights = (self.n_tasks * torch.softmax(ratios / self.temperature, dim=0)).float()
        return self.weights.to(dtype=losses.dtype, device=losses.device)

    def weighted_loss(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total, weights = super().weighted_loss(losses)
        return (total / self.n_tasks if self.loss_reduction == "mean" else total), weights
