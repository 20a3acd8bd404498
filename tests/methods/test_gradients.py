"""The shared gradient helpers against direct autograd, and NTKMTL-SR's weights by hand."""

import math

import pytest
import torch

from ntkmtl.methods import get_method
from ntkmtl.methods.gradients import chunk_slices, representation_chunk_norms, task_gradients


@pytest.mark.parametrize(
    "batch, sizes",
    [(9, [3, 3, 3]), (10, [3, 3, 3, 1]), (11, [3, 3, 3, 2]), (12, [3, 3, 3, 3]), (2, [1, 1]), (5, [2, 2, 1])],
)
def test_default_chunks_are_the_reference_torch_chunk_layout(batch, sizes):
    # the reference splits per-sample losses with torch.chunk(losses, 4): ceil(B/4) per chunk
    assert [len(c) for c in torch.chunk(torch.arange(batch), 4)] == sizes
    slices = chunk_slices(batch, 4)
    assert [s.stop - s.start for s in slices] == sizes
    assert slices[0].start == 0 and all(a.stop == b.start for a, b in zip(slices, slices[1:]))


def test_balanced_chunks_cover_the_batch_evenly():
    assert chunk_slices(10, 4, "balanced") == [slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]
    assert chunk_slices(9, 4, "balanced") == [slice(0, 3), slice(3, 5), slice(5, 7), slice(7, 9)]
    assert chunk_slices(2, 4, "balanced") == [slice(0, 1), slice(1, 2)]
    with pytest.raises(ValueError, match="layout='even' is not valid; valid: torch_chunk, balanced"):
        chunk_slices(4, 2, "even")


def test_task_gradients_match_autograd_and_zero_unused_parameters():
    torch.manual_seed(0)
    a, b, unused = (
        torch.randn(3, requires_grad=True),
        torch.randn(2, 2, requires_grad=True),
        torch.randn(4, requires_grad=True),
    )
    losses = torch.stack([(a**2).sum() + b.sum(), (a * b[0].sum()).sum(), torch.tensor(1.0)])
    grads = task_gradients(losses, [a, b, unused], retain_graph=True)
    assert grads.shape == (3, 3 + 4 + 4)
    for k in range(2):
        expected = torch.autograd.grad(losses[k], [a, b], retain_graph=True)
        assert torch.allclose(grads[k], torch.cat([expected[0], expected[1].reshape(-1), torch.zeros(4)]))
    assert torch.equal(grads[2], torch.zeros(11))


def test_representation_chunk_norms_match_per_chunk_gradients():
    torch.manual_seed(1)
    z = torch.randn(7, 3, requires_grad=True)
    w = torch.randn(3, 2)
    per_sample = (z @ w) ** 2  # [B, K]
    slices = chunk_slices(7, 3)
    losses = torch.stack([per_sample[s].mean(0) for s in slices])  # [n, K]
    norms = representation_chunk_norms(losses, z, slices)
    for j in range(3):
        for k in range(2):
            (g,) = torch.autograd.grad(losses[j, k], z, retain_graph=True)
            assert math.isclose(float(norms[j, k]), float((g**2).sum()), rel_tol=1e-5)


def test_representation_chunk_norms_with_one_representation_per_task():
    z = [torch.tensor([[1.0], [2.0]], requires_grad=True), torch.tensor([[3.0], [0.5]], requires_grad=True)]
    losses = torch.stack([torch.stack([z[0][0, 0], z[1][0, 0] * 2]), torch.stack([z[0][1, 0] * 3, z[1][1, 0]])])
    norms = representation_chunk_norms(losses, z, chunk_slices(2, 2))
    assert torch.equal(norms, torch.tensor([[1.0, 4.0], [9.0, 1.0]]))


def test_ntkmtl_sr_weights_by_hand():
    # chunk j is row j of z; L_kj = a_kj · z_j, so ‖∂L_kj/∂z‖² = a_kj²
    # task 0: a = [1, 2] -> λ0 = max(1, 4) = 4; task 1: a = [3, 0] -> λ1 = 9
    z = torch.ones(2, 1, requires_grad=True)
    a = torch.tensor([[1.0, 3.0], [2.0, 0.0]])  # [n, K]
    losses = a * z  # [n, K]: row j uses z_j only
    info = get_method("ntkmtl_sr", 2, n_splits=2).backward(losses, [z], representation=z)
    w = torch.tensor([(13 / 4) ** 0.5, (13 / 9) ** 0.5])
    assert torch.allclose(info["ntk_eigenvalues"], torch.tensor([4.0, 9.0]))
    assert torch.allclose(info["weights"], w)
    # loss Σ_k w_k mean_j L_kj -> ∂/∂z_j = Σ_k w_k a_jk / 2
    assert torch.allclose(z.grad.reshape(-1), (a @ w) / 2)


def test_per_task_views_give_the_same_norms_in_one_backward():
    torch.manual_seed(2)
    z = torch.tanh(torch.randn(6, 4, requires_grad=True))
    heads = [torch.nn.Linear(4, 1) for _ in range(3)]
    slices = chunk_slices(6, 2)

    def chunked(views):
        per_sample = torch.cat([h(v) for h, v in zip(heads, views)], dim=1) ** 2
        return torch.stack([per_sample[s].mean(0) for s in slices])

    shared = representation_chunk_norms(chunked([z] * 3), z, slices)
    views = [z.view_as(z) for _ in range(3)]
    assert torch.allclose(representation_chunk_norms(chunked(views), views, slices), shared)
    assert torch.allclose(representation_chunk_norms(chunked([z] * 3), [z] * 3, slices), shared)
