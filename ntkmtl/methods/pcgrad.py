"""PCGrad — projecting conflicting gradients (Yu et al., Gradient Surgery for MTL, NeurIPS 2020).

For each task i, in a random order over the tasks j: if g_i^PC · g_j < 0, remove the conflicting
component, g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j. The update is Σ_i g_i^PC (the
reference's "sum" reduction, on the LS scale).

As in the reference: the order is one list of the K tasks that Python's ``random.shuffle``
reshuffles in place before each task i (so the same seed gives the same orders; the trainer
seeds and checkpoints Python's generator), and j runs over every task, i included, so g_i^PC is
also projected off its own g_i when they conflict after earlier projections
(``self_projection: false`` skips j = i, as the paper's algorithm does).

Every g_i^PC is a combination Σ_j C_ij g_j of the original gradients, so the projections run on
the K × K Gramian and only the final Σ_i g_i^PC = (𝟙ᵀC) G touches P-sized vectors; the reported
weights are 𝟙ᵀC.
"""

import random

import numpy as np
import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.solvers import as_numpy
from ntkmtl.options import HParam


def pcgrad_coefficients(gram: np.ndarray, self_projection: bool = True) -> np.ndarray:
    """C (K × K) with g_i^PC = Σ_j C_ij g_j, from the Gramian (float64)."""
    k = gram.shape[0]
    coefficients = np.eye(k)
    order = list(range(k))
    for i in range(k):
        random.shuffle(order)
        for j in order:
            if (j == i and not self_projection) or not gram[j, j] > 0:
                continue
            dot = coefficients[i] @ gram[:, j]
            if dot < 0:
                coefficients[i, j] -= dot / gram[j, j]
    return coefficients


class PCGrad(GramianMethod):
    name = "pcgrad"
    paper = "Yu et al., Gradient Surgery for Multi-Task Learning (PCGrad), NeurIPS 2020"
    hparams = (
        HParam(
            "self_projection",
            bool,
            True,
            "also project g_i^PC off its own g_i when they conflict, as the "
            "reference does (false: only off the other tasks' gradients, as the paper's algorithm)",
        ),
    )
    default_max_norm = 1.0

    def gramian_weights(self, gram, losses):
        coefficients = pcgrad_coefficients(as_numpy(gram), self.self_projection)
        return StepResult(torch.as_tensor(coefficients.sum(0), dtype=gram.dtype, device=gram.device))
