"""The trainer ↔ method contract: what a method asks the trainer for, and what one step gives back.

A method declares, in one frozen ``Requirements``, everything the trainer must do for it beyond
"compute the losses": pass the shared representation z, split the batch into chunks (then the
losses are [n, K], row j the loss of chunk j), call ``update(losses)`` with the same batch's losses
after ``optimizer.step()``. ``task_gradients`` says that the method takes the K per-task gradients
of the shared parameters (K backward passes; the cost, and what ``train.task_gradients`` affects).
The trainer reads nothing else about a method.

``backward()`` returns a ``StepResult``: the K task weights it applied and named values to log, each
a scalar (``method_<name>``) or a per-task vector [K] (``method_<name>_<task>``). ``checked``
refuses, with the method's name and the value's shape, anything that cannot become such columns,
so a value is never dropped on the way to the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Sequence, Union

import torch

from ntkmtl.methods.gradients import CHUNK_LAYOUTS, chunk_slices

Value = Union[float, torch.Tensor]


@dataclass(frozen=True)
class Requirements:
    """What the trainer must give a method (all off: the batch's [K] losses, one call per step).

    ``chunks``: None for [K] losses, else split each batch into (at most) this many chunks with
    layout ``chunking`` (``batch_chunks``) and pass the [n, K] chunk losses.
    """

    representation: bool = False
    chunks: int | None = None
    chunking: str = "torch_chunk"
    losses_after_step: bool = False
    task_gradients: bool = False

    def __post_init__(self) -> None:
        if self.chunks is not None and (
            isinstance(self.chunks, bool) or not isinstance(self.chunks, int) or self.chunks < 1
        ):
            raise ValueError(f"requirements: chunks={self.chunks!r} must be None or an integer >= 1")
        if self.chunking not in CHUNK_LAYOUTS:
            raise ValueError(
                f"requirements: chunking={self.chunking!r} is not valid; valid: {', '.join(CHUNK_LAYOUTS)}"
            )

    def batch_chunks(self, batch_size: int) -> list[slice] | None:
        """The slices of a batch whose losses form the rows of the [n, K] losses; None for [K] losses."""
        return None if self.chunks is None else chunk_slices(batch_size, self.chunks, self.chunking)

    @property
    def max_chunks(self) -> int:
        """The most rows the losses may have (1 for [K] losses)."""
        return 1 if self.chunks is None else self.chunks

    def describe(self) -> str:
        """What the trainer computes for the method, for ``--help``: e.g. ``gradients, representation``."""
        parts = ["gradients" if self.task_gradients else "losses"]
        if self.representation:
            parts.append("representation")
        if self.chunks is not None:
            parts.append("chunks")
        if self.losses_after_step:
            parts.append("losses after step")
        return ", ".join(parts)


@dataclass(frozen=True)
class StepResult:
    """One step of a method: the applied task weights [K] and named values to log, in order.

    Read like a mapping as well: ``result["weights"]``, ``result["grad_norm"]``.
    """

    weights: torch.Tensor
    values: Mapping[str, Value] = field(default_factory=dict)

    def with_values(self, **values: Value) -> "StepResult":
        """A copy with ``values`` added after the existing ones."""
        return replace(self, values={**self.values, **values})

    def checked(self, n_tasks: int, owner: str) -> "StepResult":
        """A copy whose weights are a [K] tensor, scalars Python floats and vectors detached [K]
        tensors; ValueError naming the value for anything else (a log column cannot hold it)."""
        if not isinstance(self.weights, torch.Tensor) or self.weights.numel() != n_tasks:
            shape = tuple(self.weights.shape) if isinstance(self.weights, torch.Tensor) else type(self.weights).__name__
            raise ValueError(f"{owner}: step weights of shape {shape}, expected [{n_tasks}]")
        values: dict[str, Value] = {}
        for name, value in self.values.items():
            if name == "weights":
                raise ValueError(f"{owner}: step value 'weights' collides with the task weights; rename it")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
            elif isinstance(value, torch.Tensor) and value.numel() == 1:
                values[name] = float(value)
            elif isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() == n_tasks:
                values[name] = value.detach()
            else:
                what = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"{owner}: step value {name!r} of shape {what} cannot be logged; "
                    f"give a number or a per-task vector of shape [{n_tasks}]"
                )
        return StepResult(self.weights.detach(), values)

    def logged(self, tasks: Sequence[str]) -> Iterator[tuple[str, float]]:
        """(column, number) of every value: ``method_<name>`` or ``method_<name>_<task>``."""
        for name, value in self.values.items():
            if isinstance(value, torch.Tensor):
                yield from ((f"method_{name}_{t}", float(v)) for t, v in zip(tasks, value.cpu().tolist()))
            else:
                yield f"method_{name}", float(value)

    # mapping-style reading, so ``info["weights"]`` reads as it did for callers of backward()
    def __getitem__(self, key: str) -> Any:
        return self.weights if key == "weights" else self.values[key]

    def __contains__(self, key: object) -> bool:
        return key == "weights" or key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default
