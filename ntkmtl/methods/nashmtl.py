"""Nash-MTL — multi-task learning as a bargaining game (Navon et al., ICML 2022).

The update d = Gᵀα is the Nash bargaining solution: α > 0 solves

    (G Gᵀ) α = 1 / α        (element-wise: each task's improvement g_kᵀd = 1/α_k)

Two solvers (``solver``), both warm-started from the previous step's α:

- ``"newton"`` (default): α minimises the convex φ(α) = ½ αᵀ G Gᵀ α − Σ_k log α_k, whose
  stationary point is exactly that equation; damped Newton (``solvers.nash_weights``,
  ≤ ``optim_niter`` steps) reaches it to machine precision in ~5–20 K × K solves.
- ``"ecos"``: the reference's sequence of ``optim_niter`` convex problems — minimise
  Σ_k (GGᵀα)_k + φ̃(α), φ̃ = Σ log α_k + log (GGᵀα)_k linearised at the previous iterate, subject to
  −log α_k − log (GGᵀα)_k ≤ 0 — with cvxpy's ECOS (Gramian scaled by its Frobenius norm, compiled
  once in DPP form). Known defect of that scheme, kept and counted here: a start where some
  (GGᵀα)_k ≤ 0 makes the linearisation meaningless and ECOS answers "unbounded"; the reference
  swallows that and keeps α = 1 (plain LS) for the whole run.

Every solver error, non-optimal status or relative KKT residual ‖GGᵀα − 1/α‖/‖1/α‖ above
``KKT_TOL`` is counted in ``solver_failures`` (logged as a warning); ``kkt_residual`` is logged.
With ``update_weights_every`` > 1 the other steps reuse α with a single backward pass. The update
is Gᵀα (no factor K, as in the reference); heads get their plain gradients (trainer contract).
"""
import numpy as np
import torch

from ntkmtl.methods.base import GradientMethod, HParam
from ntkmtl.methods.gradients import apply_aggregated_gradient, gramian
from ntkmtl.methods.solvers import as_numpy, nash_residual, nash_weights, report_failure

KKT_TOL = 1e-3


class NashMTL(GradientMethod):
    name = "nashmtl"
    paper = "Navon et al., Multi-Task Learning as a Bargaining Game (Nash-MTL), ICML 2022"
    hparams = (
        HParam("optim_niter", int, 20, "solver iterations per weight update (Newton steps or ECOS sub-problems)", low=1, high=1000),
        HParam("solver", str, "newton", "'newton' (exact KKT solve) or 'ecos' (the reference's cvxpy scheme)", choices=("newton", "ecos")),
        HParam("update_weights_every", int, 1, "recompute α every this many steps", low=1, high=100000),
    )
    default_max_norm = 1.0
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
        constraints = [
            -cp.log(self.alpha_var[i]) - self.log_norm_param - cp.log(g_alpha[i]) <= 0 for i in range(k)
        ]
        objective = cp.Minimize(cp.sum(g_alpha) + self.slope_param @ self.alpha_var)
        self.problem = cp.Problem(objective, constraints)

    def solve(self, gram: np.ndarray, norm: float, info: dict) -> np.ndarray:
        """α for the Gramian gram·norm (gram normalised), warm-started from the previous step's α."""
        import cvxpy as cp

        if self.problem is None:
            self._build_problem()
        self.gram_param.value = gram
        self.log_norm_param.value = float(np.log(norm))
        alpha = self.alpha.numpy().copy()
        for _ in range(self.optim_niter):
            if nash_residual(gram * norm, alpha) < 1e-3:
                break
            # φ(α) = Σ log α_k + log (Gα)_k linearised at the previous iterate, divided by ‖GGᵀ‖
            self.slope_param.value = (1 / alpha + (1 / (gram @ alpha)) @ gram) / norm
            self.alpha_var.value = alpha
            try:
                self.problem.solve(solver=cp.ECOS, warm_start=True, max_iters=100)
            except cp.error.SolverError as error:
                report_failure(info, self.name, f"ECOS failed: {error}")
                break
            if self.problem.status != cp.OPTIMAL or self.alpha_var.value is None:
                report_failure(info, self.name, f"ECOS returned status {self.problem.status!r}")
                break
            new_alpha = np.maximum(self.alpha_var.value, 0.0)
            done = np.linalg.norm(new_alpha - alpha) < 1e-6
            alpha = new_alpha
            if done:
                break
        return alpha

    def aggregate(self, grads, losses):
        info = {"solver_failures": 0}
        gram = as_numpy(gramian(grads))
        norm = float(np.linalg.norm(gram))
        if norm > 0:
            if self.solver == "newton":
                alpha, residual, _ = nash_weights(torch.from_numpy(gram), self.alpha.numpy(), self.optim_niter)
            else:
                alpha = self.solve(gram / norm, norm, info)
                residual = nash_residual(gram, alpha)
            info["kkt_residual"] = residual
            if not residual <= KKT_TOL and info["solver_failures"] == 0:
                report_failure(info, self.name, f"relative KKT residual ‖GGᵀα − 1/α‖/‖1/α‖ = {residual:.3g} after {self.optim_niter} iterations")
            if np.all(np.isfinite(alpha)) and np.all(alpha > 0):
                self.alpha = torch.from_numpy(alpha)
        weights = self.alpha.to(dtype=grads.dtype, device=grads.device)
        info["weights"] = weights
        return weights @ grads, info

    def _backward(self, losses, shared, heads, representation):
        if self.step_count % self.update_weights_every == 0:
            return super()._backward(losses, shared, heads, representation)
        weights = self.alpha.to(dtype=losses.dtype, device=losses.device)
        parts = torch.autograd.grad((weights * losses).sum(), shared, retain_graph=bool(heads), allow_unused=True)
        direction = torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1) for p, g in zip(shared, parts)
        ])
        apply_aggregated_gradient(direction, shared, heads, losses)
        return {"weights": weights, "solver_failures": 0}
