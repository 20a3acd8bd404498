"""Grid expansion: a SweepConfig → one ``TrialSpec`` per (method, hyperparameter values, seed).

Each method expands over its own grid only (``ntk_exp`` multiplies NTKMTL's trials, never LS's),
then over the seeds. All seeds of one configuration share a ``config_id``: a short hash of
everything that defines the configuration except the seed (benchmark, data options, training
set-up, method and its complete hyperparameters), stable across runs and machines, so results of
different sweeps can be joined and the seed-aware scheduler can group seeds. ``dry_run_table``
is what ``--dry-run`` prints: counts per method, epochs, resources and expected concurrency.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ntkmtl.benchmarks import benchmark_class
from ntkmtl.methods import method_class
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.space import dry_run_lines, search_trials


@dataclass(frozen=True)
class TrialSpec:
    """One trial of the sweep: what ``ntkmtl.train.TrialConfig`` needs plus its identity."""

    config_id: str
    method: str
    hparams: dict[str, Any]  # complete: grid values plus the method's defaults
    swept: dict[str, Any]  # only the values the config set (they name the trial)
    seed: int
    n_seeds: int
    search: str | None = None  # the search that sampled it (optuna, random); None: a grid point
    stop_after: int | None = None  # an extension's new seed: stop where its configuration's seeds stopped

    @property
    def label(self) -> str:
        """``method-hp=value-…``: the configuration, shared by its seeds."""
        return "-".join([self.method] + [f"{k}={_short(v)}" for k, v in self.swept.items()])

    @property
    def run_name(self) -> str:
        """``method-hp=value-…-seedN``: one trial (W&B run name, progress table)."""
        return f"{self.label}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialSpec":
        return cls(**data)


def config_id(cfg: SweepConfig, method: str, hparams: dict[str, Any]) -> str:
    """A 10-hex-digit hash of the configuration (everything but the seed)."""
    identity = {
        "benchmark": cfg.benchmark,
        "data": cfg.data,
        "train": cfg.train,
        "method": method,
        "hparams": hparams,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def build_plan(cfg: SweepConfig) -> list[TrialSpec]:
    """Every grid trial, configuration-major (a configuration's seeds are adjacent), in config
    order. Searched methods have none here: their trials are sampled while the sweep runs."""
    specs = []
    for grid in cfg.methods:
        if grid.ranges:
            continue
        names = list(grid.grid)
        for values in itertools.product(*(grid.grid[n] for n in names)):
            swept = dict(zip(names, values))
            hparams = benchmark_class(cfg.benchmark).method_hparams(grid.name, swept)
            cid = config_id(cfg, grid.name, hparams)
            for seed in cfg.seeds:
                specs.append(TrialSpec(cid, grid.name, hparams, swept, seed, len(cfg.seeds)))
    return specs


def hparam_kinds(specs: list[TrialSpec], cfg: SweepConfig | None = None) -> dict[str, type]:
    """Every hyperparameter name of the sweep (the Parquet ``hp_<name>`` columns) and its type:
    of the methods of ``specs``, and of every method of ``cfg`` (searched ones too) when given."""
    kinds: dict[str, type] = {}
    methods = [s.method for s in specs] + ([m.name for m in cfg.methods] if cfg is not None else [])
    for method in dict.fromkeys(methods):
        for h in method_class(method).all_hparams():
            kinds.setdefault(h.name, h.kind)
    return kinds


def expected_concurrency(cfg: SweepConfig, n_trials: int, cpus: float, gpus: float) -> int:
    """How many trials run at once on a cluster with ``cpus`` CPUs and ``gpus`` GPUs."""
    gpu = cfg.resources.gpu_for(cfg.benchmark, gpus)
    limits = [n_trials, math.floor(cpus / cfg.resources.cpu + 1e-9)]
    if gpu > 0:
        limits.append(math.floor(gpus / gpu + 1e-9))
    if cfg.max_concurrent:
        limits.append(cfg.max_concurrent)
    return max(0, min(limits))


def dry_run_table(cfg: SweepConfig, specs: list[TrialSpec], cpus: float, gpus: float) -> str:
    """The ``--dry-run`` report: per-method counts, epochs, resources, concurrency, every trial."""
    epochs = cfg.epochs
    trials = Counter(s.method for s in specs)
    configs = Counter(s.method for s in {(s.config_id, s.method): s for s in specs}.values())
    width = max([len("method"), len("total")] + [len(m) for m in trials])
    searches = search_trials(cfg)
    lines = [
        f"sweep {cfg.name!r} ({cfg.source}): benchmark {cfg.benchmark}, {len(specs) + searches} trials = "
        f"{sum(configs.values()) + searches // len(cfg.seeds)} configurations x {len(cfg.seeds)} seeds, {epochs} epochs each"
        + (f" ({searches} of them sampled by a search)" if searches else ""),
        "",
        f"{'method':<{width}}  configurations  trials  epochs",
    ]
    for method in trials:
        lines.append(f"{method:<{width}}  {configs[method]:>14}  {trials[method]:>6}  {trials[method] * epochs:>6}")
    for grid in (m for m in cfg.methods if m.ranges):
        assert cfg.search is not None  # parse_search requires a search section when a method has ranges
        n = cfg.search.samples
        lines.append(
            f"{grid.name:<{width}}  {n:>14}  {n * len(cfg.seeds):>6}  {n * len(cfg.seeds) * epochs:>6}  (search)"
        )
    total = len(specs) + searches
    lines.append(
        f"{'total':<{width}}  {sum(configs.values()) + searches // len(cfg.seeds):>14}  {total:>6}  {total * epochs:>6}"
    )
    gpu = cfg.resources.gpu_for(cfg.benchmark, gpus)
    gpu_text = "auto" if cfg.resources.gpu is None else f"{cfg.resources.gpu:g}"
    concurrency = expected_concurrency(cfg, total, cpus, gpus)
    s = cfg.early_stopping
    lines += [
        "",
        f"resources per trial: {cfg.resources.cpu:g} CPU, {gpu:g} GPU (gpu: {gpu_text})",
        f"this machine: {cpus:g} CPUs, {gpus:g} GPUs -> {concurrency} trials at once"
        + (f" (max_concurrent {cfg.max_concurrent})" if cfg.max_concurrent else "")
        + (" (a trial does not fit here: run it on a cluster with --address)" if concurrency == 0 else ""),
        "early_stopping: none (every trial runs all its epochs)"
        if s.type == "none"
        else f"early_stopping: {s.type} on {s.metric} ({s.mode}), grace period {s.grace_period}, reduction factor "
        f"{s.reduction_factor:g}: the epoch counts above are an upper bound",
        f"storage: {cfg.storage or '~/ray_results'}  output: {cfg.output}  max_failures: {cfg.max_failures}"
        + (f"  wandb: {cfg.wandb.project} ({cfg.wandb.mode})" if cfg.wandb.enabled else ""),
        *dry_run_lines(cfg),
        "",
        "config_id   seed  trial",
    ]
    lines += [f"{t.config_id}  {t.seed:>4}  {t.label}" for t in specs]
    if searches:
        lines.append(f"(+ {searches} trials sampled by the search while the sweep runs)")
    return "\n".join(lines)


def cluster_gpu_warning(cfg: SweepConfig, address: str, node_gpus: list[float]) -> str | None:
    """A warning when a cluster (``--address``) has no GPU on any node now (``node_gpus``: per alive node).

    With ``resources.gpu: auto`` the trials then request no GPU and run on CPU, even on GPU
    machines an autoscaler adds later. With an explicit GPU fraction they stay pending until a
    node with a GPU joins: right on an autoscaling cluster, a hang on a fixed one. Neither is an
    error (Ray cannot tell us here whether GPU workers are on their way), so the user is told."""
    if any(g > 0 for g in node_gpus):
        return None
    if cfg.resources.gpu is None:
        return (
            f"warning: the Ray cluster at {address} reports no GPU on any of its {len(node_gpus)} node(s): "
            "resources.gpu is auto, so every trial runs on CPU; to use GPU workers that are still starting "
            "or added by the autoscaler, request them, e.g. --set resources.gpu=0.25"
        )
    if cfg.resources.gpu > 0:
        return (
            f"warning: resources.gpu={cfg.resources.gpu:g} but the Ray cluster at {address} reports no GPU on "
            f"any of its {len(node_gpus)} node(s): trials stay pending until a node with a GPU joins "
            "(an autoscaler adds one); on a fixed cluster stop with Ctrl-C and set resources.gpu: auto or 0"
        )
    return None


def local_resources() -> tuple[float, float]:
    """CPUs and GPUs of this machine: what a local Ray instance would offer."""
    import torch

    try:
        gpus = torch.cuda.device_count()
    except RuntimeError:  # a broken CUDA runtime: no usable GPU
        gpus = 0
    return float(os.cpu_count() or 1), float(gpus)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
