"""GO4Align — group optimisation for multi-task alignment (Shen et al., NeurIPS 2024).

Per step, with the detached losses L_k:

    scale_k = Σ_j L_j / L_k                                 (inverse relative loss)
    q ← q ⊙ exp(−η L),  q ← q / Σ q                         (risk-guided indicator, η = robust_step_size)
    v_k = scale_k · q_k

then the K values v are clustered into ``num_groups`` groups and each task takes its group's mean:
w_k = mean{v_j : j in k's group}; loss = Σ_k w_k L_k. The reference clusters with scikit-learn's
randomised k-means; the values are one-dimensional, so here the clustering is the exact optimum
(dynamic programming over the sorted values): deterministic and dependency-free. With more groups
than tasks every task is its own group.
"""

import numpy as np
import torch

from ntkmtl.methods.base import LOG_EPS, LossWeightingMethod
from ntkmtl.options import HParam


def kmeans_1d(values: np.ndarray, n_groups: int) -> np.ndarray:
    """Optimal 1-D k-means: each value replaced by the mean of its group (min within-group SSE)."""
    k = len(values)
    n_groups = min(n_groups, k)
    order = np.argsort(values, kind="stable")
    x = values[order]
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    i, j = np.triu_indices(k + 1, 1)  # segment x[i:j]
    cost = np.full((k + 1, k + 1), np.inf)
    cost[i, j] = s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / (j - i)
    best = cost[0].copy()  # best[j]: cost of x[:j] in one group
    splits = []
    for _ in range(n_groups - 1):
        total = best[:, None] + cost  # last group x[i:j] after the best grouping of x[:i]
        splits.append(total.argmin(0))
        best = total.min(0)
    result = np.empty(k)
    end = k
    for split in reversed(splits):
        start = split[end]
        result[start:end] = x[start:end].mean()
        end = start
    result[:end] = x[:end].mean()
    grouped = np.empty(k)
    grouped[order] = result
    return grouped


class GO4Align(LossWeightingMethod):
    name = "go4align"
    paper = "Shen et al., GO4Align: Group Optimization for Multi-Task Alignment, NeurIPS 2024"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    robust_step_size: float
    num_groups: int
    hparams = (
        HParam("robust_step_size", float, 1e-4, "step η of the risk-guided group indicator q", low=0.0),
        HParam("num_groups", int, 5, "number of task groups sharing one weight", low=1, high=1000),
    )
    state_attributes = ("indicator",)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.indicator = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)

    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        current = losses.detach().to(device="cpu", dtype=torch.float64)
        scale = current.sum() / (current + LOG_EPS)
        indicator = self.indicator * torch.exp(-self.robust_step_size * current)
        self.indicator = indicator / indicator.sum()
        values = (scale * self.indicator).numpy()
        grouped = kmeans_1d(values, self.num_groups)
        return torch.from_numpy(grouped).to(dtype=losses.dtype, device=losses.device)
