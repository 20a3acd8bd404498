"""The generic benchmark pieces: Δm on known vectors, chunked losses, data-option validation."""

import pytest
import torch

from ntkmtl.benchmarks import get_benchmark
from ntkmtl.benchmarks.base import Metric, chunk_losses, delta_m

# Two "higher is better" metrics and one "lower is better" one, with round baselines.
METRICS = (Metric("acc", True, 0.5), Metric("f1", True, 0.8), Metric("err", False, 2.0))


def test_delta_m_by_hand():
    assert delta_m({"acc": 0.5, "f1": 0.8, "err": 2.0}, METRICS) == 0.0  # the STL baselines themselves
    # acc +20 % (better → −20), f1 −10 % (worse → +10), err +50 % (worse → +50): mean 40/3
    assert delta_m({"acc": 0.6, "f1": 0.72, "err": 3.0}, METRICS) == pytest.approx(40 / 3)
    # everything better: acc +100 %, f1 +25 %, err −50 % → −(100 + 25 + 50) / 3
    assert delta_m({"acc": 1.0, "f1": 1.0, "err": 1.0}, METRICS) == pytest.approx(-175 / 3)


def test_delta_m_of_qm9_uses_the_paper_baselines():
    qm9 = get_benchmark("qm9")
    baselines = [0.060, 0.156, 60.54, 51.22, 0.419, 3.08, 39.3, 42.9, 41.7, 43.1, 0.061]
    assert [m.baseline for m in qm9.metrics] == baselines and not any(m.higher_is_better for m in qm9.metrics)
    doubled = {m.name: 2 * m.baseline for m in qm9.metrics}
    assert qm9.delta_m(doubled) == pytest.approx(100.0)  # every MAE twice the STL one: +100 %
    one_halved = {m.name: m.baseline for m in qm9.metrics} | {"mae_U0": 39.3 / 2}
    assert qm9.delta_m(one_halved) == pytest.approx(-50 / 11)


def test_chunk_losses_are_per_chunk_ratios_of_sums():
    sums = torch.tensor([[1.0, 4.0], [5.0, 0.0], [2.0, 6.0], [6.0, 3.0]])
    counts = torch.tensor([[1.0, 2.0], [3.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # sample 1 has no task-1 pixels
    losses = chunk_losses(sums, counts, [slice(0, 2), slice(2, 4)])
    # chunk 0: 6/4, 4/2; chunk 1: 8/3, 9/3 (a ratio of sums, not a mean of per-sample ratios)
    assert torch.allclose(losses, torch.tensor([[1.5, 2.0], [8 / 3, 3.0]]))
    assert torch.allclose(chunk_losses(sums, counts, [slice(0, 4)]), torch.tensor([[2.0, 2.6]]))


def test_bad_data_option_quotes_the_value_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown data option 'train_sise' \(value 5\); valid options: source, root"):
        get_benchmark("qm9", train_sise=5)
    with pytest.raises(ValueError, match=r"val_size=20000 is out of range; valid: int in \[1, 10000\]"):
        get_benchmark("qm9", val_size=20_000)


def test_train_defaults_hold_the_schedule_options_and_the_gpu_share():
    from ntkmtl.benchmarks import LR_SCHEDULES, TrainDefaults, benchmark_class

    shares = {"qm9": 0.25, "celeba": 0.5, "nyuv2": 1.0, "cityscapes": 1.0, "toy": 0.0}
    assert {name: benchmark_class(name).defaults.gpu_fraction for name in shares} == shares
    assert benchmark_class("qm9").defaults.schedule("plateau") == {"factor": 0.7, "patience": 10, "min_lr": 1e-5}
    own = TrainDefaults(1, 2, 1e-3, "step", gpu_fraction=0.5, schedule_options={"step": {"gamma": 0.1}})
    assert own.schedule("step") == {"step_size": 100, "gamma": 0.1} and own.schedule("cosine") == LR_SCHEDULES["cosine"]
    with pytest.raises(TypeError, match="gpu_fraction"):
        TrainDefaults(1, 2, 1e-3, "step")  # a new benchmark cannot forget its GPU share
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        TrainDefaults(1, 2, 1e-3, "linear", gpu_fraction=1.0)
    with pytest.raises(ValueError, match="gpu_fraction=1.5"):
        TrainDefaults(1, 2, 1e-3, "step", gpu_fraction=1.5)
