"""``Trial``: one seeded run of one method on one benchmark, without Ray; one record per epoch.

Optimisation follows the paper: Adam on the model (plus the method's own parameters, e.g. UW's
log-variances, at ``method_lr``) and the benchmark's learning-rate schedule; each batch is one
``train_step`` (ntkmtl/training/step.py), which does what the method's ``requirements`` ask.

Reproducibility: every RNG (torch, CUDA, numpy, random, the train loader's generator) is seeded
from ``seed`` and saved in checkpoints, so on CPU a run of 2 epochs + restore + 2 epochs is
identical to 4 epochs. A non-finite training loss or metric ends the trial with a ``diverged``
record instead of an exception.

Record: ``epoch`` and ``status`` (identity columns of ntkmtl/results/schema.py), then the keys
``Trial.columns`` declares (``EpochStats``'s, then the metrics and timing ``_run_epoch`` adds).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch

from ntkmtl.benchmarks import Benchmark, benchmark_class
from ntkmtl.columns import Column
from ntkmtl.methods import get_method
from ntkmtl.methods.gradients import task_gradient_mode as gradient_mode
from ntkmtl.precision import MixedPrecision
from ntkmtl.training.records import EpochStats
from ntkmtl.training.schedules import build_lr_scheduler, step_lr_scheduler
from ntkmtl.training.settings import TrialConfig, resolve_device, task_gradient_mode
from ntkmtl.training.step import Forward, train_step

CHECKPOINT_FILE = "trial.pt"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class Trial:
    """One seeded run of one method on one benchmark; ``run()`` yields one record per epoch.

    Pass ``benchmark`` (built with the same data options) to reuse data already loaded in this
    process: the sweep loads QM9 once per worker, not once per trial.
    """

    def __init__(self, config: TrialConfig, benchmark: Benchmark | None = None):
        self.config = config.resolved()
        assert self.config.epochs is not None and self.config.batch_size is not None  # resolved() fills them
        assert self.config.scheduler is not None
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
        self.device = resolve_device(self.config.device)
        seed_everything(self.config.seed)
        self.model = benchmark.build_model().to(self.device)
        self.precision = MixedPrecision(self.config.precision, self.device, self.model.parameters())
        self.task_gradient_mode = task_gradient_mode(self.config, self.device)
        self.method = get_method(self.config.method, benchmark.n_tasks, device=self.device, **self.config.hparams)
        self.train_loader, self.val_loader, self.test_loader = benchmark.loaders(
            self.config.batch_size, self.config.seed, self.config.num_workers
        )
        defaults = benchmark.defaults
        groups: list[dict[str, Any]] = [{"params": list(self.model.parameters()), "lr": self.config.lr}]
        method_parameters = list(self.method.parameters())
        if method_parameters:
            groups.append({"params": method_parameters, "lr": self.config.method_lr})
        self.optimizer = torch.optim.Adam(groups, weight_decay=defaults.weight_decay)
        options = defaults.schedule(self.config.scheduler)
        self.scheduler = build_lr_scheduler(self.config.scheduler, self.optimizer, self.config.epochs, options)
        self.shared = list(self.model.shared_parameters())
        self.heads = list(self.model.task_specific_parameters())
        self.epoch = 0
        self.diverged = False

    @property
    def epochs(self) -> int:
        """``config.epochs``, never None: ``resolved()`` filled in the benchmark's default."""
        assert self.config.epochs is not None
        return self.config.epochs

    # -- training ----------------------------------------------------------------------------
    def run(self, progress: bool = False) -> Iterator[dict[str, Any]]:
        """Train from the current epoch to ``config.epochs``, yielding each epoch's record.

        The trial's state after a yield is the end of that epoch (scheduler stepped), so a
        checkpoint saved then resumes exactly. A ``diverged`` record ends the generator.
        """
        while not self.diverged and self.epoch < self.epochs:
            record = self._run_epoch(progress)
            yield record
            if record["status"] == "diverged":
                return

    # The columns of an epoch record besides epoch and status: a key it writes that no column
    # declares fails tests/results (ntkmtl/results/schema.py builds the Parquet schema from these).
    columns: ClassVar[tuple[Column, ...]] = EpochStats.columns + (
        Column("val_<metric>", "float64", "every metric of the benchmark on the validation split"),
        Column("test_<metric>", "float64", "every metric of the benchmark on the test split"),
        Column(
            "val_delta_m",
            "float64",
            "Δm % of the validation metrics against the paper's single-task baselines (lower is better)",
        ),
        Column(
            "test_delta_m",
            "float64",
            "Δm % of the test metrics against the paper's single-task baselines (lower is better)",
        ),
        Column("lr", "float64", "learning rate during the epoch"),
        Column("epoch_seconds", "float64", "training + evaluation time of the epoch"),
        Column("samples_per_second", "float64", "training throughput"),
    )

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
        step_lr_scheduler(self.scheduler, record["val_delta_m"])
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
        """One optimisation step (``train_step``); the batch's task losses [K], or None when one is non-finite."""

        def forward() -> Forward:
            with self.precision.autocast():
                outputs, representation = self.model(batch)
            terms = self.precision.loss_terms(self.benchmark, outputs, batch)
            return Forward(*terms, representation, lambda: self.benchmark.chunk_loss_terms(outputs, batch, terms))

        with gradient_mode(self.task_gradient_mode):
            outcome = train_step(self.method, forward, self.optimizer, self.shared, self.heads, self.precision.step)
        stats.add_losses(outcome.forward.sums, outcome.forward.counts)
        if outcome.result is None:
            return None
        stats.add_step(outcome.result)
        return outcome.task_losses

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
            "precision": self.precision.state_dict(),
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
        self.precision.load_state_dict(state.get("precision", {}))
        self.epoch = state["epoch"]
        self.diverged = state["diverged"]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            self.scheduler.T_max = self.epochs  # a resumed run may have been given more epochs
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
            raise ValueError(
                f"trial: no checkpoint at {path} (expected the {CHECKPOINT_FILE} written by save_checkpoint)"
            )
        # Our own file: it holds numpy/random RNG states, which weights_only loading rejects.
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.load_state_dict(state)
