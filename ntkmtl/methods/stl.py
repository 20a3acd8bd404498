"""STL — single-task learning: train on one task's loss only, L = L_main (weights e_main).

The single-task baselines B_j of Δm come from such runs. The reference multiplies the other
losses by 0, which turns a NaN in an unused task into a NaN gradient; here only L_main is used.
"""

import torch

from ntkmtl.methods.base import LossWeightingMethod
from ntkmtl.options import HParam


class STL(LossWeightingMethod):
    name = "stl"
    paper = "Single-task learning (one task's loss), the baseline of Δm"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    main_task: int
    hparams = (HParam("main_task", int, 0, "index of the one task to train (0-based)", low=0),)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        if self.main_task >= n_tasks:
            raise ValueError(
                f"method 'stl': hyperparameter main_task={self.main_task!r} is out of range; "
                f"valid: int in [0, {n_tasks - 1}] for {n_tasks} tasks"
            )

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        weights = torch.zeros(self.n_tasks, dtype=losses.dtype, device=losses.device)
        weights[self.main_task] = 1.0
        return weights

    def weighted_loss(self, losses):
        return losses[self.main_task], self.loss_weights(losses)
