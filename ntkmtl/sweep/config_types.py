"""What a validated sweep config is: ``SweepConfig`` and the typed sections it holds.

These frozen dataclasses are all the rest of the sweep layer sees of a config (``plan``,
``identity``, ``tune``, the schedulers, the search): every value in them has passed
``ntkmtl.sweep.config.parse_config``, so nothing downstream checks a config again. Defaults here
are the defaults of an omitted section. Plain Python, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ntkmtl.benchmarks import benchmark_class
from ntkmtl.sweep.space import Range, SearchSettings


@dataclass(frozen=True)
class MethodGrid:
    """One method and its grid: hyperparameter → the values to try (each already validated);
    ``ranges``: the hyperparameters a search samples instead (the method is then searched)."""

    name: str
    grid: dict[str, tuple[Any, ...]]
    ranges: dict[str, Range] = field(default_factory=dict)


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Early stopping: ``none``, Ray's ``asha``, or ``seed_asha`` (seeds of a configuration decided together)."""

    type: str = "none"
    metric: str = "val_delta_m"
    mode: str = "min"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; ``gpu=None`` means the benchmark's default fraction when GPUs exist."""

    cpu: float = 1.0
    gpu: float | None = None

    def gpu_for(self, benchmark: str, cluster_gpus: float) -> float:
        """The GPU fraction each trial requests on a cluster with ``cluster_gpus`` GPUs."""
        if self.gpu is not None:
            return self.gpu
        return benchmark_class(benchmark).defaults.gpu_fraction if cluster_gpus > 0 else 0.0


@dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases logging: one run per trial, grouped by sweep name."""

    enabled: bool = False
    project: str = "ntkmtl"
    entity: str | None = None
    mode: str = "offline"
    dir: str | None = None


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: everything ``plan.py`` and ``tune.py`` need, nothing Ray-specific."""

    name: str
    benchmark: str
    data: dict[str, Any]
    train: dict[str, Any]
    seeds: tuple[int, ...]
    methods: tuple[MethodGrid, ...]
    resources: Resources = field(default_factory=Resources)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    storage: Any = None
    output: str = ""
    max_failures: int = 1
    max_concurrent: int = 0
    wandb: WandbConfig = field(default_factory=WandbConfig)
    source: str = "<config>"
    search: SearchSettings | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also a config pickled by ntkmtl 0.1 (Ray's ``tuner.pkl`` holds the searcher, the
        searcher the config), whose early stopping was the field ``scheduler``: such a sweep resumes."""
        if "scheduler" in state:
            state = {("early_stopping" if key == "scheduler" else key): value for key, value in state.items()}
        self.__dict__.update(state)

    @property
    def epochs(self) -> int:
        """Epochs per trial: ``train.epochs`` or the benchmark's default."""
        return self.train.get("epochs") or benchmark_class(self.benchmark).defaults.epochs
