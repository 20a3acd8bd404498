"""Batched per-task gradients (train.task_gradients: batched) give the loop's G, on every benchmark model."""

import pytest
import torch

from ntkmtl.benchmarks.nets.celeba_cnn import CelebACNN
from ntkmtl.benchmarks.nets.segnet_mtan import SegNetMTAN
from ntkmtl.benchmarks.toy import ToyNet
from ntkmtl.methods import METHODS
from ntkmtl.methods.gradients import (
    batched_task_gradients,
    task_gradient_mode,
    task_gradients,
)
from ntkmtl.train import Trial, TrialConfig

GRADIENT_METHODS = sorted(name for name, cls in METHODS.items() if cls.requires.task_gradients)


def assert_same_gradients(loop, batched):
    assert loop.shape == batched.shape and loop.dtype == batched.dtype
    scale = loop.abs().max().clamp_min(1e-12)
    assert float((loop - batched).abs().max() / scale) < 1e-6
    assert float(loop.abs().sum()) > 0


def gradients_both_ways(model, batch, loss_fn):
    torch.manual_seed(0)
    outputs, _ = model(batch)
    losses = loss_fn(outputs)
    shared = list(model.shared_parameters())
    loop = task_gradients(losses, shared, retain_graph=True)
    batched = batched_task_gradients(losses, shared)
    return loop, batched


def test_toy_mlp():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 8, generator=gen), torch.randn(16, 3, generator=gen)
    torch.manual_seed(0)
    assert_same_gradients(*gradients_both_ways(ToyNet(3), (x, y), lambda out: ((out - y) ** 2).mean(0)))


def test_celeba_cnn_with_batchnorm():
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(4, 3, 32, 32, generator=gen), (torch.rand(4, 40, generator=gen) > 0.5).float()
    torch.manual_seed(0)
    model = CelebACNN(40, width_multiplier=0.0625)

    def losses(out):
        return torch.nn.functional.binary_cross_entropy_with_logits(out, labels, reduction="none").mean(0)

    assert_same_gradients(*gradients_both_ways(model, images, losses))


def test_segnet_mtan_with_attention_and_unpooling():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=gen)
    label = torch.randint(0, 13, (2, 32, 32), generator=gen)
    torch.manual_seed(0)
    model = SegNetMTAN((13, 1, 3), (False, False, True), width_multiplier=0.0625)

    def losses(out):
        seg = torch.nn.functional.cross_entropy(out[0], label)
        return torch.stack([seg, out[1].abs().mean(), (1 - out[2].sum(1)).mean()])

    assert_same_gradients(*gradients_both_ways(model, images, losses))


def test_qm9_mpnn_on_real_molecules(tmp_path):
    from ntkmtl.benchmarks.qm9 import QM9

    benchmark = QM9(cache_dir=str(tmp_path), progress=False, train_size=16, val_size=4, test_size=4)
    train, _, _ = benchmark.loaders(8, 0, 0)
    batch = next(iter(train))
    torch.manual_seed(0)
    model = benchmark.build_model()

    def losses(out):
        sums, counts = benchmark.loss_terms(out, batch)
        return sums.sum(0) / counts.sum(0)

    assert_same_gradients(*gradients_both_ways(model, batch, losses))


def test_unreached_parameters_and_constant_losses_give_zeros():
    a, b = torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([3.0]))
    losses = torch.stack([(a**2).sum(), (a * b).sum(), torch.tensor(5.0)])
    expected = torch.tensor([[2.0, 4.0, 0.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0]])
    assert torch.equal(batched_task_gradients(losses, [a, b], retain_graph=True), expected)
    assert torch.equal(task_gradients(losses, [a, b]), expected)
    assert torch.equal(batched_task_gradients(torch.ones(3), [a, b]), torch.zeros(3, 3))


def test_the_mode_switches_task_gradients_and_is_restored(monkeypatch):
    from ntkmtl.methods import gradients

    calls = []
    original = gradients.batched_task_gradients
    monkeypatch.setattr(gradients, "batched_task_gradients", lambda *a: calls.append(1) or original(*a))
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    task_gradients(torch.stack([(a**2).sum(), a.sum()]), [a])
    with task_gradient_mode("batched"):
        task_gradients(torch.stack([(a**2).sum(), a.sum()]), [a])
    task_gradients(torch.stack([(a**2).sum(), a.sum()]), [a])
    assert calls == [1]
    with (
        pytest.raises(ValueError, match="task_gradients='vmap' is not valid; valid: loop, batched"),
        task_gradient_mode("vmap"),
    ):
        pass


@pytest.mark.parametrize("name, hparams", [(m, {}) for m in GRADIENT_METHODS] + [("ntkmtl", {"n": 2})])
def test_a_trial_with_batched_gradients_matches_the_loop(name, hparams):
    def run(mode):
        config = TrialConfig(
            benchmark="toy",
            method=name,
            hparams=hparams,
            task_gradients=mode,
            device="cpu",
            data={"n_train": 64, "n_val": 32, "n_test": 32},
            epochs=2,
            batch_size=32,
        )
        trial = Trial(config)
        records = list(trial.run())
        return trial, records

    loop_trial, loop = run("loop")
    batched_trial, batched = run("batched")
    assert loop_trial.task_gradient_mode == "loop" and batched_trial.task_gradient_mode == "batched"
    for a, b in zip(loop, batched):
        for key, value in a.items():
            if isinstance(value, float) and key not in ("epoch_seconds", "samples_per_second"):
                assert b[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for p, q in zip(loop_trial.model.parameters(), batched_trial.model.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)


def test_auto_is_the_loop_on_cpu():
    trial = Trial(TrialConfig(benchmark="toy", method="ntkmtl", device="cpu", data={"n_train": 32}, epochs=1))
    assert trial.task_gradient_mode == "loop"
