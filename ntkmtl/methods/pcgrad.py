"""PCGrad — projecting conflicting gradients (Yu et al., Gradient Surgery for MTL, NeurIPS 2020).

For each task i, in a fresh random order over the other tasks j: if g_i^PC · g_j < 0, remove the
conflicting component, g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j. The update is Σ_i g_i^PC
(the reference's "sum" reduction, on the LS scale).

Every g_i^PC is a combination Σ_j C_ij g_j of the original gradients, so the projections run on
the K × K Gramian and only the final Σ_i g_i^PC = (𝟙ᵀC) G touches P-sized vectors; the reported
weights are 𝟙ᵀC. The order is drawn from torch's global CPU generator (restored with the
trainer's RNG state). As in the paper, and unlike the reference, a task is never projected on
its own gradient.
"""
import numpy as np
import torch

from ntkmtl.methods.base import GradientMethod
from ntkmtl.methods.gradients import gramian
from ntkmtl.methods.solvers import as_numpy


def pcgrad_coefficients(gram: np.ndarray) -> np.ndarray:
    """C (K × K) with g_i^PC = Σ_j C_ij g_j, from the Gramian (float64)."""
    k = gram.shape[0]
    coefficients = np.eye(k)
    for i in range(k):
        for j in torch.randperm(k).tolist():
            if j == i or not gram[j, j] > 0:
                continue
            dot = coefficients[i] @ gram[:, j]
            if dot < 0:
                coefficients[i, j] -= dot / gram[j, j]
    return coefficients


class PCGrad(GradientMethod):
    name = "pcgrad"
    paper = "Yu et al., Gradient Surgery for Multi-Task Learning (PCGrad), NeurIPS 2020"
    default_max_norm = 1.0

    def aggregate(self, grads, losses):
        coefficients = pcgrad_coefficients(as_numpy(gramian(grads)))
        weights = torch.as_tensor(coefficients.sum(0), dtype=grads.dtype, device=grads.device)
        return weights @ grads, {"weights": weights}
