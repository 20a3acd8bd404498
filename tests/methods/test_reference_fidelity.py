"""What the reference library (jianke0604/NTKMTL, methods/weight_methods.py) computes, by hand.

Tiny problem: L_k = c_k · (a_kᵀθ + b_k) at θ = 0 and head parameters c_k = 1, so ∂L_k/∂θ = a_k,
L_k = b_k and ∂L_k/∂c_k = b_k. A method that back-propagates its weighted objective Σ_k w_k f_k
into the heads (f_k = L_k, or log L_k for the log variants, ∂ log L_k/∂c_k = 1) gives head k the
gradient w_k ∂f_k/∂c_k; the others give it the plain ∂L_k/∂c_k = b_k.
"""

import math
import random

import pytest
import torch

from ntkmtl.methods import METHODS, get_method

ORTHOGONAL = [[1.0, 0.0], [0.0, 2.0]]


def step_with_heads(name, rows, offsets, **hparams):
    a = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(offsets, dtype=torch.float64)
    theta = torch.zeros(a.shape[1], dtype=torch.float64, requires_grad=True)
    heads = [torch.ones((), dtype=torch.float64, requires_grad=True) for _ in offsets]
    losses = torch.stack([c * (a_k @ theta + b_k) for c, a_k, b_k in zip(heads, a, b)])
    method = get_method(name, len(offsets), **hparams)
    info = method.backward(losses, [theta], heads)
    return theta.grad, torch.stack([h.grad for h in heads]), info


# name, offsets b (= the losses), the weights the method finds on ORTHOGONAL gradients (see
# test_weights.py), the reference's head gradients
HEADS = [
    ("mgda", [1.0, 3.0], [1.6, 0.4], [1.6 * 1, 0.4 * 3]),  # ∂(Σ w_k L_k)/∂c_k = w_k b_k
    ("imtl", [1.0, 3.0], [2 / 3, 1 / 3], [2 / 3 * 1, 1 / 3 * 3]),
    ("nashmtl", [1.0, 3.0], [1.0, 0.5], [1.0 * 1, 0.5 * 3]),
    ("log_mgda", [1.0, 2.0], [2 / 3, 2 / 3], [2 / 3, 2 / 3]),  # ∂(Σ w_k log L_k)/∂c_k = w_k
    ("log_imtl", [1.0, 2.0], [0.5, 0.5], [0.5, 0.5]),
    ("log_cagrad", [1.0, 2.0], None, [1.0, 1.0]),  # the K backward passes of log L_k: ∂ log L_k/∂c_k = 1
]


@pytest.mark.parametrize("name, offsets, weights, heads", HEADS, ids=[h[0] for h in HEADS])
def test_heads_get_the_gradient_of_the_weighted_objective_as_in_the_reference(name, offsets, weights, heads):
    _, head_grads, info = step_with_heads(name, ORTHOGONAL, offsets)
    if weights is not None:
        assert torch.allclose(info["weights"].double(), torch.tensor(weights, dtype=torch.float64), rtol=1e-4)
    assert torch.allclose(head_grads, torch.tensor(heads, dtype=torch.float64), rtol=1e-4), head_grads


@pytest.mark.parametrize("name", [h[0] for h in HEADS])
def test_plain_head_gradients_are_the_named_alternative(name):
    offsets = [1.0, 3.0]
    _, head_grads, _ = step_with_heads(name, ORTHOGONAL, offsets, head_gradients="plain")
    assert torch.allclose(head_grads, torch.tensor(offsets, dtype=torch.float64))


