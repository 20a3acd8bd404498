"""The reference library's solvers, re-implemented on the K × K Gramian A = G Gᵀ.

Their approximate answers are what the published numbers were computed with, so they are the
defaults; ``solvers.py`` holds the tighter solvers the methods offer as ``solver`` options.

- ``min_norm_sener_koltun``: MGDA's min-norm point as in Sener & Koltun's MinNormSolver (NeurIPS
  2018 code, used by the reference): the best pair of tasks in closed form, then projected-
  gradient steps with an exact line search, until the weights move by less than 1e-5 (L1).
- ``cagrad_slsqp``: CAGrad's dual solved with scipy's SLSQP from x = 1/K, as the CAGrad code.
"""

from __future__ import annotations

import numpy as np

from ntkmtl.methods.solvers import project_to_simplex

MIN_NORM_STOP = 1e-5  # L1 change of the weights that ends the projected-gradient loop
MIN_NORM_MAX_ITER = 10_000  # the reference loops without bound; this only guards against a hang
PAIR_CLAMP = (0.999, 0.001)  # the reference's weights when one gradient of a pair dominates


def min_norm_of_pair(aii: float, aij: float, ajj: float) -> tuple[float, float]:
    """(γ, cost) minimising ‖γ g_i + (1 − γ) g_j‖² from the three inner products; γ is clamped to
    0.999 (0.001) when g_i (g_j) alone is already the minimum, as in the reference."""
    if aij >= aii:
        return PAIR_CLAMP[0], aii
    if aij >= ajj:
        return PAIR_CLAMP[1], ajj
    gamma = (ajj - aij) / (aii + ajj - 2.0 * aij)
    return gamma, ajj + gamma * (aij - ajj)


def _step_to_boundary(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """x moved along the direction projected on Σ = 0, by the largest step (≤ 1) that keeps every
    coordinate in [0, 1] (steps below 1e-7 ignored), then projected onto the simplex."""
    projected = direction - direction.sum() / len(x)
    falling, rising = projected < 0, projected > 0
    to_zero = -x[falling] / projected[falling]
    to_one = (1.0 - x[rising]) / projected[rising]
    step = 1.0
    if (to_zero > 1e-7).any():
        step = float(to_zero[to_zero > 1e-7].min())
    if (to_one > 1e-7).any():
        step = min(step, float(to_one[to_one > 1e-7].min()))
    return project_to_simplex(x + step * projected)


def min_norm_sener_koltun(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """x on the simplex approximately minimising xᵀAx; returns (x, stopped by the criterion)."""
    k = a.shape[0]
    if k == 1:
        return np.ones(1), True
    best, x = np.inf, np.zeros(k)
    for i in range(k):
        for j in range(i + 1, k):
            gamma, cost = min_norm_of_pair(a[i, i], a[i, j], a[j, j])
            if cost < best:
                best = cost
                x = np.zeros(k)
                x[i], x[j] = gamma, 1.0 - gamma
    if k < 3:
        return x, True
    for _ in range(MIN_NORM_MAX_ITER):
        candidate = _step_to_boundary(x, -(a @ x))
        gamma, _ = min_norm_of_pair(x @ a @ x, x @ a @ candidate, candidate @ a @ candidate)
        new = gamma * x + (1.0 - gamma) * candidate
        if np.abs(new - x).sum() < MIN_NORM_STOP:
            return x, True
        x = new
    return x, False


def cagrad_slsqp(a: np.ndarray, c: float) -> tuple[np.ndarray, bool]:
    """CAGrad's dual x* = argmin_{x ∈ Δ} xᵀA𝟙/K + c'·√(xᵀAx + 1e-8), c' = c·√(mean A + 1e-8) + 1e-8,
    by SLSQP from x = 1/K with bounds [0, 1] and Σx = 1; returns (x, SLSQP reported success)."""
    from scipy.optimize import minimize

    k = a.shape[0]
    start = np.ones(k) / k
    radius = c * float(np.sqrt(a.mean() + 1e-8)) + 1e-8

    def objective(x):
        return float(x @ a @ start + radius * np.sqrt(x @ a @ x + 1e-8))

    result = minimize(
        objective, start, bounds=[(0.0, 1.0)] * k, constraints={"type": "eq", "fun": lambda x: 1 - x.sum()}
    )
    return result.x, bool(result.success)
