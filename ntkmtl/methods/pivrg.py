"""PIVRG — performance-informed variance reduction (Qin et al., Revisiting Fairness in MTL:
A Performance-Driven Approach for Variance Reduction, CVPR 2025).

Tasks that currently perform worse get a larger prior p_k in a FairGrad-type update:

    T = max((max s − min s) / log(bound), mintemp),  p = K · softmax(s / T)    (p_max / p_min ≤ bound)
    (G Gᵀ) x = (p / x)^(1/2),   update = K · Gᵀ x

where s_k is task k's score, larger = worse. The PIVRG authors' trainers (MTLlib) feed each
task's term of Δm on the previous epoch's validation set; the NTKMTL repository's trainers pass
no scores at all, so its PIVRG cannot run there. The trainer contract here gives methods the
epoch's mean training losses, so by default s_k = 100 · (L̄_k − L̄_k(1)) / L̄_k(1), the relative
change (%) of task k's mean training loss since the first epoch — the same form as a Δm term,
with the first epoch as baseline. A trainer that has validation Δm terms may pass them with ``set_scores``. Scores start
at 0 (uniform prior) as in the reference.
"""

import math

import torch

from ntkmtl.methods.fairgrad import fair_update_weights
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.options import HParam


class PIVRG(GramianMethod):
    name = "pivrg"
    paper = "Qin et al., Revisiting Fairness in Multitask Learning: A Performance-Driven Approach for Variance Reduction, CVPR 2025"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    bound: float
    mintemp: float
    hparams = (
        HParam("bound", float, 2.0, "largest ratio of two tasks' priors", low=1.0, low_open=True),
        HParam("mintemp", float, 10.0, "smallest softmax temperature of the scores", low=0.0, low_open=True),
    )
    default_max_norm = 1.0
    k_scaling = "weights"
    state_attributes = ("scores", "first_epoch_losses")

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.scores = torch.zeros(n_tasks, dtype=torch.float64)
        self.first_epoch_losses = None

    def set_scores(self, scores) -> None:
        """Use these per-task scores (larger = worse, e.g. validation Δm terms) from now on."""
        scores = torch.as_tensor(scores, dtype=torch.float64).detach().cpu().reshape(-1)
        if scores.numel() != self.n_tasks:
            raise ValueError(f"method 'pivrg': {scores.numel()} scores for {self.n_tasks} tasks")
        self.scores = scores

    def on_epoch_end(self, mean_train_losses) -> None:
        losses = torch.as_tensor(mean_train_losses, dtype=torch.float64).detach().cpu().reshape(-1)
        if self.first_epoch_losses is None:
            self.first_epoch_losses = losses.clone()
        base = self.first_epoch_losses.clamp_min(1e-12)
        self.set_scores(100.0 * (losses - base) / base)

    def prior(self) -> torch.Tensor:
        spread = float(self.scores.max() - self.scores.min())
        temperature = max(spread / math.log(self.bound), self.mintemp)
        return self.n_tasks * torch.softmax(self.scores / temperature, dim=0)

    def gramian_weights(self, gram, losses):
        return fair_update_weights(gram, 2.0, self.prior().numpy(), owner=self.name)
