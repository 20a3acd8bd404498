"""The benchmark interface: tasks, metrics with their direction and STL baselines, data, model, losses.

A benchmark knows nothing about weighting methods or Ray. The trainer (ntkmtl/training/) asks it
for data loaders, a model, per-sample loss terms and evaluation metrics; Δm is computed here,
once, from the metric declarations (docs/REFERENCE_FACTS.md §3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch

from ntkmtl.options import HParam


class DataError(ValueError):
    """A data set is missing or malformed; the message names the path, the layout and the fix."""


@dataclass(frozen=True)
class Metric:
    """One evaluation metric: a column-safe name, its direction and the STL baseline for Δm."""

    name: str
    higher_is_better: bool
    baseline: float


# Every learning-rate schedule (stepped once per epoch) and its options, the values of the
# reference trainers that use it: ReduceLROnPlateau on val Δm as the QM9 trainer, StepLR as the
# MTAN ones. A benchmark changes them for itself in ``TrainDefaults.schedule_options``.
LR_SCHEDULES: Mapping[str, Mapping[str, Any]] = {
    "plateau": {"factor": 0.7, "patience": 10, "min_lr": 1e-5},
    "cosine": {"eta_min": 0.0},
    "step": {"step_size": 100, "gamma": 0.5},
    "none": {},
}


@dataclass(frozen=True)
class TrainDefaults:
    """The paper's optimisation set-up for a benchmark (docs/REFERENCE_FACTS.md §4), and the GPU
    share one trial asks for when ``resources.gpu`` is ``auto`` on a cluster with GPUs (QM9 and
    CelebA trials share a GPU; SegNet-MTAN's do not). ``schedule_options``: this benchmark's
    options of any schedule of ``LR_SCHEDULES``, over that table's."""

    epochs: int
    batch_size: int
    lr: float
    scheduler: str  # a key of LR_SCHEDULES
    gpu_fraction: float
    schedule_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted({self.scheduler, *self.schedule_options} - set(LR_SCHEDULES))
        if unknown:
            raise ValueError(f"TrainDefaults: unknown schedule {unknown[0]!r}; valid: {', '.join(LR_SCHEDULES)}")
        if not (0.0 <= self.gpu_fraction <= 1.0 or float(self.gpu_fraction).is_integer()):
            raise ValueError(f"TrainDefaults: gpu_fraction={self.gpu_fraction!r} must be in [0, 1] or a whole number")

    def schedule(self, name: str) -> dict[str, Any]:
        """The options of schedule ``name`` on this benchmark."""
        return {**LR_SCHEDULES[name], **self.schedule_options.get(name, {})}


def delta_m(values: Mapping[str, float], metrics: Sequence[Metric]) -> float:
    """Δm% = mean_j (−1)^{s_j} (M_j − B_j) / B_j × 100, s_j = 1 when higher is better. Lower is better."""
    terms = []
    for m in metrics:
        sign = -1.0 if m.higher_is_better else 1.0
        terms.append(sign * (float(values[m.name]) - m.baseline) / m.baseline)
    return 100.0 * sum(terms) / len(terms)


class MultiTaskModel(torch.nn.Module):
    """A model whose forward returns (per-task outputs, shared representation z).

    ``shared_parameters()`` and ``task_specific_parameters()`` split the parameters for the
    weighting methods; z has one row per sample (or is a list of K such tensors for MTAN).
    """

    @abstractmethod
    def shared_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters every task's loss depends on (the encoder)."""

    @abstractmethod
    def task_specific_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters of the task heads; each belongs to exactly one task."""


class Benchmark(ABC):
    """One of the paper's four benchmarks. Subclasses declare, the trainer drives.

    Class attributes: ``name``, ``tasks`` (K names), ``defaults`` (TrainDefaults),
    ``data_options`` (HParam declarations, validated like method hyperparameters; ``root`` etc.)
    and ``method_defaults`` (this benchmark's defaults of method hyperparameters where the
    reference's trainer for it differs from the method's own default, e.g. NTKMTL-SR's n_splits).
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[TrainDefaults]
    data_options: ClassVar[tuple[HParam, ...]] = ()
    method_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def method_hparams(cls, method: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """The complete, validated hyperparameters of ``method`` on this benchmark: the method's
        defaults, overridden by ``method_defaults[method]``, overridden by ``hparams``."""
        from ntkmtl.methods import method_class

        return method_class(method).validate_hparams({**cls.method_defaults.get(method, {}), **hparams})

    def __init__(self, **options: Any):
        specs = {h.name: h for h in self.data_options}
        unknown = sorted(set(options) - set(specs))
        if unknown:
            raise ValueError(
                f"benchmark {self.name!r}: unknown data option {unknown[0]!r} "
                f"(value {options[unknown[0]]!r}); valid options: {', '.join(specs) or 'none'}"
            )
        self.options = {name: spec.default for name, spec in specs.items()}
        for key, value in options.items():
            if value is None and specs[key].default is None:
                continue
            self.options[key] = specs[key].check(value, f"benchmark {self.name!r}", what="data option")

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    @abstractmethod
    def metrics(self) -> tuple[Metric, ...]:
        """Every evaluation metric, in report order, each with direction and STL baseline."""

    def delta_m(self, values: Mapping[str, float]) -> float:
        return delta_m(values, self.metrics)

    @abstractmethod
    def check_data(self) -> None:
        """Cheap check that the data is where the options say; raise DataError naming the path,
        the expected layout and how to get the data. Runs before any sweep starts."""

    @abstractmethod
    def loaders(self, batch_size: int, seed: int, num_workers: int = 0) -> tuple[Iterable, Iterable, Iterable]:
        """(train, val, test) loaders. Train shuffles with a generator seeded by ``seed``. The
        split follows the reference's trainer for the benchmark: QM9's is drawn from ``seed``
        unless a ``split_seed`` data option fixes it; the others use fixed splits."""

    @abstractmethod
    def build_model(self) -> MultiTaskModel:
        """A fresh model (initialised from the global torch RNG, which the trainer seeds)."""

    @abstractmethod
    def loss_terms(self, outputs: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(sums, counts), each [B, K]: task k's loss on sample i is sums[i, k] / counts[i, k].

        The loss of any set of samples S is Σ_S sums / Σ_S counts, so the full-batch loss and
        the per-chunk losses NTKMTL-SR needs come from the same terms (see ``chunk_losses``).
        """

    def chunk_loss_terms(
        self, outputs: Any, batch: Any, terms: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (sums, counts) [B, K] from which the per-chunk losses of a chunking method (NTKMTL-SR)
        are formed; ``terms`` are this batch's ``loss_terms``, which serve by default."""
        return terms

    @abstractmethod
    def evaluate(self, model: MultiTaskModel, loader: Iterable, device: torch.device) -> dict[str, float]:
        """Every metric of ``self.metrics`` on ``loader``, by name."""

    def batch_to(self, batch: Any, device: torch.device) -> Any:
        """Move one batch to ``device`` (tensors, tuples/lists/dicts of tensors, PyG batches)."""
        if hasattr(batch, "to"):
            return batch.to(device)
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.batch_to(b, device) for b in batch)
        if isinstance(batch, dict):
            return {k: self.batch_to(v, device) for k, v in batch.items()}
        return batch


def chunk_losses(sums: torch.Tensor, counts: torch.Tensor, slices: Sequence[slice]) -> torch.Tensor:
    """[n, K] losses, one row per chunk of samples, from per-sample loss terms [B, K]."""
    rows = [sums[s].sum(0) / counts[s].sum(0).clamp_min(1e-12) for s in slices]
    return torch.stack(rows)
