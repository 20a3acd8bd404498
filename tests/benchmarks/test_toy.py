"""The synthetic toy benchmark: deterministic data, imbalanced scales, hand-checked metrics."""

import pytest
import torch

from ntkmtl.benchmarks import get_benchmark
from ntkmtl.benchmarks.toy import SCALES, Toy


def test_registered_and_sizes(toy):
    assert isinstance(get_benchmark("toy"), Toy)
    splits = toy.splits()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [128, 64, 64]
    assert toy.tasks == ("linear", "wave", "quadratic")


def test_data_depends_on_data_seed_only(toy):
    x1, y1 = toy.splits()["train"].tensors
    x2, y2 = Toy(n_train=128, n_val=64, n_test=64).splits()["train"].tensors
    x3, _ = Toy(n_train=128, n_val=64, n_test=64, data_seed=1).splits()["train"].tensors
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    first_batch = [next(iter(toy.loaders(16, seed)[0]))[0] for seed in (0, 0, 1)]
    assert torch.equal(first_batch[0], first_batch[1]) and not torch.equal(first_batch[0], first_batch[2])


def test_targets_follow_their_formulas_and_scales():
    toy = Toy(n_train=4096, noise=0.0)
    x, y = toy.splits()["train"].tensors
    assert torch.allclose(y[:, 2], 0.1 * (x[:, 0] * x[:, 1] + x[:, 2] ** 2), atol=1e-6)
    assert y[:, 1].abs().max() <= SCALES["wave"] + 1e-5
    stds = y.std(0)
    assert stds[1] > 5 * stds[0] > 25 * stds[2]  # deliberately imbalanced


def test_mae_and_delta_m_by_hand(toy):
    class Zero(torch.nn.Module):
        def forward(self, batch):
            return torch.zeros(batch[0].shape[0], 3), batch[0]

    _, val, _ = toy.loaders(10, 0)
    values = toy.evaluate(Zero(), val, torch.device("cpu"))
    y = toy.splits()["val"].tensors[1]
    expected = y.abs().double().mean(0)
    assert [values[f"mae_{t}"] for t in toy.tasks] == pytest.approx(expected.tolist(), rel=1e-6)
    scaled = [values["mae_linear"] / 1.0, values["mae_wave"] / 10.0, values["mae_quadratic"] / 0.1]
    assert toy.delta_m(values) == pytest.approx(100 * sum(scaled) / 3 - 100)


def test_loss_terms_are_per_sample_squared_errors(toy):
    model = toy.build_model()
    batch = next(iter(toy.loaders(8, 0)[0]))
    outputs, views = model(batch)
    sums, counts = toy.loss_terms(outputs, batch)
    assert sums.shape == counts.shape == (8, 3)
    assert len(views) == 3 and all(torch.equal(v, views[0]) and v.shape == (8, 64) for v in views)
    assert torch.allclose(sums.sum(0) / counts.sum(0), ((outputs - batch[1]) ** 2).mean(0))
    assert len(model.shared_parameters()) == 4 and len(model.task_specific_parameters()) == 6


def test_bad_option_is_named():
    with pytest.raises(ValueError, match="n_train=0 is out of range"):
        Toy(n_train=0)
    with pytest.raises(ValueError, match="unknown data option 'size'"):
        Toy(size=3)
