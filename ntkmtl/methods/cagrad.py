"""CAGrad — conflict-averse gradient descent (Liu et al., NeurIPS 2021).

With g_0 the mean gradient and c (0.4) the radius: maximise the worst task improvement within a
ball around g_0. Its dual on the simplex,

    x* = argmin_{x ∈ Δ_K} g_xᵀ g_0 + c‖g_0‖ ‖g_x‖,    g_x = Σ_k x_k g_k,

gives the update d = (g_0 + c'/‖g_x*‖ · g_x*) / (1 + c²), c' = c‖g_0‖ + 1e-8, applied times K as
in the reference (so c = 0 gives exactly the LS sum Σ_k g_k). The dual is solved on the Gramian:
``solver: slsqp`` (default) with scipy's SLSQP from x = 1/K on the raw Gramian, as the reference;
``solver: fista`` by accelerated projected gradient on the normalised Gramian to a 1e-6 duality
gap (``solvers.cagrad_weights``). An unconverged solve is counted in ``solver_failures``.
"""

from typing import Any

import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.reference_solvers import cagrad_slsqp
from ntkmtl.methods.solvers import as_numpy, cagrad_weights, report_failure
from ntkmtl.options import HParam


class CAGrad(GramianMethod):
    name = "cagrad"
    paper = "Liu et al., Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS 2021"
    hparams = (
        HParam("c", float, 0.4, "radius of the ball around the mean gradient", low=0.0),
        HParam(
            "solver",
            str,
            "slsqp",
            "the dual's solver: slsqp (scipy's SLSQP, as the reference) or fista "
            "(accelerated projected gradient to a 1e-6 duality gap)",
            choices=("slsqp", "fista"),
        ),
    )
    default_max_norm = 1.0

    def gramian_weights(self, gram, losses):
        return cagrad_update_weights(gram, self.c, self.solver, self.name)


def cagrad_update_weights(gram: torch.Tensor, c: float, solver: str = "slsqp", owner: str = "cagrad") -> StepResult:
    """CAGrad's applied weights K · (1/K + λ x*) / (1 + c²) from the Gramian, and what to log."""
    info: dict[str, Any] = {"solver_failures": 0}
    if solver == "slsqp":
        x_dual, converged = cagrad_slsqp(as_numpy(gram), c)
        if not converged:
            report_failure(info, owner, "SLSQP did not report success on the CAGrad dual", once="slsqp")
    else:
        x_dual, gap, converged = cagrad_weights(gram, c)
        info["duality_gap"] = gap
        if not converged:
            report_failure(info, owner, f"CAGrad dual solve stopped with duality gap {gap:.3g}")
    x = torch.as_tensor(x_dual, dtype=gram.dtype, device=gram.device)
    k = gram.shape[0]
    mean_norm = (gram.mean().clamp_min(0) + 1e-8).sqrt()
    x_norm = (x @ gram @ x).clamp_min(0).sqrt()
    lam = (c * mean_norm + 1e-8) / (x_norm + 1e-8)
    return StepResult(k * (1.0 / k + lam * x) / (1.0 + c**2), info)
