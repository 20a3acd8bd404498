"""Mixed precision (train.precision): bf16 trains every method, fp16 loss scaling is exact and
skips overflowing steps, fp32 master weights and Gramians, clear errors for what is not supported."""

import math
import random
from itertools import islice

import pytest
import torch

from ntkmtl.benchmarks.toy import Toy
from ntkmtl.methods import METHODS
from ntkmtl.methods.gradients import gramian
from ntkmtl.precision import INIT_SCALE, MixedPrecision
from ntkmtl.train import Trial, TrialConfig, main

TOY_DATA = {"n_train": 256, "n_val": 64, "n_test": 64}  # 8 steps per epoch at batch 32


def toy_config(**overrides):
    settings = {"benchmark": "toy", "data": dict(TOY_DATA), "seed": 0, "epochs": 3, "batch_size": 32, "device": "cpu"}
    settings.update(overrides)
    return TrialConfig(**settings)


def train_losses(record, tasks=Toy.tasks):
    return [record[f"train_loss_{t}"] for t in tasks]


def timing_free(records):
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "samples_per_second")} for r in records]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_bf16_every_method_lowers_the_losses_stays_finite_and_tracks_fp32(name):
    trial = Trial(toy_config(method=name, precision="bf16"))
    records = list(trial.run())
    assert [r["status"] for r in records] == ["running", "running", "completed"]
    first, last = records[0], records[-1]
    if name == "stl":  # trains task 0 only
        assert last["train_loss_linear"] < 0.5 * first["train_loss_linear"]
    else:
        ratios = [b / a for a, b in zip(train_losses(first), train_losses(last))]
        assert max(ratios) < 1.0 and sum(ratios) / len(ratios) < 0.9, ratios
        assert last["val_delta_m"] < first["val_delta_m"] - 3.0
    for record in records:
        assert all(math.isfinite(v) for k, v in record.items() if isinstance(v, float)), record
    assert all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in trial.model.parameters())
    fp32 = list(Trial(toy_config(method=name)).run())[-1]
    assert train_losses(last) == pytest.approx(train_losses(fp32), rel=3e-2)


def test_bf16_autocasts_the_forward_but_methods_see_fp32_losses_gradients_and_gramian(monkeypatch):
    from ntkmtl.methods import base

    trial = Trial(toy_config(method="ntkmtl", precision="bf16", epochs=1))
    seen = {"encoder": set(), "losses": set(), "grads": set()}

    def record_training_forward(module, args, out):
        if module.training:  # evaluation runs in fp32
            seen["encoder"].add(out.dtype)

    trial.model.encoder.register_forward_hook(record_training_forward)
    original = base.task_gradients

    def spy(losses, shared, retain_graph=False):
        seen["losses"].add(losses.dtype)
        grads = original(losses, shared, retain_graph)
        seen["grads"].add(grads.dtype)
        return grads

    monkeypatch.setattr(base, "task_gradients", spy)
    (record,) = trial.run()
    assert seen == {"encoder": {torch.bfloat16}, "losses": {torch.float32}, "grads": {torch.float32}}
    assert all(p.dtype == torch.float32 for p in trial.model.parameters())  # master weights
    assert all(v.dtype == torch.float32 for s in trial.optimizer.state.values() for v in s.values() if v.dim())
    # evaluation runs in fp32: its metrics are not bf16 numbers
    assert record["val_mae_linear"] != float(torch.tensor(record["val_mae_linear"]).bfloat16())


def test_gramian_is_fp32_even_inside_an_autocast_region():
    grads = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (grads @ grads.T).dtype == torch.bfloat16  # what a plain matmul would give
        gram = gramian(grads)
    assert gram.dtype == torch.float32
    assert torch.equal(gram, grads @ grads.T)


def test_bf16_is_close_to_fp32_but_really_lower_precision():
    (fp32,) = Trial(toy_config(epochs=1)).run()
    (bf16,) = Trial(toy_config(epochs=1, precision="bf16")).run()
    assert train_losses(bf16) != train_losses(fp32)  # autocast really changed the arithmetic
    assert train_losses(bf16) == pytest.approx(train_losses(fp32), rel=2e-2)


def fp32_gradients_and_info(name, loss_scale=None):
    """One step's gradients on the toy model in fp32 arithmetic, with or without fp16's loss scale."""
    torch.manual_seed(0)
    benchmark = Toy(**TOY_DATA)
    model = benchmark.build_model()
    method = METHODS[name](n_tasks=3)
    precision = MixedPrecision("fp16", torch.device("cpu"), model.parameters()) if loss_scale else None
    x, y = benchmark.splits()["train"][:32]
    outputs, z = model((x, y))
    if precision is not None:
        precision.scale = loss_scale
        sums, counts = precision.loss_terms(benchmark, outputs, (x, y))
    else:
        sums, counts = benchmark.loss_terms(outputs, (x, y))
    losses = sums.sum(0) / counts.sum(0)
    info = method.backward(losses, model.shared_parameters(), model.task_specific_parameters(), representation=z)
    grads = [p.grad.clone() for p in model.parameters()] + [p.grad.clone() for p in method.parameters()]
    return grads, info, precision


