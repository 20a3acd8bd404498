"""The trainer ↔ method contract: Requirements, the checked StepResult, Gramian weights on a
matrix alone, the K-scaling in one place, and the one train_step."""

import math

import pytest
import torch

from ntkmtl.methods import METHODS, GramianMethod, Requirements, StepResult, get_method
from ntkmtl.methods.base import LossWeightingMethod
from ntkmtl.methods.cagrad import cagrad_update_weights
from ntkmtl.methods.fairgrad import fair_update_weights
from ntkmtl.methods.imtl import imtl_weights
from ntkmtl.methods.mgda import min_norm_point
from ntkmtl.training.step import train_step


def test_requirements_are_frozen_validated_and_give_the_chunks():
    assert Requirements().batch_chunks(10) is None and Requirements().max_chunks == 1
    chunked = Requirements(chunks=4)
    assert chunked.batch_chunks(10) == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert Requirements(chunks=4, chunking="balanced").batch_chunks(10)[-1] == slice(8, 10)
    with pytest.raises(ValueError, match="chunks=0 must be None or an integer >= 1"):
        Requirements(chunks=0)
    with pytest.raises(ValueError, match="chunking='even' is not valid"):
        Requirements(chunking="even")
    with pytest.raises(AttributeError):
        chunked.chunks = 2  # frozen


def test_each_method_declares_its_requirements_once():
    assert get_method("ntkmtl", 2).requirements.chunks is None
    assert get_method("ntkmtl", 2, n=3, chunking="balanced").requirements == Requirements(
        task_gradients=True, chunks=3, chunking="balanced"
    )
    assert get_method("ntkmtl_sr", 2).requirements == Requirements(representation=True, chunks=4)
    assert get_method("famo", 2).requirements == Requirements(losses_after_step=True)
    assert {n for n, c in METHODS.items() if c.requires.losses_after_step} == {"famo"}
    assert {n for n, c in METHODS.items() if not c.requires.task_gradients} == {
        "stl",
        "ls",
        "uw",
        "scaleinvls",
        "rlw",
        "dwa",
        "famo",
        "go4align",
        "ntkmtl_sr",
    }


def test_step_result_converts_what_it_logs_and_refuses_the_rest():
    result = StepResult(torch.ones(3), {"loss": torch.tensor(2.5), "failures": 1, "norms": torch.arange(3.0)})
    checked = result.checked(3, "method 'x'")
    assert checked["loss"] == 2.5 and type(checked["loss"]) is float and checked["failures"] == 1.0
    assert list(checked.logged(("a", "b", "c"))) == [
        ("method_loss", 2.5),
        ("method_failures", 1.0),
        ("method_norms_a", 0.0),
        ("method_norms_b", 1.0),
        ("method_norms_c", 2.0),
    ]
    assert "norms" in checked and checked.get("absent", 7) == 7 and torch.equal(checked["weights"], torch.ones(3))
    for values, message in (
        ({"matrix": torch.ones(3, 3)}, r"step value 'matrix' of shape \(3, 3\) cannot be logged"),
        ({"label": "big"}, r"step value 'label' of shape str cannot be logged"),
        ({"flag": True}, r"step value 'flag' of shape bool cannot be logged"),
        ({"weights": 1.0}, "collides with the task weights"),
    ):
        with pytest.raises(ValueError, match=message):
            StepResult(torch.ones(3), values).checked(3, "method 'x'")
    with pytest.raises(ValueError, match=r"step weights of shape \(2,\), expected \[3\]"):
        StepResult(torch.ones(2)).checked(3, "method 'x'")


class Unloggable(LossWeightingMethod):
    name = "unloggable"

    def loss_weights(self, losses):
        return torch.ones_like(losses)

    def _backward(self, losses, shared, heads, representation):
        return super()._backward(losses, shared, heads, representation).with_values(history=torch.ones(5))


def test_a_value_the_records_cannot_hold_is_an_error_not_dropped():
    theta = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"method 'unloggable': step value 'history' of shape \(5,\) cannot be logged"):
        Unloggable(2).backward(theta * 1.0, [theta])


