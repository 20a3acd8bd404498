"""Known-good weights and update directions on hand-computed gradients.

Each task loss is linear in the shared parameter θ ∈ R² (L_k = a_kᵀθ + b_k at θ = 0), so the task
gradients g_k = a_k are exact and the expected update can be worked out by hand. Clipping is off
(max_norm=0) so that θ.grad is the method's raw update.
"""

import math

import pytest
import torch

from ntkmtl.methods import get_method


def linear_step(name, rows, offsets=None, n_tasks=None, **hparams):
    """Run one backward of method ``name`` on L_k = rows[k]ᵀθ + offsets[k]; return (θ.grad, info)."""
    a = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(offsets if offsets is not None else [1.0] * a.shape[-2], dtype=torch.float64)
    theta = torch.zeros(a.shape[-1], dtype=torch.float64, requires_grad=True)
    losses = a @ theta + b
    if losses.dim() == 2:  # [K, n] chunks given per task -> [n, K]
        losses = losses.T
    method = get_method(name, n_tasks or a.shape[0], max_norm=0.0, **hparams)
    info = method.backward(losses, [theta], representation=theta)  # z = θ: only ConsMTL reads it here
    return theta.grad, info


ORTHOGONAL = [[1.0, 0.0], [0.0, 2.0]]

