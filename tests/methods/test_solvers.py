"""The shared solvers against independent answers: scipy's SLSQP, brute force, closed forms."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ntkmtl.methods.go4align import kmeans_1d
from ntkmtl.methods.solvers import (
    cagrad_weights,
    fair_weights,
    min_norm_weights,
    nash_weights,
    project_to_simplex,
)


def gram(k, p, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(1, p)) + rng.normal(size=(k, p)) * rng.uniform(0.2, 2.0, size=(k, 1))
    g *= rng.uniform(0.1, 10.0, size=(k, 1)) * scale
    return torch.from_numpy(g @ g.T)


def slsqp_on_simplex(objective, k):
    result = minimize(
        objective,
        np.full(k, 1.0 / k),
        bounds=[(0, 1)] * k,
        constraints={"type": "eq", "fun": lambda x: x.sum() - 1},
        tol=1e-12,
    )
    return result.fun


def test_project_to_simplex():
    assert np.allclose(project_to_simplex(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])
    assert np.allclose(project_to_simplex(np.array([2.0, 0.0])), [1.0, 0.0])
    assert np.allclose(project_to_simplex(np.array([1.0, 1.0, -5.0])), [0.5, 0.5, 0.0])


@pytest.mark.parametrize("k, p, seed", [(3, 20, 0), (6, 20, 1), (11, 50, 2), (40, 30, 3)])
def test_min_norm_matches_slsqp(k, p, seed):
    a = gram(k, p, seed)
    x, gap, converged = min_norm_weights(a)
    a = a.numpy()
    assert converged and abs(x.sum() - 1) < 1e-12 and x.min() >= 0
    best = slsqp_on_simplex(lambda y: y @ a @ y, k)
    assert x @ a @ x <= best * (1 + 1e-5) + 1e-9


@pytest.mark.parametrize("k, p, seed", [(3, 20, 0), (6, 20, 1), (11, 50, 2)])
@pytest.mark.parametrize("c", [0.4, 1.0])
def test_cagrad_dual_matches_slsqp(k, p, seed, c):
    a = gram(k, p, seed, scale=1e-3)  # tiny gradients: the solver must not depend on the scale
    x, gap, converged = cagrad_weights(a, c)
    a = a.numpy()
    radius = c * np.sqrt(a.mean() + 1e-8)
    objective = lambda y: y @ a.mean(1) + radius * np.sqrt(y @ a @ y + 1e-8)  # noqa: E731
    assert converged
    assert objective(x) <= slsqp_on_simplex(objective, k) + 1e-9 * (1 + abs(objective(x)))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3])
def test_fair_weights_solve_the_equation_at_any_scale(alpha, scale):
    a = gram(5, 40, 7, scale=scale)
    prior = np.array([1.0, 2.0, 0.5, 1.0, 1.5])
    x, residual, converged = fair_weights(a, alpha, prior)
    assert converged and np.all(x > 0)
    assert np.allclose(a.numpy() @ x, (prior / x) ** (1 / alpha), rtol=1e-3)


def test_fair_weights_report_a_system_without_positive_root():
    g = np.array([[1.0, 0.0], [0.0, 0.0]])  # task 1 has no gradient: A x = 1/x has no root
    _, residual, converged = fair_weights(torch.from_numpy(g @ g.T), 1.0)
    assert not converged and residual > 1e-4


@pytest.mark.parametrize("k, seed", [(2, 0), (11, 1), (40, 2)])
def test_nash_newton_reaches_the_kkt_point_from_a_cold_start(k, seed):
    a = gram(k, 3 * k, seed)
    alpha, residual, converged = nash_weights(a, np.ones(k), max_iter=20)
    assert converged and residual < 1e-9
    assert np.allclose(a.numpy() @ alpha, 1 / alpha, rtol=1e-6)


def brute_force_kmeans(values, groups):
    order = np.argsort(values)
    x = values[order]
    best, best_cost = None, np.inf
    for cuts in itertools.combinations(range(1, len(x)), groups - 1):
        parts = np.split(x, cuts)
        cost = sum(((p - p.mean()) ** 2).sum() for p in parts)
        if cost < best_cost:
            best_cost, best = cost, np.concatenate([np.full(len(p), p.mean()) for p in parts])
    out = np.empty(len(x))
    out[order] = best
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("groups", [1, 2, 3, 5])
def test_kmeans_1d_is_the_exact_optimum(seed, groups):
    values = np.random.default_rng(seed).exponential(size=8)
    assert np.allclose(kmeans_1d(values, groups), brute_force_kmeans(values, groups))


def test_kmeans_1d_with_more_groups_than_values_keeps_each_value():
    assert np.array_equal(kmeans_1d(np.array([3.0, 1.0]), 5), [3.0, 1.0])
