"""The Ray-free trainer on the toy benchmark: records, determinism, resume, divergence, method paths, CLI."""

import json
import math
import random
import subprocess
import sys
from dataclasses import fields, replace
from itertools import islice

import pytest
import torch

from ntkmtl.benchmarks.toy import Toy
from ntkmtl.methods import METHODS, Requirements
from ntkmtl.methods.base import LossWeightingMethod
from ntkmtl.options import HParam, load_yaml
from ntkmtl.train import TRAIN_SETTINGS, Trial, TrialConfig, main, parse_value

TIMING_KEYS = ("epoch_seconds", "samples_per_second")
TOY_DATA = {"n_train": 128, "n_val": 64, "n_test": 64}


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def toy_config(**overrides):
    settings = dict(benchmark="toy", data=dict(TOY_DATA), seed=0, epochs=2, batch_size=32, device="cpu")
    settings.update(overrides)
    return TrialConfig(**settings)


class SpyMethod(LossWeightingMethod):
    """A loss-weighting method that records what the trainer hands it (and has FAMO-like state)."""

    name = "spy"
    paper = "test double"
    hparams = (HParam("chunks", int, 1, "chunks per batch", low=1),)
    requires = Requirements(losses_after_step=True)
    state_attributes = ("logits", "updates")

    def __init__(self, n_tasks, device=None, **hparams):
        super().__init__(n_tasks, device, **hparams)
        self.logits = torch.nn.Parameter(torch.zeros(n_tasks))
        self.updates = 0
        self.loss_shapes, self.representations, self.epoch_ends = [], [], []

    @property
    def requirements(self):
        return replace(self.requires, chunks=self.chunks if self.chunks > 1 else None)

    def parameters(self):
        return [self.logits]

    def loss_weights(self, losses):
        return self.n_tasks * torch.softmax(self.logits, 0)

    def _backward(self, losses, shared, heads, representation):
        self.loss_shapes.append(tuple(losses.shape))
        shapes = None if representation is None else [tuple(z.shape) for z in representation]
        self.representations.append(shapes)
        return super()._backward(losses, shared, heads, representation)

    def update(self, losses_after_step):
        self.updates += 1

    def on_epoch_end(self, mean_train_losses):
        self.epoch_ends.append(mean_train_losses.clone())


class SpyRepresentation(SpyMethod):
    name = "spy_sr"
    requires = Requirements(losses_after_step=True, representation=True)


@pytest.fixture
def spies(monkeypatch):
    monkeypatch.setitem(METHODS, "spy", SpyMethod)
    monkeypatch.setitem(METHODS, "spy_sr", SpyRepresentation)


def test_record_keys_are_the_design_contract():
    (record,) = Trial(toy_config(epochs=1)).run()
    tasks, metrics = Toy.tasks, [m.name for m in Toy().metrics]
    expected = {"epoch", "status", "lr", "epoch_seconds", "samples_per_second", "method_loss"}
    expected |= {f"train_loss_{t}" for t in tasks} | {f"weight_{t}" for t in tasks}
    expected |= {f"{s}_{m}" for s in ("val", "test") for m in metrics + ["delta_m"]}
    assert set(record) == expected
    assert record["epoch"] == 1 and record["status"] == "completed"
    assert all(isinstance(record[k], float) and math.isfinite(record[k]) for k in expected - {"epoch", "status"})
    assert [record[f"weight_{t}"] for t in tasks] == [1.0, 1.0, 1.0]  # LS


def test_first_epoch_is_locked_for_a_seeded_ls_run():
    (record,) = Trial(toy_config(epochs=1)).run()
    losses = [record[f"train_loss_{t}"] for t in Toy.tasks]
    assert losses == pytest.approx(LOCKED_TOY_LS_LOSSES, rel=1e-5)
    assert record["val_delta_m"] == pytest.approx(LOCKED_TOY_LS_VAL_DELTA_M, rel=1e-5)


# Measured once (torch 2.13 CPU); a change means the data, model, init order or loop changed.
LOCKED_TOY_LS_LOSSES = [1.0173729211091995, 44.67836284637451, 0.04370934842154384]
LOCKED_TOY_LS_VAL_DELTA_M = -6.240646839141848


def test_seeded_runs_are_deterministic_and_the_seed_matters():
    first = without_timing(Trial(toy_config(method="ntkmtl")).run())
    again = without_timing(Trial(toy_config(method="ntkmtl")).run())
    other = without_timing(Trial(toy_config(method="ntkmtl", seed=1)).run())
    assert first == again
    assert first[-1]["val_delta_m"] != other[-1]["val_delta_m"]


