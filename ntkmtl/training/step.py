"""One optimisation step, as the method's ``Requirements`` ask: the one ``train_step`` of the package.

``Trial`` calls it for every batch, and the method tests call it on their tiny problem, so the
contract between trainer and method (docs/DESIGN.md, "Method → trainer") is executed in one place:

1. ``optimizer.zero_grad``; ``forward()`` gives the per-sample loss terms (sums, counts) [B, K]
   and the representation z;
2. a non-finite task loss ends the step before any gradient (the trial then diverges);
3. the losses are [K], or the [n, K] chunk losses when the method asks for chunks;
4. ``method.backward(losses, shared, heads, representation=z if the method asks for it)``;
5. ``optimizer_step(optimizer)`` (mixed precision may skip it on an fp16 overflow);
6. a method that asks for the losses after the step gets the same batch's new losses under no_grad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ntkmtl.benchmarks.base import chunk_losses
from ntkmtl.methods import StepResult, WeightMethod


@dataclass(frozen=True)
class Forward:
    """One forward pass: per-sample loss terms [B, K] (task k's loss on the batch is
    Σ sums[:, k] / Σ counts[:, k]), the shared representation, and — for chunking methods — a
    function giving the terms the chunk losses are formed from (default: the same terms)."""

    sums: torch.Tensor
    counts: torch.Tensor
    representation: Any = None
    chunk_terms: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None

    def task_losses(self) -> torch.Tensor:
        return self.sums.sum(0) / self.counts.sum(0).clamp_min(1e-12)

    def chunk_losses(self, slices: Sequence[slice]) -> torch.Tensor:
        terms = self.chunk_terms() if self.chunk_terms is not None else (self.sums, self.counts)
        return chunk_losses(*terms, slices)


@dataclass(frozen=True)
class StepOutcome:
    """What one step did: its forward pass, the batch's task losses [K] (detached), the method's
    result (None when a loss was non-finite and nothing was computed) and whether the optimizer stepped."""

    forward: Forward
    task_losses: torch.Tensor
    result: StepResult | None
    stepped: bool

    @property
    def finite(self) -> bool:
        return self.result is not None


def _plain_step(optimizer: torch.optim.Optimizer) -> bool:
    optimizer.step()
    return True


def train_step(
    method: WeightMethod,
    forward: Callable[[], Forward],
    optimizer: torch.optim.Optimizer,
    shared: Sequence[torch.nn.Parameter],
    heads: Sequence[torch.nn.Parameter],
    optimizer_step: Callable[[torch.optim.Optimizer], bool] = _plain_step,
) -> StepOutcome:
    """One step of ``method`` on the batch ``forward()`` computes (see the module docstring).

    ``forward`` is called once with gradients and, for a method whose requirements ask for the
    losses after the step, once more under ``torch.no_grad()``."""
    requirements = method.requirements
    optimizer.zero_grad(set_to_none=True)
    current = forward()
    task_losses = current.task_losses()
    if not bool(torch.isfinite(task_losses).all()):
        return StepOutcome(current, task_losses.detach(), None, False)
    slices = requirements.batch_chunks(current.sums.shape[0])
    losses = task_losses if slices is None else current.chunk_losses(slices)
    representation = current.representation if requirements.representation else None
    result = method.backward(losses, shared, heads, representation=representation)
    stepped = optimizer_step(optimizer)
    if stepped and requirements.losses_after_step:
        with torch.no_grad():
            method.update(forward().task_losses())
    return StepOutcome(current, task_losses.detach(), result, stepped)
