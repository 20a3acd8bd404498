"""Small solvers on the K × K Gramian A = G Gᵀ, shared by the gradient methods.

- ``min_norm_weights``: MGDA's min-norm point of the convex hull of the gradients,
  argmin_{x ∈ Δ} xᵀAx (Sener & Koltun 2018), used by mgda, log_mgda.
- ``cagrad_weights``: CAGrad's dual, argmin_{x ∈ Δ} xᵀA𝟙/K + c·√(xᵀAx) (Liu et al. 2021), used by
  cagrad, log_cagrad.
- ``fair_weights``: the positive root of A x = (p / x)^(1/α) (FairGrad, Ban & Ji 2024; with a prior
  p and α = 2 also PIVRG and ConsMTL).

All work in float64 on the CPU (K ≤ a few hundred) and return whether they converged, with a
certificate, so that a method counts an inaccurate solve (``report_failure``) instead of silently
using it. Problems are normalised by the Gramian's scale first, so the tolerances are relative.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger("ntkmtl.methods")

SIMPLEX_TOL = 1e-6
SIMPLEX_MAX_ITER = 2000


_WARNED: set[tuple[str, str]] = set()


def report_failure(info: dict[str, Any], method: str, message: str, once: str | None = None) -> None:
    """Count one failed or inaccurate solve in the step's log dict and log a warning. With ``once``
    (a name for the kind of failure), only its first warning in the process is logged: a solver
    that fails at every step would flood the log; the count still reaches method_solver_failures."""
    info["solver_failures"] = info.get("solver_failures", 0) + 1
    if once is not None:
        if (method, once) in _WARNED:
            return
        _WARNED.add((method, once))
        message += " (further ones are counted in method_solver_failures, not logged)"
    log.warning("%s: %s", method, message)


def as_numpy(matrix: torch.Tensor) -> np.ndarray:
    return matrix.detach().to(device="cpu", dtype=torch.float64).numpy()


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {x ≥ 0, Σx = 1} (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    index = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - cumulative / index > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


def minimize_on_simplex(
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    tol: float = SIMPLEX_TOL,
    max_iter: int = SIMPLEX_MAX_ITER,
) -> tuple[np.ndarray, float, bool]:
    """Minimise a convex function on the simplex: accelerated projected gradient (FISTA) with
    backtracking and adaptive restart. Returns (x, gap, converged), where gap = ∇f(x)ᵀx − min ∇f(x)
    is the Frank–Wolfe duality gap, an upper bound on f(x) − f*."""
    x = project_to_simplex(x0)
    fx, gx = value_and_grad(x)
    y, t, lipschitz = x.copy(), 1.0, 1.0
    gap = float(gx @ x - gx.min())
    for _ in range(max_iter):
        if gap <= tol:
            return x, gap, True
        fy, gy = value_and_grad(y)
        while True:
            candidate = project_to_simplex(y - gy / lipschitz)
            step = candidate - y
            fc, gc = value_and_grad(candidate)
            if fc <= fy + gy @ step + 0.5 * lipschitz * step @ step + 1e-15 or lipschitz > 1e12:
                break
            lipschitz *= 2.0
        if fc > fx:  # restart the momentum when it overshoots
            y, t = x.copy(), 1.0
            continue
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = candidate + ((t - 1.0) / t_next) * (candidate - x)
        x, fx, gx, t = candidate, fc, gc, t_next
        lipschitz *= 0.9  # let the step grow again where the function is flatter
        gap = float(gx @ x - gx.min())
    return x, gap, gap <= tol


def _scale(gram: np.ndarray) -> float:
    return float(np.max(np.diag(gram))) if gram.size else 0.0


def _normalised(gram: torch.Tensor) -> np.ndarray | None:
    """The Gramian divided by its largest diagonal entry (None when every gradient is zero)."""
    a = as_numpy(gram)
    scale = _scale(a)
    return a / scale if scale > 0 else None


def min_norm_weights(gram: torch.Tensor) -> tuple[np.ndarray, float, bool]:
    """MGDA: x* = argmin_{x ∈ Δ} ‖Σ_k x_k g_k‖² = argmin xᵀAx. Returns (x, gap, converged)."""
    a = _normalised(gram)
    if a is None:
        k = gram.shape[0]
        return np.full(k, 1.0 / k), 0.0, True
    k = a.shape[0]

    def value_and_grad(x):
        ax = a @ x
        return 0.5 * float(x @ ax), ax

    return minimize_on_simplex(value_and_grad, np.full(k, 1.0 / k))


def cagrad_weights(gram: torch.Tensor, c: float) -> tuple[np.ndarray, float, bool]:
    """CAGrad dual: x* = argmin_{x ∈ Δ} xᵀA𝟙/K + c·‖g_0‖·√(xᵀAx), g_0 the mean gradient.

    Returns (x, gap, converged); c = 0 makes every x optimal and the update the mean gradient.
    """
    a = _normalised(gram)
    if a is None:
        k = gram.shape[0]
        return np.full(k, 1.0 / k), 0.0, True
    k = a.shape[0]
    mean_row = a.mean(1)
    radius = c * math.sqrt(max(float(a.mean()), 0.0) + 1e-8)

    def value_and_grad(x):
        ax = a @ x
        norm = math.sqrt(max(float(x @ ax), 0.0) + 1e-8)
        return float(x @ mean_row) + radius * norm, mean_row + radius * ax / norm

    return minimize_on_simplex(value_and_grad, np.full(k, 1.0 / k))


def fair_weights(
    gram: torch.Tensor, alpha: float, prior: np.ndarray | None = None, tol: float = 1e-4
) -> tuple[np.ndarray, float, bool]:
    """The positive x solving A x = (p / x)^(1/α) (FairGrad's α-fair update; p = 1 unless given).

    A is scaled to unit diagonal maximum s first; with x = s^(−α/(α+1))·y the scaled problem has
    the same form, so the tolerance (on the relative residual) does not depend on the gradients'
    scale. Solved by bounded least squares as in the reference. Returns (x, residual, converged).
    """
    from scipy.optimize import least_squares

    a = as_numpy(gram)
    k = a.shape[0]
    p = np.ones(k) if prior is None else np.asarray(prior, dtype=np.float64)
    scale = _scale(a)
    if not scale > 0:
        return np.ones(k), 0.0, True
    a = a / scale
    power = 1.0 / alpha

    def residual(y):
        return a @ y - (p / y) ** power

    def jacobian(y):
        return a + np.diag(power * p**power * y ** (-power - 1.0))

    try:
        result = least_squares(residual, np.full(k, 1.0 / k), jac=jacobian, bounds=(0.0, np.inf))
        y = result.x
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            target = (p / y) ** power
            relative = float(np.linalg.norm(a @ y - target) / (np.linalg.norm(target) + 1e-12))
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return np.full(k, 1.0 / k) * scale ** (-alpha / (alpha + 1)), math.inf, False
    converged = bool(np.all(np.isfinite(y)) and np.all(y > 0) and relative <= tol)
    return y * scale ** (-alpha / (alpha + 1.0)), relative, converged


def nash_weights(
    gram: torch.Tensor, start: np.ndarray, max_iter: int, tol: float = 1e-6
) -> tuple[np.ndarray, float, bool]:
    """Nash-MTL's bargaining weights: the α > 0 with (G Gᵀ) α = 1/α.

    They minimise the self-concordant convex φ(α) = ½ αᵀAα − Σ_k log α_k (∇φ = Aα − 1/α), so
    damped Newton steps (step 1/(1+λ) while the Newton decrement λ > ¼) stay positive and converge
    globally, quadratically near α*. A is scaled by its Frobenius norm s first (α* = α̂*/√s), and the
    start (the previous step's α) is rescaled along its ray to the best multiple. Returns
    (α, relative residual ‖Aα − 1/α‖/‖1/α‖, converged); no positive root (e.g. a zero-gradient
    task) shows as a residual above ``tol``.
    """
    a = as_numpy(gram)
    k = a.shape[0]
    scale = float(np.linalg.norm(a))
    if not scale > 0:
        return np.ones(k), 0.0, True
    a = a / scale
    alpha = np.asarray(start, dtype=np.float64) * math.sqrt(scale)
    if not (np.all(np.isfinite(alpha)) and np.all(alpha > 0)):
        alpha = np.ones(k)
    curvature = float(alpha @ a @ alpha)
    if curvature > 0:
        alpha = alpha * math.sqrt(k / curvature)
    for _ in range(max_iter):
        gradient = a @ alpha - 1.0 / alpha
        hessian = a + np.diag(1.0 / alpha**2)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        decrement = math.sqrt(max(float(gradient @ step), 0.0))
        alpha = alpha - (step / (1.0 + decrement) if decrement > 0.25 else step)
        if decrement < 1e-10:
            break
    residual = nash_residual(a, alpha)
    converged = bool(np.all(np.isfinite(alpha)) and np.all(alpha > 0) and residual <= tol)
    return alpha / math.sqrt(scale), residual, converged


def nash_residual(gram: np.ndarray, alpha: np.ndarray) -> float:
    """‖Aα − 1/α‖ / ‖1/α‖: 0 exactly at the Nash bargaining solution, whatever A's scale."""
    inverse = 1.0 / np.maximum(alpha, 1e-30)
    return float(np.linalg.norm(gram @ alpha - inverse) / np.linalg.norm(inverse))