@pytest.mark.parametrize(
    "method, scheduler",
    [("spy", "plateau"), ("ntkmtl", "cosine"), ("ntkmtl_sr", "step")],
)
def test_two_epochs_restore_two_epochs_equals_four(spies, tmp_path, method, scheduler):
    config = toy_config(method=method, epochs=4, scheduler=scheduler)
    straight = Trial(config)
    full = list(straight.run())

    first = Trial(config)
    records = list(islice(first.run(), 2))
    first.save_checkpoint(tmp_path)
    torch.manual_seed(1234)  # a fresh process would start from other RNG states
    random.seed(1234)
    resumed = Trial(config)
    resumed.load_checkpoint(tmp_path)
    records += list(resumed.run())

    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert without_timing(records) == without_timing(full)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.method.state_dict().keys() == straight.method.state_dict().keys()


def test_checkpoint_of_another_method_is_refused(tmp_path):
    trial = Trial(toy_config(method="ls", epochs=1))
    list(trial.run())
    trial.save_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="checkpoint is for method='ls'"):
        Trial(toy_config(method="ntkmtl")).load_checkpoint(tmp_path)


def test_nan_targets_end_the_trial_as_diverged():
    records = list(Trial(toy_config(epochs=3, data={**TOY_DATA, "nan_targets": True})).run())
    assert len(records) == 1
    assert records[0]["status"] == "diverged"
    assert math.isnan(records[0]["val_delta_m"]) and math.isnan(records[0]["test_mae_linear"])


def test_a_loss_turning_nan_mid_run_gives_one_diverged_record(monkeypatch):
    trial = Trial(toy_config(method="ntkmtl", epochs=4))
    original = trial.benchmark.loss_terms
    calls = {"n": 0}

    def poisoned(outputs, batch):
        calls["n"] += 1
        sums, counts = original(outputs, batch)
        return (sums * float("nan"), counts) if calls["n"] > 6 else (sums, counts)  # 4 steps per epoch

    monkeypatch.setattr(trial.benchmark, "loss_terms", poisoned)
    records = list(trial.run())
    assert [r["status"] for r in records] == ["running", "diverged"]
    assert records[1]["epoch"] == 2


def test_loss_weighting_path_with_update_after_step_and_method_parameters(spies):
    trial = Trial(toy_config(method="spy", epochs=2))
    before = trial.method.logits.detach().clone()
    records = list(trial.run())
    method = trial.method
    steps = 2 * 4
    assert method.loss_shapes == [(3,)] * steps  # one full-batch loss vector per step
    assert method.representations == [None] * steps  # a losses-only method does not get z
    assert method.updates == steps  # FAMO's update(losses after the step)
    assert len(method.epoch_ends) == 2
    assert method.epoch_ends[0].tolist() == pytest.approx([records[0][f"train_loss_{t}"] for t in Toy.tasks], rel=1e-6)
    assert not torch.equal(method.logits.detach(), before)  # the optimiser trains method.parameters()


def test_representation_path_gets_z_and_chunked_losses(spies):
    trial = Trial(toy_config(method="spy_sr", hparams={"chunks": 4}, epochs=1))
    list(trial.run())
    assert trial.method.loss_shapes == [(4, 3)] * 4
    assert trial.method.representations == [[(32, 64)] * 3] * 4  # the toy model gives each head its view of z


def test_gradient_path_ntkmtl_weights_slow_the_large_task():
    (record,) = Trial(toy_config(method="ntkmtl", epochs=1)).run()
    assert record["weight_wave"] < record["weight_linear"] < record["weight_quadratic"]
    assert record["method_ntk_eigenvalues_wave"] > record["method_ntk_eigenvalues_linear"]
    assert "method_grad_norm" in record


def test_chunked_ntkmtl_and_ntkmtl_sr_train():
    for method, hparams in (("ntkmtl", {"n": 2}), ("ntkmtl_sr", {"n_splits": 4})):
        records = list(Trial(toy_config(method=method, hparams=hparams)).run())
        assert records[-1]["status"] == "completed"
        assert records[-1]["val_delta_m"] < records[0]["val_delta_m"] < 0


def test_cosine_schedule_and_plateau_on_val_delta_m():
    cosine = list(Trial(toy_config(epochs=4, scheduler="cosine")).run())
    expected = [0.5 * 3e-3 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [r["lr"] for r in cosine] == pytest.approx(expected)
    trial = Trial(toy_config(epochs=3, scheduler="plateau"))
    records = list(trial.run())
    assert trial.scheduler.best == pytest.approx(min(r["val_delta_m"] for r in records))


def test_preloaded_benchmark_must_match_the_config(toy):
    Trial(toy_config(epochs=1), benchmark=toy)  # same options: accepted, data reused
    with pytest.raises(ValueError, match="does not match"):
        Trial(toy_config(epochs=1, data={"n_train": 64}), benchmark=toy)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, r"trial: setting epochs=0 is out of range; valid: int in \[1, inf\)"),
        ("lr", -1.0, r"setting lr=-1.0 is out of range; valid: float in \(0, inf\)"),
        ("lr", "1e-3", "setting lr='1e-3' is not a number"),  # typed values: the CLI and YAML parse text
        ("scheduler", "linear", "valid: one of 'plateau', 'cosine', 'step', 'none'"),
        ("device", "tpu", "valid: one of 'auto', 'cpu', 'cuda'"),
        ("method", "nope", "unknown method 'nope'"),
        ("benchmark", "mnist", "unknown benchmark 'mnist'"),
    ],
)
def test_bad_config_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        Trial(toy_config(**{field: value}))


