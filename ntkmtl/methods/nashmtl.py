"""Nash-MTL — multi-task learning as a bargaining game (Navon et al., ICML 2022).

The update d = Gᵀα is the Nash bargaining solution: α > 0 solves

    (G Gᵀ) α = 1 / α        (element-wise: each task's improvement g_kᵀd = 1/α_k)

Two solvers (``solver``), both warm-started from the previous step's α:

- ``"ecos"`` (default, the reference's scheme): up to ``optim_niter`` convex problems — minimise
  Σ_k (GGᵀα)_k + φ̃(α), φ̃ = Σ log α_k + log (GGᵀα)_k linearised at the previous iterate, subject to
  −log α_k − log (GGᵀα)_k ≤ 0 — with cvxpy's ECOS (Gramian scaled by its Frobenius norm), stopped
  as the reference stops: when ‖(GGᵀ/‖GGᵀ‖)α − 1/α‖ < 1e-3, when an iterate moves by < 1e-6 (that
  iterate is then not taken), or when ECOS fails (α stays). This scheme often stops far from the
  bargaining solution (relative KKT residuals of 0.7 are common), and a start where some
  (GGᵀα)_k ≤ 0 makes ECOS answer "unbounded", so α = 1 (plain LS) stays until the gradients
  change: the reference does the same, and the paper's Nash-MTL numbers come from it.
- ``"newton"``: α minimises the convex φ(α) = ½ αᵀ G Gᵀ α − Σ_k log α_k, whose stationary point
  is exactly that equation; damped Newton (``solvers.nash_weights``, ≤ ``optim_niter`` steps)
  reaches it to machine precision in ~5–20 K × K solves, and is much faster.

Every solver error, non-optimal status or relative KKT residual ‖GGᵀα − 1/α‖/‖1/α‖ above
``KKT_TOL`` is counted in ``solver_failures`` (the first of each kind is logged as a warning);
``kkt_residual`` is logged. With ``update_weights_every`` > 1 the other steps reuse α with a
single backward pass (the reference raises there). The update is Gᵀα (no factor K, as in the
reference), and, as in the reference, the heads get the gradient of Σ_k α_k L_k
(``head_gradients: plain``: their plain ∇L_k). No clipping by default: the reference's
``max_norm`` 1.0 is applied before the backward pass, so it never clips; ``max_norm`` > 0 clips
the formed update here.
"""

import numpy as np
import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.solvers import as_numpy, nash_residual, nash_weights, report_failure
from ntkmtl.options import HParam

KKT_TOL = 1e-3


