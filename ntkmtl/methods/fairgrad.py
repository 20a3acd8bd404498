"""FairGrad — α-fair multi-task learning (Ban & Ji, Fair Resource Allocation in MTL, ICML 2024).

The update d = G ᵀ x maximises the α-fair utility of the task improvements g_kᵀd; its weights
are the positive root of

    (G Gᵀ) x = x^(−1/α)          (α = 1: proportional fairness, close to Nash-MTL)

applied times K as in the reference. Solved by bounded least squares on the scaled Gramian
(``solvers.fair_weights``); a relative residual above tolerance — e.g. no positive root, as when
a task's gradient is zero — is counted in ``solver_failures``.
"""

import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.solvers import fair_weights, report_failure
from ntkmtl.options import HParam


def fair_update_weights(gram: torch.Tensor, alpha: float, prior=None, owner: str = "fairgrad") -> StepResult:
    """x with (G Gᵀ) x = (prior / x)^(1/α) from the Gramian (before the K-scaling), and the
    values to log: the solver's relative residual and failures (``owner`` names the method)."""
    x, residual, converged = fair_weights(gram, alpha, prior)
    info = {"solver_failures": 0, "residual": residual}
    if not converged:
        report_failure(info, owner, f"(G Gᵀ) x = (p/x)^(1/α) solved only to relative residual {residual:.3g}")
    return StepResult(torch.as_tensor(x, dtype=gram.dtype, device=gram.device), info)


class FairGrad(GramianMethod):
    name = "fairgrad"
    paper = "Ban & Ji, Fair Resource Allocation in Multi-Task Learning (FairGrad), ICML 2024"
    hparams = (
        HParam("alpha", float, 1.0, "fairness α (1 proportional; 2 in some reference scripts)", low=0.0, low_open=True),
    )
    default_max_norm = 1.0
    k_scaling = "weights"

    def gramian_weights(self, gram, losses):
        return fair_update_weights(gram, self.alpha, owner=self.name)
