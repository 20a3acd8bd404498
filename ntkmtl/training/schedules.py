"""The model's learning-rate schedule: one of ``benchmarks.LR_SCHEDULES``, stepped once per epoch."""

from __future__ import annotations

from typing import Any

import torch


def build_lr_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int, options: dict[str, Any]):
    """The schedule ``name`` with ``options`` (a benchmark's ``TrainDefaults.schedule(name)``);
    None for ``none``. ``plateau`` is stepped on val Δm, the others per epoch."""
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", **options)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, **options)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, **options)
    return None


def step_lr_scheduler(scheduler: Any, val_delta_m: float) -> None:
    """Advance the schedule by one epoch (a plateau schedule on this epoch's val Δm)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_delta_m)
    elif scheduler is not None:
        scheduler.step()