# -- Gramian weightings, on a matrix alone -------------------------------------------------------
GRAM = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)  # orthogonal g_1, g_2 with ‖g_2‖ = 2‖g_1‖


def test_gramian_weights_need_no_model():
    x, info = min_norm_point(GRAM)
    assert torch.allclose(x, torch.tensor([0.8, 0.2], dtype=torch.float64), atol=1e-5) and info["solver_failures"] == 0
    ntk = get_method("ntkmtl", 2).gramian_weights(GRAM, torch.ones(2))
    assert torch.allclose(ntk.weights, torch.tensor([math.sqrt(5.0), math.sqrt(5.0 / 4.0)], dtype=torch.float64))
    assert torch.equal(ntk["ntk_eigenvalues"], torch.tensor([1.0, 4.0], dtype=torch.float64))
    fair = fair_update_weights(GRAM, 1.0)  # (GGᵀ) x = 1/x: x = (1, 1/2)
    assert torch.allclose(fair.weights, torch.tensor([1.0, 0.5], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(imtl_weights(GRAM), torch.tensor([2 / 3, 1 / 3], dtype=torch.float64))
    assert torch.allclose(cagrad_update_weights(GRAM, 0.0).weights, torch.ones(2, dtype=torch.float64))  # c = 0: LS
    pc = get_method("pcgrad", 2).gramian_weights(GRAM, torch.ones(2))  # no conflict: the sum
    assert torch.equal(pc.weights, torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize(
    "name, scaling",
    [
        ("mgda", "weights"),
        ("fairgrad", "weights"),
        ("ntkmtl", "update"),
        ("pcgrad", None),
        ("imtl", None),
        ("nashmtl", None),
        ("cagrad", None),
    ],
)
def test_k_scaling_is_declared_and_applied_once_by_the_base(name, scaling):
    method = get_method(name, 2)
    assert isinstance(method, GramianMethod) and method.k_scaling == scaling
    grads = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([0.25, 0.75], dtype=torch.float64)
    direction, result = method.combine(StepResult(x), grads)
    applied = 2 * x if scaling is not None else x
    assert torch.allclose(direction, applied @ grads)
    assert torch.equal(result.weights, 2 * x if scaling == "weights" else x)  # NTKMTL logs x, applies K·x


# -- the one train_step ---------------------------------------------------------------------------
def test_train_step_honours_the_requirements(problem, monkeypatch):
    p = problem(seed=0)
    method = get_method("famo", 2)
    seen = []
    monkeypatch.setattr(method, "update", lambda losses: seen.append(losses.clone()))
    outcome = train_step(method, p.loss_terms, p.optimizer(method), p.shared, p.head_params)
    assert outcome.stepped and outcome.finite and len(seen) == 1
    assert torch.allclose(seen[0], p.losses()[0].detach())  # the same batch's losses after the step
    assert not torch.allclose(seen[0], outcome.task_losses)

    sr = get_method("ntkmtl_sr", 2, n_splits=4)
    calls = []
    original = sr.backward
    monkeypatch.setattr(
        sr, "backward", lambda losses, *a, **k: calls.append((losses.shape, k)) or original(losses, *a, **k)
    )
    train_step(sr, p.loss_terms, p.optimizer(sr), p.shared, p.head_params)
    assert calls[0][0] == (4, 2) and calls[0][1]["representation"] is not None
    ls = get_method("ls", 2)
    monkeypatch.setattr(
        ls, "backward", lambda losses, *a, **k: calls.append((losses.shape, k)) or StepResult(torch.ones(2))
    )
    train_step(ls, p.loss_terms, p.optimizer(ls), p.shared, p.head_params)
    assert calls[1] == ((2,), {"representation": None})


def test_a_non_finite_loss_stops_the_step_before_any_gradient(problem):
    p = problem(seed=0)
    p.y[0, 0] = float("nan")
    method = get_method("ls", 2)
    outcome = train_step(method, p.loss_terms, p.optimizer(method), p.shared, p.head_params)
    assert outcome.result is None and not outcome.stepped and not outcome.finite
    assert all(q.grad is None for q in p.shared)
