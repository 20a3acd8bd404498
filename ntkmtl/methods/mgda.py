"""MGDA — multiple-gradient descent (Désidéri 2012; as MTL: Sener & Koltun, NeurIPS 2018).

The update is the min-norm point of the convex hull of the task gradients,

    x* = argmin_{x ∈ Δ_K} ‖Σ_k x_k g_k‖²,    update = K · Σ_k x*_k g_k

(scaled by K like the reference, so the weights sum to K as LS's do). Solved on the K × K Gramian:
``solver: sener_koltun`` (default) with the MinNormSolver of Sener & Koltun's code, as the
reference (``reference_solvers.min_norm_sener_koltun``; it stops when the weights move by < 1e-5,
often well before the minimum); ``solver: fista`` by accelerated projected gradient to a 1e-6
duality gap (``solvers.min_norm_weights``). The Frank–Wolfe duality gap of the answer is logged
(``duality_gap``); an unconverged solve is counted in ``solver_failures``. MGDA-UB's variant on the representation is not included (as in the reference).
As in the reference, the weighted loss Σ_k w_k L_k is back-propagated into the heads too
(``head_gradients: plain`` gives them the plain ∇L_k instead).
"""

from typing import ClassVar

import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.reference_solvers import min_norm_sener_koltun
from ntkmtl.methods.solvers import as_numpy, min_norm_weights, report_failure
from ntkmtl.options import HParam

SOLVER = HParam(
    "solver",
    str,
    "sener_koltun",
    "the min-norm solver: sener_koltun (MinNormSolver, as the "
    "reference) or fista (accelerated projected gradient to a 1e-6 duality gap)",
    choices=("sener_koltun", "fista"),
)


def min_norm_point(gram: torch.Tensor, solver: str = "sener_koltun", owner: str = "mgda") -> tuple[torch.Tensor, dict]:
    """x* on the simplex for the Gramian ``gram`` (as a tensor like it) and the values to log:
    the Frank–Wolfe duality gap and the solver failures (``owner`` names the method in warnings)."""
    if solver == "sener_koltun":
        a = as_numpy(gram)
        x, converged = min_norm_sener_koltun(a)
        ax = a @ x
        gap = float(x @ ax - ax.min())  # Frank–Wolfe gap of ½xᵀAx, on A's own scale
    else:
        x, gap, converged = min_norm_weights(gram)
    info = {"solver_failures": 0, "duality_gap": gap}
    if not converged:
        report_failure(info, owner, f"min-norm solve stopped with duality gap {gap:.3g}", once="min-norm")
    return torch.as_tensor(x, dtype=gram.dtype, device=gram.device), info


class MGDA(GramianMethod):
    name = "mgda"
    paper = "Sener & Koltun, Multi-Task Learning as Multi-Objective Optimization, NeurIPS 2018"
    objective_heads = True
    hparams = (SOLVER,)
    k_scaling: ClassVar[str | None] = "weights"

    def gramian_weights(self, gram, losses):
        x, info = min_norm_point(gram, self.solver, self.name)
        return StepResult(x, info)