class NashMTL(GramianMethod):
    name = "nashmtl"
    paper = "Navon et al., Multi-Task Learning as a Bargaining Game (Nash-MTL), ICML 2022"
    # the hyperparameters below, set as attributes by WeightMethod.__init__ (declared for type checkers)
    optim_niter: int
    solver: str
    update_weights_every: int
    hparams = (
        HParam(
            "optim_niter",
            int,
            20,
            "solver iterations per weight update (Newton steps or ECOS sub-problems)",
            low=1,
            high=1000,
        ),
        HParam(
            "solver",
            str,
            "ecos",
            "'ecos' (the reference's cvxpy scheme, as it stops) or 'newton' (the exact bargaining solution, faster)",
            choices=("ecos", "newton"),
        ),
        HParam("update_weights_every", int, 1, "recompute α every this many steps", low=1, high=100000),
    )
    objective_heads = True
    state_attributes = ("alpha",)

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device=device, **hparams)
        self.alpha = torch.ones(n_tasks, dtype=torch.float64)
        self.problem = None

    def _build_problem(self) -> None:
        """The convex sub-problem in DPP form (compiled once): the linearised term's slope and
        log ‖G Gᵀ‖ are parameters computed in numpy, so each solve only substitutes values."""
        import cvxpy as cp

        k = self.n_tasks
        self.alpha_var = cp.Variable(shape=(k,), nonneg=True)
        self.gram_param = cp.Parameter(shape=(k, k), value=np.eye(k))
        self.slope_param = cp.Parameter(shape=(k,), value=np.zeros(k))
        self.log_norm_param = cp.Parameter(value=0.0)
        g_alpha = self.gram_param @ self.alpha_var
        constraints = [-cp.log(self.alpha_var[i]) - self.log_norm_param - cp.log(g_alpha[i]) <= 0 for i in range(k)]
        objective = cp.Minimize(cp.sum(g_alpha) + self.slope_param @ self.alpha_var)
        self.problem = cp.Problem(objective, constraints)

    def solve(self, gram: np.ndarray, norm: float, info: dict) -> np.ndarray:
        """α for the Gramian gram·norm (gram normalised), warm-started from the previous step's α,
        iterated and stopped as the reference's ``NashMTL.solve_optimization``."""
        import cvxpy as cp

        if self.problem is None:
            self._build_problem()
        self.gram_param.value = gram
        self.log_norm_param.value = float(np.log(norm))
        alpha = self.alpha.numpy().copy()
        for _ in range(self.optim_niter):
            if np.linalg.norm(gram @ alpha - 1 / (alpha + 1e-10)) < 1e-3:
                break
            # φ(α) = Σ log α_k + log (Gα)_k linearised at the previous iterate, divided by ‖GGᵀ‖
            self.slope_param.value = (1 / alpha + (1 / (gram @ alpha)) @ gram) / norm
            self.alpha_var.value = alpha
            try:
                self.problem.solve(solver=cp.ECOS, warm_start=True, max_iters=100)
            except cp.error.SolverError as error:
                report_failure(info, self.name, f"ECOS failed: {error}", once="ecos-error")
                break
            new_alpha = self.alpha_var.value
            if new_alpha is None:
                report_failure(
                    info, self.name, f"ECOS returned status {self.problem.status!r}; α kept", once="ecos-none"
                )
                break
            if self.problem.status != cp.OPTIMAL:
                report_failure(info, self.name, f"ECOS returned status {self.problem.status!r}", once="ecos-status")
            if np.linalg.norm(new_alpha - alpha) < 1e-6:
                break
            alpha = new_alpha
        return alpha

    def gramian_weights(self, gram, losses):
        """α from the Gramian, warm-started from the previous step's α (kept when a solve fails)."""
        info = {"solver_failures": 0}
        dtype, device = gram.dtype, gram.device
        gram = as_numpy(gram)
        norm = float(np.linalg.norm(gram))
        if norm > 0:
            if self.solver == "newton":
                alpha, residual, _ = nash_weights(torch.from_numpy(gram), self.alpha.numpy(), self.optim_niter)
            else:
                alpha = self.solve(gram / norm, norm, info)
                residual = nash_residual(gram, alpha)
            info["kkt_residual"] = residual
            if not residual <= KKT_TOL and info["solver_failures"] == 0:
                report_failure(
                    info,
                    self.name,
                    f"relative KKT residual ‖GGᵀα − 1/α‖/‖1/α‖ = {residual:.3g} after {self.optim_niter} iterations",
                    once="kkt",
                )
            if np.all(np.isfinite(alpha)) and np.all(alpha > 0):
                self.alpha = torch.from_numpy(alpha)
        return StepResult(self.alpha.to(dtype=dtype, device=device), info)

    def _backward(self, losses, shared, heads, representation):
        if self.step_count % self.update_weights_every == 0:
            return super()._backward(losses, shared, heads, representation)
        weights = self.alpha.to(dtype=losses.dtype, device=losses.device)
        parts = torch.autograd.grad((weights * losses).sum(), shared, retain_graph=bool(heads), allow_unused=True)
        direction = torch.cat(
            [(g if g is not None else torch.zeros_like(p)).reshape(-1) for p, g in zip(shared, parts)]
        )
        self.apply_update(direction, shared, heads, losses, weights)
        return StepResult(weights, {"solver_failures": 0})
