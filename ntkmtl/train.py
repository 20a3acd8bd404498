"""One training trial, without Ray: a benchmark, a weighting method, a seed → one record per epoch.

``Trial(TrialConfig(benchmark="qm9", method="ntkmtl", hparams={"ntk_exp": 0.5})).run()`` yields
the flat per-epoch records of docs/DESIGN.md ("Trainer → sweep"); the sweep layer wraps exactly
this, and ``python -m ntkmtl.train`` runs it from the command line (one trial, like the
reference scripts). Optimisation follows the paper: Adam on the model (plus the method's own
parameters, e.g. UW's log-variances, at ``method_lr``) and the benchmark's scheduler; the method
decides what the trainer computes (``needs``: losses → one backward; gradients → K backward
passes inside the method; representation → z is passed too; ``batch_chunks`` → per-chunk losses).

Reproducibility: every RNG (torch, CUDA, numpy, random, the train loader's generator) is seeded
from ``seed`` and saved in checkpoints, so on CPU a run of 2 epochs + restore + 2 epochs is
identical to 4 epochs. A non-finite training loss or metric ends the trial with a ``diverged``
record instead of an exception.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ntkmtl.benchmarks import Benchmark, benchmark_class
from ntkmtl.benchmarks.base import chunk_losses
from ntkmtl.methods import describe_methods, get_method

DEVICES = ("auto", "cpu", "cuda")
SCHEDULERS = ("plateau", "cosine", "step", "none")
CHECKPOINT_FILE = "trial.pt"
# ReduceLROnPlateau on val Δm as in the reference QM9 trainer; StepLR as in the MTAN benchmarks.
SCHEDULER_DEFAULTS = {
    "plateau": {"factor": 0.7, "patience": 10, "min_lr": 1e-5},
    "cosine": {"eta_min": 0.0},
    "step": {"step_size": 100, "gamma": 0.5},
    "none": {},
}


@dataclass
class TrialConfig:
    """Everything that defines one trial. ``None`` means the benchmark's default (``Benchmark.defaults``)."""

    benchmark: str
    method: str = "ls"
    hparams: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    scheduler: str | None = None
    method_lr: float = 0.025
    device: str = "auto"
    num_workers: int = 0

    def resolved(self) -> "TrialConfig":
        """A validated copy with every ``None`` replaced by the benchmark's default."""
        benchmark = benchmark_class(self.benchmark)
        defaults = benchmark.defaults
        config = dataclasses.replace(
            self,
            hparams=benchmark.method_hparams(self.method, self.hparams),
            data=dict(self.data),
            epochs=defaults.epochs if self.epochs is None else self.epochs,
            batch_size=defaults.batch_size if self.batch_size is None else self.batch_size,
            lr=defaults.lr if self.lr is None else self.lr,
            scheduler=defaults.scheduler if self.scheduler is None else self.scheduler,
        )
        for name in ("seed", "num_workers"):
            _check_int(name, getattr(config, name), 0)
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(config, name), 1)
        for name in ("lr", "method_lr"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"trial: {name}={value!r} must be a positive finite number")
        if config.scheduler not in SCHEDULERS:
            raise ValueError(f"trial: scheduler={config.scheduler!r} is not valid; valid schedulers: {', '.join(SCHEDULERS)}")
        if config.device not in DEVICES:
            raise ValueError(f"trial: device={config.device!r} is not valid; valid devices: {', '.join(DEVICES)}")
        if config.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("trial: device='cuda' but CUDA is not available here; valid devices: auto, cpu")
        return config


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"trial: {name}={value!r} must be an integer >= {low}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int, options: dict[str, Any]):
    """The benchmark's learning-rate schedule, stepped once per epoch (plateau: on val Δm)."""
    settings = {**SCHEDULER_DEFAULTS[name], **options}
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", **settings)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, **settings)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, **settings)
    return None


