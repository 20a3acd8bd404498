"""The per-epoch statistics of a trial: running sums over one epoch's steps, then one flat record.

Keys (docs/DESIGN.md, "Trainer → sweep"): ``train_loss_<task>`` (sample-weighted mean loss),
``weight_<task>`` (the method's task weight, mean over the steps) and every value of the
method's ``StepResult``, mean over the steps: ``method_<name>`` or ``method_<name>_<task>``.
Each is declared in ``EpochStats.columns``, next to ``record()``: the Parquet schema
(ntkmtl/results/schema.py) and docs/SWEEP.md's table are built from there.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ntkmtl.columns import Column
from ntkmtl.methods import StepResult


class EpochStats:
    """Running sums over one epoch's steps: task losses (sample-weighted), weights, method values."""

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

    def add_step(self, result: StepResult) -> None:
        self.steps += 1
        self.weight_sum += result.weights.detach().double().cpu().reshape(-1)
        for name, number in result.logged(self.tasks):
            self.scalars[name] = self.scalars.get(name, 0.0) + number

    def mean_losses(self) -> torch.Tensor:
        return self.loss_sums / self.loss_counts.clamp_min(1e-12)

    # The columns of ``record()``: a key it writes that no column declares fails tests/results.
    columns: ClassVar[tuple[Column, ...]] = (
        Column("train_loss_<task>", "float64", "mean training loss of each task over the epoch"),
        Column("weight_<task>", "float64", "the method's task weight, mean over the epoch's steps"),
        Column(
            "method_<key>",
            "float64",
            "other per-step scalars of the method (e.g. `method_grad_norm`; a per-task "
            "vector as `method_<key>_<task>`), mean over steps",
        ),
    )

    def record(self) -> dict[str, float]:
        out = {f"train_loss_{t}": float(v) for t, v in zip(self.tasks, self.mean_losses())}
        steps = max(self.steps, 1)
        weights = self.weight_sum / steps if self.steps else torch.full((len(self.tasks),), float("nan"))
        out.update({f"weight_{t}": float(w) for t, w in zip(self.tasks, weights)})
        out.update({k: v / steps for k, v in self.scalars.items()})
        return out