def test_progress_bar_per_epoch(capsys):
    list(Trial(toy_config(epochs=1)).run(progress=True))
    assert "epoch 1/1" in capsys.readouterr().err


def test_parse_value_reads_what_people_write():
    texts = ("3", "1e-3", "2.5E-3", ".5", "0.5", "TRUE", "null", "[0, 1]", "qm9pack", "none", "-1e3")
    assert [parse_value(v) for v in texts] == [
        3,
        1e-3,
        2.5e-3,
        0.5,
        0.5,
        True,
        None,
        [0, 1],
        "qm9pack",
        "none",
        -1000.0,
    ]
    assert all(type(parse_value(v)) is float for v in ("1e-3", "2.5E-3", ".5", "1E5"))
    # the same reader for YAML files (the sweep config): lr: 1e-4 is a number, not the string '1e-4'
    assert load_yaml("train: {lr: 1e-4, method_lr: 2.5E-3}\nseeds: [0, 1]\nflag: true") == {
        "train": {"lr": 1e-4, "method_lr": 2.5e-3},
        "seeds": [0, 1],
        "flag": True,
    }


def test_trial_config_fields_are_the_declared_settings():
    declared = {h.name: h.default for h in TRAIN_SETTINGS}
    defaults = {f.name: f.default for f in fields(TrialConfig) if f.name in declared}
    assert defaults == declared
    assert {f.name for f in fields(TrialConfig)} == set(declared) | {"benchmark", "method", "hparams", "data", "seed"}


def test_cli_settings_take_exponent_notation(capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    assert main(CLI_TOY + ["--epochs", "1", "--lr", "2.5E-3", "--method-lr", ".5", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["lr"] == 2.5e-3
    assert main(CLI_TOY + ["--epochs", "0"]) == 2
    assert "setting epochs=0 is out of range" in capsys.readouterr().err


CLI_TOY = ["--benchmark", "toy", "--data", "n_train=64", "--data", "n_val=32", "--data", "n_test=32", "--no-progress"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "unknown method 'nope'; valid methods:"),
        (["--method", "ntkmtl", "--hp", "foo=1"], "unknown hyperparameter 'foo'"),
        (["--method", "ntkmtl", "--ntk-exp", "-1"], "ntk_exp=-1 is out of range"),
        (["--hp", "ntk_exp"], "--hp 'ntk_exp' is not of the form key=value"),
        (["--data", "n_train=0"], "n_train=0 is out of range"),
        (["--data", "color=red"], "unknown data option 'color'"),
        (["--resume"], "--resume needs --checkpoint-dir"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(capsys, args, message):
    assert main(CLI_TOY + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_unknown_benchmark_and_missing_checkpoint(capsys, tmp_path):
    assert main(["--benchmark", "mnist"]) == 2
    assert "unknown benchmark 'mnist'; valid benchmarks:" in capsys.readouterr().err
    assert main(CLI_TOY + ["--checkpoint-dir", str(tmp_path), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("")
    assert main(CLI_TOY + ["--checkpoint-dir", str(tmp_path / "a_file" / "ckpt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")  # refused before the first epoch


def test_cli_runs_writes_records_and_resumes(capsys, tmp_path):
    out, ckpt = tmp_path / "records.jsonl", tmp_path / "ckpt"
    common = CLI_TOY + ["--method", "ntkmtl", "--ntk-exp", "0.75", "--output", str(out), "--checkpoint-dir", str(ckpt)]
    assert main(common + ["--epochs", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 running") and "val Δm" in lines[0]
    assert lines[2].startswith("epoch 3/3 completed")
    assert main(common + ["--epochs", "4", "--resume"]) == 0
    assert capsys.readouterr().out.startswith("epoch 4/4 completed")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]


def test_cli_diverged_exits_1(capsys):
    assert main(CLI_TOY + ["--data", "nan_targets=true", "--epochs", "2"]) == 1
    captured = capsys.readouterr()
    assert "diverged" in captured.out and "diverged" in captured.err


def test_cli_subprocess_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "ntkmtl.train", "--benchmark", "toy", "--method", "ntkmtl", "--hp", "ntk_exp=9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: method 'ntkmtl': hyperparameter ntk_exp=9 is out of range; valid: float in [0, 4]"
    ]


def test_every_step_of_a_trial_is_the_shared_train_step(monkeypatch):
    import ntkmtl.training.trial as trial_module

    calls = []
    original = trial_module.train_step
    monkeypatch.setattr(trial_module, "train_step", lambda *a, **k: calls.append(a[0].name) or original(*a, **k))
    list(Trial(toy_config(method="famo", epochs=1)).run())
    assert calls == ["famo"] * 4  # 128 samples, batches of 32