class EpochStats:
    """Running sums over one epoch's steps: task losses (sample-weighted), weights, method scalars."""

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks
        self.loss_sums = torch.zeros(len(tasks), dtype=torch.float64)
        self.loss_counts = torch.zeros(len(tasks), dtype=torch.float64)
        self.weight_sum = torch.zeros(len(tasks), dtype=torch.float64)
        self.scalars: dict[str, float] = {}
        self.steps = 0
        self.samples = 0

    def add_losses(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        self.loss_sums += sums.detach().sum(0).double().cpu()
        self.loss_counts += counts.detach().sum(0).double().cpu()
        self.samples += sums.shape[0]

    def add_step(self, info: dict[str, Any]) -> None:
        self.steps += 1
        self.weight_sum += torch.as_tensor(info["weights"]).detach().double().cpu().reshape(-1)
        for key, value in info.items():
            if key == "weights":
                continue
            for name, number in self._flatten(key, value):
                self.scalars[name] = self.scalars.get(name, 0.0) + number

    def _flatten(self, key: str, value: Any) -> list[tuple[str, float]]:
        """Scalars → method_<key>; per-task vectors [K] → method_<key>_<task>; anything else is skipped."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [(f"method_{key}", float(value))]
        if isinstance(value, torch.Tensor):
            if value.numel() == 1:
                return [(f"method_{key}", float(value))]
            if value.dim() == 1 and value.numel() == len(self.tasks):
                return [(f"method_{key}_{t}", float(v)) for t, v in zip(self.tasks, value.detach().cpu().tolist())]
        return []

    def mean_losses(self) -> torch.Tensor:
        return self.loss_sums / self.loss_counts.clamp_min(1e-12)

    def record(self) -> dict[str, float]:
        out = {f"train_loss_{t}": float(v) for t, v in zip(self.tasks, self.mean_losses())}
        steps = max(self.steps, 1)
        weights = self.weight_sum / steps if self.steps else torch.full((len(self.tasks),), float("nan"))
        out.update({f"weight_{t}": float(w) for t, w in zip(self.tasks, weights)})
        out.update({k: v / steps for k, v in self.scalars.items()})
        return out


class Trial:
    """One seeded run of one method on one benchmark; ``run()`` yields one record per epoch.

    Pass ``benchmark`` (built with the same data options) to reuse data already loaded in this
    process: the sweep loads QM9 once per worker, not once per trial.
    """

    def __init__(self, config: TrialConfig, benchmark: Benchmark | None = None):
        self.config = config.resolved()
        cls = benchmark_class(self.config.benchmark)
        expected = cls(**self.config.data)
        if benchmark is None:
            benchmark = expected
        elif not isinstance(benchmark, cls) or benchmark.options != expected.options:
            raise ValueError(
                f"trial: the preloaded benchmark {benchmark.name!r} with options {benchmark.options} does not "
                f"match the config's benchmark {self.config.benchmark!r} with options {expected.options}"
            )
        benchmark.check_data()
        self.benchmark = benchmark
        self.device = _resolve_device(self.config.device)
        seed_everything(self.config.seed)
        self.model = benchmark.build_model().to(self.device)
        self.method = get_method(self.config.method, benchmark.n_tasks, device=self.device, **self.config.hparams)
        self.train_loader, self.val_loader, self.test_loader = benchmark.loaders(
            self.config.batch_size, self.config.seed, self.config.num_workers
        )
        defaults = benchmark.defaults
        groups = [{"params": list(self.model.parameters()), "lr": self.config.lr}]
        method_parameters = list(self.method.parameters())
        if method_parameters:
            groups.append({"params": method_parameters, "lr": self.config.method_lr})
        self.optimizer = torch.optim.Adam(groups, weight_decay=defaults.weight_decay)
        options = dict(defaults.scheduler_options) if self.config.scheduler == defaults.scheduler else {}
        self.scheduler = build_scheduler(self.config.scheduler, self.optimizer, self.config.epochs, options)
        self.shared = list(self.model.shared_parameters())
        self.heads = list(self.model.task_specific_parameters())
        self.epoch = 0
        self.diverged = False

    # -- training ----------------------------------------------------------------------------
    def run(self, progress: bool = False) -> Iterator[dict[str, Any]]:
        """Train from the current epoch to ``config.epochs``, yielding each epoch's record.

        The trial's state after a yield is the end of that epoch (scheduler stepped), so a
        checkpoint saved then resumes exactly. A ``diverged`` record ends the generator.
        """
        while not self.diverged and self.epoch < self.config.epochs:
            record = self._run_epoch(progress)
            yield record
            if record["status"] == "diverged":
                return

    def _run_epoch(self, progress: bool) -> dict[str, Any]:
        epoch = self.epoch + 1
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        stats, diverged = self._train_one_epoch(epoch, progress)
        train_seconds = time.perf_counter() - start
        record: dict[str, Any] = {"epoch": epoch, "status": "running"}
        record.update(stats.record())
        values = self._evaluate() if not diverged else self._nan_metrics()
        record.update(values)
        diverged = diverged or not all(math.isfinite(v) for v in values.values())
        record["lr"] = lr
        record["epoch_seconds"] = time.perf_counter() - start
        record["samples_per_second"] = stats.samples / train_seconds if train_seconds > 0 else float("nan")
        self.epoch = epoch
        if diverged:
            record["status"] = "diverged"
            self.diverged = True
            return record
        self.method.on_epoch_end(stats.mean_losses().float().to(self.device))
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(record["val_delta_m"])
        elif self.scheduler is not None:
            self.scheduler.step()
        if epoch == self.config.epochs:
            record["status"] = "completed"
        return record

    def _train_one_epoch(self, epoch: int, progress: bool) -> tuple[EpochStats, bool]:
        """One pass over the training data; returns the statistics and whether a loss was non-finite."""
        self.model.train()
        stats = EpochStats(self.benchmark.tasks)
        batches = self.train_loader
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}/{self.config.epochs}", leave=False, dynamic_ncols=True)
            batches = bar
        try:
            for batch in batches:
                batch = self.benchmark.batch_to(batch, self.device)
                losses = self._step(batch, stats)
                if losses is None:
                    return stats, True
                if bar is not None:
                    bar.set_postfix(loss=f"{float(losses.sum()):.4g}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return stats, False

    def _step(self, batch: Any, stats: EpochStats) -> torch.Tensor | None:
        """One optimisation step; the batch's task losses [K], or None when one is non-finite."""
        self.optimizer.zero_grad(set_to_none=True)
        outputs, representation = self.model(batch)
        sums, counts = self.benchmark.loss_terms(outputs, batch)
        stats.add_losses(sums, counts)
        task_losses = sums.sum(0) / counts.sum(0).clamp_min(1e-12)
        if not bool(torch.isfinite(task_losses).all()):
            return None
        slices = self.method.batch_chunks(sums.shape[0])
        if slices is None:
            losses = task_losses
        else:
            losses = chunk_losses(*self.benchmark.chunk_loss_terms(outputs, batch, (sums, counts)), slices)
        needs_z = self.method.needs == "representation" or self.method.uses_representation
        info = self.method.backward(losses, self.shared, self.heads, representation=representation if needs_z else None)
        self.optimizer.step()
        stats.add_step(info)
        if self.method.needs_losses_after_step:
            with torch.no_grad():
                new_sums, new_counts = self.benchmark.loss_terms(self.model(batch)[0], batch)
                self.method.update(new_sums.sum(0) / new_counts.sum(0).clamp_min(1e-12))
        return task_losses.detach()

    def _evaluate(self) -> dict[str, float]:
        record = {}
        for split, loader in (("val", self.val_loader), ("test", self.test_loader)):
            values = self.benchmark.evaluate(self.model, loader, self.device)
            record.update({f"{split}_{m.name}": float(values[m.name]) for m in self.benchmark.metrics})
            record[f"{split}_delta_m"] = float(self.benchmark.delta_m(values))
        return record

    def _nan_metrics(self) -> dict[str, float]:
        names = [m.name for m in self.benchmark.metrics] + ["delta_m"]
        return {f"{split}_{name}": float("nan") for split in ("val", "test") for name in names}

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        generator = getattr(self.train_loader, "generator", None)
        return {
            "config": dataclasses.asdict(self.config),
            "epoch": self.epoch,
            "diverged": self.diverged,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "method": self.method.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "random": random.getstate(),
                "loader": generator.get_state() if generator is not None else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["config"]
        for key in ("benchmark", "method", "seed"):
            if saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"trial: checkpoint is for {key}={saved[key]!r}, this trial has {key}={getattr(self.config, key)!r}"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.epoch = state["epoch"]
        self.diverged = state["diverged"]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            self.scheduler.T_max = self.config.epochs  # a resumed run may have been given more epochs
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["random"])
        generator = getattr(self.train_loader, "generator", None)
        if generator is not None and rng["loader"] is not None:
            generator.set_state(rng["loader"])

    def save_checkpoint(self, directory: str | os.PathLike) -> Path:
        """Write the whole trial state to ``directory/trial.pt`` atomically; return the path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CHECKPOINT_FILE
        tmp = directory / f".{CHECKPOINT_FILE}.{os.getpid()}.tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, directory: str | os.PathLike) -> None:
        """Restore the state written by ``save_checkpoint``; ``run()`` then continues after its epoch."""
        path = Path(directory) / CHECKPOINT_FILE
        if not path.is_file():
            raise ValueError(f"trial: no checkpoint at {path} (expected the {CHECKPOINT_FILE} written by save_checkpoint)")
        # Our own file: it holds numpy/random RNG states, which weights_only loading rejects.
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.load_state_dict(state)


# -- command line ------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A command-line value: int, float, true/false, none, or else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``["key=value", …]`` → dict, or ValueError naming the malformed item."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} is not of the form key=value")
        result[key.strip().replace("-", "_")] = parse_value(value)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.train",
        description="Train one method on one benchmark with one seed (no Ray); one summary line per epoch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods and their hyperparameters (set with --hp key=value):\n\n" + describe_methods(),
    )
    parser.add_argument("--benchmark", required=True, help="qm9, celeba, nyuv2, cityscapes or toy")
    parser.add_argument("--method", default="ls", help="weighting method (default: ls; see below)")
    parser.add_argument("--ntk-exp", type=float, default=None, help="shortcut for --hp ntk_exp=VALUE")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter (repeatable)")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="benchmark data option (repeatable), e.g. train_size=3000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: the benchmark's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the benchmark's")
    parser.add_argument("--lr", type=float, default=None, help="default: the benchmark's")
    parser.add_argument("--scheduler", default=None, help=f"one of {', '.join(SCHEDULERS)} (default: the benchmark's)")
    parser.add_argument("--method-lr", type=float, default=0.025, help="learning rate of the method's own parameters")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    parser.add_argument("--checkpoint-dir", default=None, help="save a checkpoint here after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    parser.add_argument("--output", default=None, help="append every epoch record to this JSON-lines file")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    hparams = parse_assignments(args.hp, "--hp")
    if args.ntk_exp is not None:
        hparams["ntk_exp"] = args.ntk_exp
    return TrialConfig(
        benchmark=args.benchmark, method=args.method, hparams=hparams, data=parse_assignments(args.data, "--data"),
        seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, scheduler=args.scheduler,
        method_lr=args.method_lr, device=args.device, num_workers=args.num_workers,
    )


def summary_line(record: dict[str, Any], epochs: int) -> str:
    """One line per epoch: status, total train loss, val/test Δm, learning rate, time."""
    train = sum(v for k, v in record.items() if k.startswith("train_loss_"))
    return (
        f"epoch {record['epoch']}/{epochs} {record['status']:<9} | train loss {train:.4g} | "
        f"val Δm {record['val_delta_m']:+.2f}% | test Δm {record['test_delta_m']:+.2f}% | "
        f"lr {record['lr']:.3g} | {record['epoch_seconds']:.2f} s ({record['samples_per_second']:.0f} samples/s)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one trial from the command line; exit 0 when completed, 1 when diverged, 2 on bad input."""
    args = build_parser().parse_args(argv)
    status = None
    try:
        if args.resume and not args.checkpoint_dir:
            raise ValueError("--resume needs --checkpoint-dir (where the checkpoint is)")
        trial = Trial(config_from_args(args))
        if args.checkpoint_dir:  # fail before training, not after the first epoch
            Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        if args.resume:
            trial.load_checkpoint(args.checkpoint_dir)
        output = open(args.output, "a") if args.output else None
        try:
            for record in trial.run(progress=not args.no_progress):
                status = record["status"]
                print(summary_line(record, trial.config.epochs), flush=True)
                if output is not None:
                    output.write(json.dumps(record) + "\n")
                    output.flush()
                if args.checkpoint_dir:
                    trial.save_checkpoint(args.checkpoint_dir)
        finally:
            if output is not None:
                output.close()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if status == "diverged":
        print("the training loss became non-finite: trial diverged", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