# name, hparams, rows, offsets, expected weights, expected update θ.grad
TABLE = [
    ("ls", {}, ORTHOGONAL, None, [1, 1], [1, 2]),
    # λ = diag(GGᵀ) = [1, 4]; w = (Σλ/λ)^½ = [√5, √1.25]; update K Σ w_k g_k
    ("ntkmtl", {}, ORTHOGONAL, None, [math.sqrt(5), math.sqrt(1.25)], [2 * math.sqrt(5), 4 * math.sqrt(1.25)]),
    ("ntkmtl", {"ntk_exp": 1.0}, ORTHOGONAL, None, [5, 1.25], [10, 5]),
    # min-norm point of {[1,0],[0,2]}: x = [4/5, 1/5]; weights K·x
    ("mgda", {}, ORTHOGONAL, None, [1.6, 0.4], [1.6, 0.8]),
    # c = 0: the mean gradient, on the LS scale
    ("cagrad", {"c": 0.0}, ORTHOGONAL, None, [1, 1], [1, 2]),
    # IMTL-G: α1 g1·u1 = α2 g2·u2 -> α1 = 2 α2, Σα = 1
    ("imtl", {}, ORTHOGONAL, None, [2 / 3, 1 / 3], [2 / 3, 2 / 3]),
    # FairGrad α=1: diag(1,4) x = 1/x -> x = [1, 1/2]; weights K·x
    ("fairgrad", {}, ORTHOGONAL, None, [2, 1], [2, 2]),
    # α = 2: x1 = x1^(-1/2) -> 1; 4 x2 = x2^(-1/2) -> x2 = 4^(-2/3)
    ("fairgrad", {"alpha": 2.0}, ORTHOGONAL, None, [2, 2 * 4 ** (-2 / 3)], [2, 4 * 4 ** (-2 / 3)]),
    # Nash-MTL: the same equation as FairGrad α=1 (GGᵀα = 1/α), without the factor K
    ("nashmtl", {}, ORTHOGONAL, None, [1, 0.5], [1, 1]),
    ("nashmtl", {"solver": "ecos"}, ORTHOGONAL, None, [1, 0.5], [1, 1]),
    # PIVRG with no scores yet: uniform prior, FairGrad α = 2
    ("pivrg", {}, ORTHOGONAL, None, [2, 2 * 4 ** (-2 / 3)], [2, 4 * 4 ** (-2 / 3)]),
    ("consmtl", {}, ORTHOGONAL, None, [2, 2 * 4 ** (-2 / 3)], [2, 4 * 4 ** (-2 / 3)]),
    # PCGrad: g1·g2 = -1 < 0. g1^PC = g1 + ½ g2 = [½, ½]; g2^PC = g2 + g1 = [0, 1]
    ("pcgrad", {}, [[1.0, 0.0], [-1.0, 1.0]], None, [2, 1.5], [0.5, 1.5]),
    ("pcgrad", {}, [[1.0, 0.0], [1.0, 1.0]], None, [1, 1], [2, 1]),  # no conflict: plain sum
    # GradDrop: all components positive -> purity 1 > U, everything kept
    ("graddrop", {}, [[1.0, 2.0], [3.0, 1.0]], None, [1, 1], [4, 3]),
    # log-MGDA: ∇log L = [1,0]/1 and [0,2]/2 -> x = [½, ½]; c = ½/1 + ½/2 = ¾; w = x/c
    ("log_mgda", {}, ORTHOGONAL, [1.0, 2.0], [2 / 3, 2 / 3], [2 / 3, 2 / 3]),
    # log-IMTL on ∇log L = [1,0], [0,1]: equal projections -> α = [½, ½]
    ("log_imtl", {}, ORTHOGONAL, [1.0, 2.0], [0.5, 0.5], [0.5, 0.5]),
    ("log_cagrad", {"c": 0.0}, ORTHOGONAL, [1.0, 2.0], [1, 1], [1, 1]),
    # scale-invariant LS: w = 1/L
    ("scaleinvls", {}, ORTHOGONAL, [2.0, 4.0], [0.5, 0.25], [0.5, 0.5]),
    ("stl", {"main_task": 1}, ORTHOGONAL, None, [0, 1], [0, 2]),
    ("uw", {}, ORTHOGONAL, None, [0.5, 0.5], [0.5, 1]),
    # DWA's first step: w = 1; the reference averages the weighted losses (÷ K)
    ("dwa", {}, ORTHOGONAL, None, [1, 1], [0.5, 1]),
    ("dwa", {"loss_reduction": "sum"}, ORTHOGONAL, None, [1, 1], [1, 2]),
    # FAMO's first step: z uniform, w = (1/L) / Σ(1/L) = [¾, ¼]
    ("famo", {}, ORTHOGONAL, [1.0, 3.0], [0.75, 0.25], [0.75, 0.5]),
    # GO4Align, η = 0: v = (ΣL / L) / K = [5/2, 5/8, 5/8... ] grouped into 2 -> [2.5, mean(5/6, 5/8)]
    (
        "go4align",
        {"robust_step_size": 0.0, "num_groups": 2},
        [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
        [1.0, 3.0, 4.0],
        [8 / 3, (8 / 9 + 8 / 12) / 2, (8 / 9 + 8 / 12) / 2],
        [8 / 3 + (8 / 9 + 8 / 12) / 2, (8 / 9 + 8 / 12)],
    ),
]


@pytest.mark.parametrize(
    "name, hparams, rows, offsets, weights, update", TABLE, ids=[f"{r[0]}-{i}" for i, r in enumerate(TABLE)]
)
def test_known_weights(name, hparams, rows, offsets, weights, update):
    grad, info = linear_step(name, rows, offsets, **hparams)
    assert torch.allclose(info["weights"].double(), torch.tensor(weights, dtype=torch.float64), rtol=1e-4, atol=1e-6), (
        info["weights"]
    )
    assert torch.allclose(grad, torch.tensor(update, dtype=torch.float64), rtol=1e-4, atol=1e-6), grad
    assert info.get("solver_failures", 0) == 0


def test_ntkmtl_chunked_uses_largest_eigenvalue():
    # task 0: chunk gradients [1,0], [1,0] -> J Jᵀ = [[1,1],[1,1]] -> λ0 = 2
    # task 1: chunk gradients [0,1], [1,0] -> J Jᵀ = I -> λ1 = 1;  w = [(3/2)^½, 3^½]
    rows = [[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]  # [K, n, P]
    grad, info = linear_step("ntkmtl", rows, [[1.0, 1.0], [1.0, 1.0]], n_tasks=2, n=2)
    w = torch.tensor([1.5**0.5, 3**0.5], dtype=torch.float64)
    assert torch.allclose(info["ntk_eigenvalues"].double(), torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert torch.allclose(info["weights"].double(), w)
    mean_grads = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    assert torch.allclose(grad, 2 * w @ mean_grads)


def random_gradients(k, p=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, p, generator=gen, dtype=torch.float64)
        + 0.7 * torch.randn(k, p, generator=gen, dtype=torch.float64)
    ).tolist()


@pytest.mark.parametrize("k", [2, 3, 5])
def test_cagrad_with_c_zero_is_the_ls_update(k):
    rows = random_gradients(k)
    grad, _ = linear_step("cagrad", rows, c=0.0)
    assert torch.allclose(grad, torch.tensor(rows, dtype=torch.float64).sum(0))


@pytest.mark.parametrize("k", [3, 5])
def test_imtl_equalises_projections_on_unit_gradients(k):
    rows = torch.tensor(random_gradients(k), dtype=torch.float64)
    grad, info = linear_step("imtl", rows.tolist())
    projections = (rows / rows.norm(dim=1, keepdim=True)) @ grad
    assert torch.allclose(projections, projections[0].expand(k), rtol=1e-8)
    assert math.isclose(float(info["weights"].sum()), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("solver", ["newton", "ecos"])
@pytest.mark.parametrize("k", [3, 5])
def test_nashmtl_satisfies_its_kkt_condition(k, solver):
    rows = torch.tensor(random_gradients(k, seed=k), dtype=torch.float64)
    grad, info = linear_step("nashmtl", rows.tolist(), solver=solver)
    alpha = info["weights"].double()
    gram = rows @ rows.T
    assert torch.allclose(gram @ alpha, 1 / alpha, rtol=1e-3)
    assert info["kkt_residual"] < 1e-3
    assert torch.allclose(grad, alpha @ rows)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_fairgrad_solves_its_equation(alpha):
    rows = torch.tensor(random_gradients(4, seed=3), dtype=torch.float64)
    grad, info = linear_step("fairgrad", rows.tolist(), alpha=alpha)
    x = info["weights"].double() / 4
    assert torch.allclose(rows @ rows.T @ x, x ** (-1 / alpha), rtol=1e-3)


@pytest.mark.parametrize("k", [3, 5])
def test_mgda_is_the_min_norm_point(k):
    rows = torch.tensor(random_gradients(k, seed=k), dtype=torch.float64)
    grad, info = linear_step("mgda", rows.tolist())
    x = info["weights"].double() / k
    d = grad / k  # the min-norm element itself
    # optimality on the simplex: g_jᵀd ≥ ‖d‖² for every task, with equality where x_j > 0
    assert torch.all(rows @ d >= (d @ d) * (1 - 1e-5))
    assert torch.allclose((rows @ d)[x > 1e-4], (d @ d).expand(int((x > 1e-4).sum())), rtol=1e-4)


def test_pcgrad_projected_gradients_never_conflict_pairwise_for_two_tasks():
    rows = [[1.0, 0.2], [-2.0, 1.0]]
    g = torch.tensor(rows, dtype=torch.float64)
    grad, _ = linear_step("pcgrad", rows)
    pc1 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
    pc2 = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
    assert abs(pc1 @ g[1]) < 1e-12 and abs(pc2 @ g[0]) < 1e-12
    assert torch.allclose(grad, pc1 + pc2)


def test_nashmtl_newton_solves_where_the_reference_scheme_stalls():
    # (GGᵀ·𝟙)_0 < 0: the reference's linearisation at α = 1 is unbounded and it keeps α = 1
    rows = [[1.0, 0.0], [-1.2, 4.6]]
    gram = torch.tensor(rows, dtype=torch.float64) @ torch.tensor(rows, dtype=torch.float64).T
    assert (gram @ torch.ones(2, dtype=torch.float64))[0] < 0
    _, info = linear_step("nashmtl", rows, solver="newton")
    assert info["solver_failures"] == 0 and info["kkt_residual"] < 1e-9
    _, info = linear_step("nashmtl", rows)  # the default: the reference's scheme, and its stall
    assert info["solver_failures"] == 1 and torch.equal(info["weights"], torch.ones(2, dtype=torch.float64))


# TorchJD's documented outputs for J = [[-4, 1, 1], [6, 1, 1]] (torchjd.aggregation docstrings),
# and the factor between its scale convention and ours (ours: the reference library's).
TORCHJD = [
    ("pcgrad", {}, [0.5848, 3.8012, 3.8012], 1.0),
    ("imtl", {}, [0.0767, 1.0, 1.0], 1.0),
    ("mgda", {}, [0.0, 1.0, 1.0], 2.0),  # we apply K · x
    ("cagrad", {"c": 0.5}, [0.1835, 1.2041, 1.2041], 2 / 1.25),  # we apply K · d / (1 + c²)
    ("nashmtl", {}, [0.0542, 0.7061, 0.7061], None),  # same direction; TorchJD's α is on a rescaled Gramian
]


@pytest.mark.parametrize("name, hparams, expected, factor", TORCHJD, ids=[r[0] for r in TORCHJD])
def test_directions_agree_with_torchjd(name, hparams, expected, factor):
    grad, _ = linear_step(name, [[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], **hparams)
    expected = torch.tensor(expected, dtype=torch.float64)
    if factor is None:
        factor = float(grad @ expected / (expected @ expected))
        assert factor > 0
    assert torch.allclose(grad, factor * expected, atol=2e-4, rtol=2e-4)


def test_graddrop_equals_the_sign_mask_formula():
    torch.manual_seed(0)
    grads = torch.randn(4, 300, dtype=torch.float64)
    method = get_method("graddrop", 4)
    torch.manual_seed(1)
    direction, info = method.aggregate(grads, None)
    torch.manual_seed(1)
    purity = 0.5 * (1 + grads.sum(0) / (grads.abs().sum(0) + 1e-8))
    draw = torch.rand(300, dtype=torch.float64)
    mask = ((purity > draw) & (grads > 0)) | ((purity < draw) & (grads < 0))
    assert torch.allclose(direction, (grads * mask).sum(0))
    assert torch.allclose(info["weights"], (grads * mask).abs().sum(1) / grads.abs().sum(1))
