"""DWA — dynamic weight average (Liu, Johns & Davison, End-to-End MTL with Attention, CVPR 2019).

With L̄_k(t) the mean training loss of task k in epoch t (given to ``on_epoch_end``):

    r_k = L̄_k(t−1) / L̄_k(t−2),    w_k = K · exp(r_k / T) / Σ_j exp(r_j / T)     (T = 2)

and w = 1 for the first two epochs. This is the paper's per-epoch rule; the reference library
averages over a window of steps instead.
"""
import torch

from ntkmtl.methods.base import HParam, LossWeightingMethod


class DynamicWeightAverage(LossWeightingMethod):
    name = "dwa"
    paper = "Liu et al., End-to-End Multi-Task Learning with Attention (DWA), CVPR 2019"
    hparams = (HParam("temperature", float, 2.0, "softmax temperature T of the loss ratios", low=0.0, low_open=True),)
    state_attributes = ("epoch_losses",)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.epoch_losses = torch.zeros(0, n_tasks)  # the last two epochs' mean losses

    def on_epoch_end(self, mean_train_losses: torch.Tensor) -> None:
        latest = torch.as_tensor(mean_train_losses, dtype=torch.float64).detach().cpu().reshape(1, -1)
        if latest.shape[1] != self.n_tasks:
            raise ValueError(f"method 'dwa': {latest.shape[1]} epoch losses for {self.n_tasks} tasks")
        self.epoch_losses = torch.cat([self.epoch_losses.to(torch.float64), latest])[-2:]

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        if self.epoch_losses.shape[0] < 2:
            return torch.ones(self.n_tasks, dtype=losses.dtype, device=losses.device)
        previous, latest = self.epoch_losses
        ratios = latest / previous.clamp_min(1e-12)
        weights = self.n_tasks * torch.softmax(ratios / self.temperature, dim=0)
        return weights.to(dtype=losses.dtype, device=losses.device)
