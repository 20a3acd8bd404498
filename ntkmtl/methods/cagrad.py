"""CAGrad — conflict-averse gradient descent (Liu et al., NeurIPS 2021).

With g_0 the mean gradient and c (0.4) the radius: maximise the worst task improvement within a
ball around g_0. Its dual on the simplex,

    x* = argmin_{x ∈ Δ_K} g_xᵀ g_0 + c‖g_0‖ ‖g_x‖,    g_x = Σ_k x_k g_k,

gives the update d = (g_0 + c‖g_0‖ / ‖g_x*‖ · g_x*) / (1 + c²), applied times K as in the
reference (so c = 0 gives exactly the LS sum Σ_k g_k). Solved on the Gramian
(``solvers.cagrad_weights``); an unconverged solve is counted in ``solver_failures``.
"""
import torch

from ntkmtl.methods.base import GradientMethod, HParam
from ntkmtl.methods.gradients import gramian
from ntkmtl.methods.solvers import cagrad_weights, report_failure


class CAGrad(GradientMethod):
    name = "cagrad"
    paper = "Liu et al., Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS 2021"
    hparams = (HParam("c", float, 0.4, "radius of the ball around the mean gradient", low=0.0),)
    default_max_norm = 1.0

    def aggregate(self, grads, losses):
        gram = gramian(grads)
        x, gap, converged = cagrad_weights(gram, self.c)
        info = {"solver_failures": 0, "duality_gap": gap}
        if not converged:
            report_failure(info, self.name, f"CAGrad dual solve stopped with duality gap {gap:.3g}")
        x = torch.as_tensor(x, dtype=grads.dtype, device=grads.device)
        k = self.n_tasks
        mean_norm = (gram.mean().clamp_min(0) + 1e-8).sqrt()
        x_norm = (x @ gram @ x).clamp_min(0).sqrt()
        lam = self.c * mean_norm / (x_norm + 1e-8)
        weights = k * (1.0 / k + lam * x) / (1.0 + self.c**2)
        info["weights"] = weights
        return weights @ grads, info
