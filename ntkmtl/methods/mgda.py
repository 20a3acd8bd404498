"""MGDA — multiple-gradient descent (Désidéri 2012; as MTL: Sener & Koltun, NeurIPS 2018).

The update is the min-norm point of the convex hull of the task gradients,

    x* = argmin_{x ∈ Δ_K} ‖Σ_k x_k g_k‖²,    update = K · Σ_k x*_k g_k

(scaled by K like the reference, so the weights sum to K as LS's do). Solved on the K × K Gramian
(``solvers.min_norm_weights``); a solve whose duality gap stays above tolerance is counted in
``solver_failures``. MGDA-UB's variant on the representation is not included (as in the reference).
"""
import torch

from ntkmtl.methods.base import GradientMethod
from ntkmtl.methods.gradients import gramian
from ntkmtl.methods.solvers import min_norm_weights, report_failure


def min_norm_point(method: GradientMethod, grads: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """x* on the simplex (as a tensor like ``grads``) and the log dict with the solver's result."""
    x, gap, converged = min_norm_weights(gramian(grads))
    info = {"solver_failures": 0, "duality_gap": gap}
    if not converged:
        report_failure(info, method.name, f"min-norm solve stopped with duality gap {gap:.3g}")
    return torch.as_tensor(x, dtype=grads.dtype, device=grads.device), info


class MGDA(GradientMethod):
    name = "mgda"
    paper = "Sener & Koltun, Multi-Task Learning as Multi-Objective Optimization, NeurIPS 2018"

    def aggregate(self, grads, losses):
        x, info = min_norm_point(self, grads)
        weights = self.n_tasks * x
        info["weights"] = weights
        return weights @ grads, info
