"""Every method trains a small seeded two-task problem, clips when asked, and resumes exactly."""

import io
import logging
import math

import numpy as np
import pytest
import torch

from ntkmtl.methods import METHODS, get_method

ALL = sorted(METHODS)
STEPS = 30


def run(problem, method, steps, epoch_every=10):
    optimizer = problem.optimizer(method)
    info = None
    for step in range(steps):
        info = problem.step(method, optimizer)
        if (step + 1) % epoch_every == 0:
            with torch.no_grad():
                method.on_epoch_end(problem.losses()[0])
    return optimizer, info


@pytest.mark.parametrize("name", ALL)
def test_every_method_lowers_both_losses(name, problem, make_method):
    p = problem(seed=1)
    method = make_method(name)
    with torch.no_grad():
        start = p.losses()[0]
    head_before = [q.detach().clone() for q in p.heads[1].parameters()]
    _, info = run(p, method, STEPS)
    with torch.no_grad():
        end = p.losses()[0]
    assert torch.isfinite(info["weights"]).all() and info["weights"].shape == (2,)
    assert info.get("solver_failures", 0) == 0
    if name == "stl":  # trains task 0 only: task 1's head never moves
        assert end[0] < 0.8 * start[0]
        assert all(torch.equal(a, b) for a, b in zip(head_before, p.heads[1].parameters()))
    else:
        assert torch.all(end < 0.9 * start), (start, end)


@pytest.mark.parametrize("name", ALL)
def test_clipping_bounds_the_shared_gradient(name, problem, make_method):
    p = problem(seed=2)
    method = make_method(name, max_norm=0.05)
    losses, z = p.losses(method)
    info = method.backward(losses, p.shared, p.head_params, representation=z)
    norm = torch.sqrt(sum((q.grad**2).sum() for q in p.shared))
    assert info["grad_norm"] > 0.05  # the raw update was larger, so clipping really acted
    assert norm <= 0.05 * (1 + 1e-5)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_reproduces_the_next_step(name, problem, make_method):
    p = problem(seed=3)
    method = make_method(name)
    optimizer, _ = run(p, method, 5, epoch_every=2)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": [q.detach().clone() for q in p.shared + p.head_params],
            "optimizer": optimizer.state_dict(),
            "method": method.state_dict(),
            "rng": torch.get_rng_state(),
        },
        buffer,
    )
    first = p.step(method, optimizer)
    first_grads = [q.grad.clone() for q in p.shared + p.head_params]

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    q = problem(seed=3)
    with torch.no_grad():
        for param, saved in zip(q.shared + q.head_params, checkpoint["model"]):
            param.copy_(saved)
    restored = make_method(name)
    restored.load_state_dict(checkpoint["method"])
    optimizer = q.optimizer(restored)
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"])
    second = q.step(restored, optimizer)
    assert torch.equal(first["weights"], second["weights"])
    for a, b in zip(first_grads, (param.grad for param in q.shared + q.head_params)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["ntkmtl", "ntkmtl_sr"])
@pytest.mark.parametrize("n_chunks", [1, 4])
def test_ntk_methods_stay_finite_with_a_zero_gradient_task(name, n_chunks, problem):
    p = problem(seed=4)
    hparams = {"n": n_chunks} if name == "ntkmtl" else {"n_splits": n_chunks}
    method = get_method(name, 2, **hparams)
    losses, z = p.losses(method)
    losses = torch.stack([losses[..., 0], 0.0 * losses[..., 1].detach() + 0.3], dim=-1)  # task 1: constant
    info = method.backward(losses, p.shared, p.head_params, representation=z)
    assert torch.isfinite(info["weights"]).all()
    assert all(torch.isfinite(q.grad).all() for q in p.shared)


def test_fairgrad_counts_and_logs_an_unsolvable_system(caplog):
    theta = torch.zeros(2, requires_grad=True)
    losses = torch.stack([theta @ torch.tensor([1.0, 0.0]) + 1, 0 * theta.sum() + 1])  # task 1: zero gradient
    with caplog.at_level(logging.WARNING, logger="ntkmtl.methods"):
        info = get_method("fairgrad", 2).backward(losses, [theta])
    assert info["solver_failures"] == 1
    assert "fairgrad" in caplog.text and "residual" in caplog.text


def test_imtl_counts_a_singular_system(caplog):
    theta = torch.zeros(2, requires_grad=True)
    a = torch.tensor([1.0, 1.0])
    losses = torch.stack([theta @ a, 2 * theta @ a, theta @ torch.tensor([1.0, 0.0])])  # two parallel gradients
    with caplog.at_level(logging.WARNING, logger="ntkmtl.methods"):
        info = get_method("imtl", 3).backward(losses, [theta])
    assert info["solver_failures"] == 1 and "singular" in caplog.text
    assert torch.isfinite(theta.grad).all()