@pytest.mark.parametrize("name", ["ntkmtl", "cagrad", "pcgrad", "fairgrad", "graddrop", "pivrg"])
def test_methods_that_overwrite_the_shared_gradient_leave_heads_their_plain_gradient(name):
    # (the reference writes these through .backward() of each L_k and then replaces θ.grad)
    _, head_grads, _ = step_with_heads(name, ORTHOGONAL, [1.0, 3.0])
    assert torch.allclose(head_grads, torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert "head_gradients" not in {h.name for h in METHODS[name].all_hparams()}


def test_nashmtl_does_not_clip_by_default_as_the_reference():
    # The reference calls clip_grad_norm_ before loss.backward(): nothing is clipped.
    rows = [[3.0, 0.0], [0.0, 4.0]]  # α = [1/3, 1/4]: update Gᵀα = [1, 1], norm √2 > 1
    grad, _, info = step_with_heads("nashmtl", rows, [1.0, 1.0])
    assert torch.allclose(info["weights"].double(), torch.tensor([1 / 3, 1 / 4], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(grad, torch.tensor([1.0, 1.0], dtype=torch.float64), rtol=1e-6)
    clipped, _, _ = step_with_heads("nashmtl", rows, [1.0, 1.0], max_norm=1.0)
    assert math.isclose(float(clipped.norm()), 1.0, rel_tol=1e-6)


# The clipping that is in effect in the reference: its base WeightMethod.backward clips before
# loss.backward() (no effect); methods with their own backward clip the formed update, with the
# max_norm its trainers pass (1.0) or the constructor default (1.0).
REFERENCE_CLIPS = {"pcgrad", "cagrad", "log_cagrad", "fairgrad", "graddrop", "pivrg", "consmtl", "ntkmtl"}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_default_clipping_is_the_clipping_in_effect_in_the_reference(name):
    max_norm = {h.name: h.default for h in METHODS[name].all_hparams()}["max_norm"]
    assert max_norm == (1.0 if name in REFERENCE_CLIPS else 0.0)


def reference_imtl_weights(grads: torch.Tensor) -> torch.Tensor:
    """IMTL-G's α as the reference writes it: D = g_1 − g_k, U = u_1 − u_k, α_{2..K} = g_1 Uᵀ (D Uᵀ)⁻¹,
    with (D Uᵀ + 1e-8·I)⁻¹ when D Uᵀ cannot be inverted."""
    units = grads / grads.norm(dim=1, keepdim=True)
    d, u = grads[0] - grads[1:], units[0] - units[1:]
    try:
        inverse = torch.inverse(d @ u.T)
    except RuntimeError:
        inverse = torch.inverse(torch.eye(len(grads) - 1, dtype=grads.dtype) * 1e-8 + d @ u.T)
    rest = grads[0] @ u.T @ inverse
    return torch.cat([(1 - rest.sum()).reshape(1), rest])


@pytest.mark.parametrize(
    "rows",
    [
        [[1.0, 0.0, 0.5], [0.2, 2.0, 0.0], [0.3, -0.4, 1.0]],
        [[1.0, 1.0], [2.0, 2.0], [1.0, 0.0]],  # two parallel gradients: D Uᵀ is singular
    ],
    ids=["regular", "singular"],
)
def test_imtl_weights_match_the_reference_formula(rows):
    grads = torch.tensor(rows, dtype=torch.float64)
    theta = torch.zeros(grads.shape[1], dtype=torch.float64, requires_grad=True)
    info = get_method("imtl", len(rows)).backward(grads @ theta, [theta])
    assert torch.allclose(info["weights"].double(), reference_imtl_weights(grads), rtol=1e-6)
    assert info["solver_failures"] == (1 if rows[1] == [2.0, 2.0] else 0)


def test_mgda_pair_solution_keeps_the_reference_clamp():
    # g_2 = 2 g_1: the reference's two-task solution clamps γ to 0.999 instead of the exact [1, 0]
    _, _, info = step_with_heads("mgda", [[1.0, 0.0], [2.0, 0.0]], [1.0, 1.0])
    assert torch.allclose(info["weights"].double(), 2 * torch.tensor([0.999, 0.001], dtype=torch.float64))
    _, _, exact = step_with_heads("mgda", [[1.0, 0.0], [2.0, 0.0]], [1.0, 1.0], solver="fista")
    assert torch.allclose(exact["weights"].double(), torch.tensor([2.0, 0.0], dtype=torch.float64), atol=1e-6)


def reference_pcgrad(grads: list[torch.Tensor]) -> torch.Tensor:
    """PCGrad as the reference writes it, on P-vectors: one task list reshuffled in place by
    Python's random before each task; every task j (i included) whose gradient conflicts is projected out."""
    order, total = list(grads), torch.zeros_like(grads[0])
    for g_i in grads:
        g = g_i.clone()
        random.shuffle(order)
        for g_j in order:
            dot = g @ g_j
            if dot < 0:
                g -= dot * g_j / (g_j @ g_j)
        total += g
    return total


@pytest.mark.parametrize("k", [3, 5])
def test_pcgrad_follows_the_reference_order_and_self_projection(k):
    gen = torch.Generator().manual_seed(k)
    differs_from_paper_rule = 0
    for trial in range(40):
        rows = torch.randn(k, 3, generator=gen, dtype=torch.float64)
        random.seed(trial)
        expected = reference_pcgrad(list(rows))
        random.seed(trial)
        grad, _, _ = step_with_heads("pcgrad", rows.tolist(), [1.0] * k, max_norm=0.0)
        assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-12)
        random.seed(trial)
        paper, _, _ = step_with_heads("pcgrad", rows.tolist(), [1.0] * k, max_norm=0.0, self_projection=False)
        differs_from_paper_rule += not torch.allclose(paper, expected)
    assert differs_from_paper_rule > 0  # the self-projection does change some updates