@pytest.mark.parametrize(
    "name", ["ls", "uw", "dwa", "famo", "go4align", "log_mgda", "ntkmtl", "nashmtl", "pcgrad", "cagrad"]
)
def test_fp16_loss_scale_leaves_every_gradient_and_weight_unchanged(name):
    """The scale lives only between the loss terms and the parameters: methods see true values."""
    plain, plain_info, _ = fp32_gradients_and_info(name)
    scaled, scaled_info, precision = fp32_gradients_and_info(name, loss_scale=2.0**14)
    assert not bool(precision._overflow)
    for a, b in zip(plain, scaled):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9), (a - b).abs().max()
    assert torch.allclose(plain_info["weights"], scaled_info["weights"], rtol=1e-6)


def test_fp16_overflow_skips_the_step_halves_the_scale_and_methods_see_finite_gradients():
    trial = Trial(toy_config(method="ntkmtl", precision="fp16"))
    trial.precision.scale = 2.0**127  # the toy's gradients (the wave task's are > 2) overflow fp32 at once
    before = [p.detach().clone() for p in trial.model.parameters()]
    batch = next(iter(trial.train_loader))
    from ntkmtl.train import EpochStats

    stats = EpochStats(Toy.tasks)
    trial._step(batch, stats)
    assert trial.precision.skipped_steps == 1 and trial.precision.scale == 2.0**126
    assert all(torch.equal(a, b) for a, b in zip(before, trial.model.parameters()))  # no optimizer step
    assert all(math.isfinite(w) for w in stats.weight_sum.tolist())  # the method got finite (zeroed) gradients
    trial.precision.scale = 2.0**10
    trial._step(batch, stats)
    assert trial.precision.skipped_steps == 1 and trial.precision.good_steps == 1
    assert not all(torch.equal(a, b) for a, b in zip(before, trial.model.parameters()))


@pytest.mark.parametrize("name", ["ls", "uw", "famo", "ntkmtl", "nashmtl"])
def test_fp16_trains_the_toy_with_a_backed_off_scale(name):
    trial = Trial(toy_config(method=name, precision="fp16"))
    records = list(trial.run())
    assert records[-1]["status"] == "completed"
    ratios = [b / a for a, b in zip(train_losses(records[0]), train_losses(records[-1]))]
    assert max(ratios) < 1.0 and sum(ratios) / len(ratios) < 0.9, ratios
    if name != "famo":  # FAMO's weights sum to 1: its gradients are small enough for 2^16
        assert trial.precision.skipped_steps >= 1  # 2^16 overflows fp16 at first, as with GradScaler
    assert trial.precision.scale <= INIT_SCALE
    assert all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in trial.model.parameters())


def test_fp16_two_epochs_restore_two_epochs_equals_four(tmp_path):
    config = toy_config(method="ntkmtl", precision="fp16", epochs=4)
    straight = Trial(config)
    full = list(straight.run())
    first = Trial(config)
    records = list(islice(first.run(), 2))
    first.save_checkpoint(tmp_path)
    torch.manual_seed(1234)
    random.seed(1234)
    resumed = Trial(config)
    resumed.load_checkpoint(tmp_path)
    assert resumed.precision.state_dict() == first.precision.state_dict()
    records += list(resumed.run())
    assert timing_free(records) == timing_free(full)
    assert resumed.precision.state_dict() == straight.precision.state_dict()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"precision": "fp8"}, "setting precision='fp8' is not valid; valid: one of 'fp32', 'bf16', 'fp16'"),
        ({"precision": "fp16", "method": "ntkmtl_sr"}, "not available for method 'ntkmtl_sr'.*use bf16 or fp32"),
        ({"precision": "fp16", "method": "consmtl"}, "not available for method 'consmtl'"),
        ({"precision": "fp16", "method": "ntkmtl", "task_gradients": "batched"}, "needs task_gradients 'loop'"),
        (
            {"task_gradients": "vmap"},
            "setting task_gradients='vmap' is not valid; valid: one of 'auto', 'loop', 'batched'",
        ),
    ],
)
def test_unsupported_precision_settings_are_one_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        Trial(toy_config(**overrides))


def test_fp16_with_auto_task_gradients_uses_the_loop():
    assert Trial(toy_config(method="ntkmtl", precision="fp16")).task_gradient_mode == "loop"


def test_cli_precision_flag(capsys):
    code = main(
        [
            "--benchmark",
            "toy",
            "--method",
            "ntkmtl",
            "--epochs",
            "1",
            "--precision",
            "bf16",
            "--no-progress",
            "--device",
            "cpu",
            "--data",
            "n_train=64",
        ]
    )
    assert code == 0 and "epoch 1/1 completed" in capsys.readouterr().out
    assert main(["--benchmark", "toy", "--precision", "half", "--no-progress"]) == 2
    assert "precision='half' is not valid" in capsys.readouterr().err