def test_dwa_per_epoch_weights_follow_the_epoch_loss_ratios():
    method = get_method("dwa", 2, weight_update="epochs")
    method.on_epoch_end(torch.tensor([1.0, 1.0]))
    assert torch.equal(method.loss_weights(torch.ones(2)), torch.ones(2))
    method.on_epoch_end(torch.tensor([0.5, 1.0]))  # ratios [0.5, 1]
    expected = 2 * torch.softmax(torch.tensor([0.25, 0.5]), 0)
    assert torch.allclose(method.loss_weights(torch.ones(2)), expected)


def reference_dwa_weights(step_losses, window=25, temp=2.0):
    """The reference library's DWA, re-stated: a FIFO of 2·window step losses that starts as ones;
    once more than ``window`` steps have run, w = K·softmax((mean newest half / mean oldest half) / T)."""
    k = len(step_losses[0])
    fifo = np.ones((2 * window, k), dtype=np.float32)
    weights, out = np.ones(k, dtype=np.float32), []
    for step, losses in enumerate(step_losses):
        fifo = np.concatenate([fifo[1:], np.asarray(losses, dtype=np.float32)[None]])
        if step > window:
            ratio = fifo[window:].mean(0) / fifo[:window].mean(0)
            weights = k * np.exp(ratio / temp) / np.exp(ratio / temp).sum()
        out.append(weights.copy())
    return out


@pytest.mark.parametrize("window", [25, 3])
def test_dwa_default_is_the_reference_window_of_step_losses(window):
    rng = np.random.default_rng(window)
    steps = [rng.uniform(0.2, 2.0, size=3).tolist() for _ in range(2 * window + 10)]
    hparams = {} if window == 25 else {"iteration_window": window}
    method = get_method("dwa", 3, **hparams)
    theta = torch.zeros(1, requires_grad=True)
    for losses, expected in zip(steps, reference_dwa_weights(steps, window)):
        info = method.backward(torch.tensor(losses) + theta, [theta])
        assert np.allclose(info["weights"].numpy(), expected, rtol=1e-6)
        # the reference's loss is (w · L).mean(): ∂/∂θ = Σ_k w_k / K
        assert math.isclose(float(theta.grad), float(np.mean(expected)), rel_tol=1e-6)
        theta.grad = None
    assert not np.allclose(expected, 1.0)  # the window was left: the weights really moved


def test_famo_update_moves_weight_to_the_task_that_improved_less():
    method = get_method("famo", 2)
    theta = torch.zeros(1, requires_grad=True)
    method.backward(torch.stack([theta.sum() + 1.0, theta.sum() + 1.0]), [theta])
    method.update(torch.tensor([0.5, 0.99]))  # task 0 improved a lot, task 1 barely
    z = torch.softmax(method.logits.detach(), 0)
    assert z[1] > z[0]


def test_famo_update_before_backward_is_a_clear_error():
    with pytest.raises(ValueError, match="update\\(\\) called before backward"):
        get_method("famo", 2).update(torch.ones(2))


def test_pivrg_prior_is_bounded_and_favours_the_worse_task():
    method = get_method("pivrg", 2)
    method.on_epoch_end(torch.tensor([1.0, 1.0]))
    method.on_epoch_end(torch.tensor([0.2, 0.9]))  # scores -80 %, -10 %: task 1 is worse off
    prior = method.prior()
    assert prior[1] > prior[0] and prior[1] / prior[0] <= 2.0 * (1 + 1e-9)
    assert torch.isclose(prior.sum(), torch.tensor(2.0, dtype=prior.dtype))


def test_consmtl_head_update_is_own_gradient_plus_bounded_consistency_term(problem):
    p = problem(seed=5)
    losses, z = p.losses()
    plain = torch.autograd.grad(losses.sum(), p.head_params, retain_graph=True)
    get_method("consmtl", 2, lambda_=0.0).backward(losses, p.shared, p.head_params, representation=z)
    assert all(torch.allclose(q.grad, g) for q, g in zip(p.head_params, plain))

    p.zero_grad()
    losses, z = p.losses()
    get_method("consmtl", 2, lambda_=100.0).backward(losses, p.shared, p.head_params, representation=z)
    for task in range(2):
        params = p.head_params[2 * task : 2 * task + 2]
        own = plain[2 * task : 2 * task + 2]
        extra = torch.sqrt(sum(((q.grad - g) ** 2).sum() for q, g in zip(params, own)))
        own_norm = torch.sqrt(sum((g**2).sum() for g in own))
        assert 0 < extra <= 0.1 * own_norm * (1 + 1e-5)


def test_consmtl_rejects_heads_that_do_not_split_by_task(problem):
    p = problem(seed=5)
    losses, z = p.losses()
    with pytest.raises(ValueError, match="3 task-specific parameters do not split into 2 tasks"):
        get_method("consmtl", 2).backward(losses, p.shared, p.head_params[:3], representation=z)


def test_nashmtl_reuses_alpha_between_updates(problem):
    p = problem(seed=6)
    method = get_method("nashmtl", 2, update_weights_every=3)
    optimizer = p.optimizer(method)
    weights = [p.step(method, optimizer)["weights"] for _ in range(4)]
    assert torch.equal(weights[1], weights[0]) and torch.equal(weights[2], weights[0])
    assert not torch.equal(weights[3], weights[0])
