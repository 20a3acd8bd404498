"""Sweep configuration: a YAML file → a typed, validated ``SweepConfig``, before Ray starts.

A sweep is one benchmark, its data options, the training set-up, a list of seeds, and for every
method its own hyperparameter grid (so ``ntk_exp`` only multiplies the methods that have it).
Every problem — an unknown key, method or hyperparameter, a wrong type, a value out of range, an
empty grid, a missing data directory, bad resources, early stopping or W&B settings — raises a
``ConfigError`` naming the file, the key path and the bad value, and listing what is valid.
Nothing here imports Ray: a bad config fails in a second, before any trial exists.

This module reads the file, applies ``--set`` overrides and checks what spans sections; the
sections themselves are checked in ``config_sections``, with the typed checks and ``ConfigError``
of ``config_checks``, into the dataclasses of ``config_types``.

Renamed keys: the top-level ``scheduler:`` is now ``early_stopping:`` (it never meant the LR
schedule, ``train.scheduler``). Until 0.3 the old name still works, in the file and in ``--set``,
with one warning line on stderr; giving both names is an error (``config_renames``).

Layout (every key but ``benchmark``, ``seeds`` and ``methods`` is optional)::

    name: quickstart                 # sweep name (default: the file name without .yaml)
    benchmark: qm9                   # qm9 | celeba | nyuv2 | cityscapes | toy
    data: {train_size: 2000}         # the benchmark's data options
    train: {epochs: 8}               # epochs, batch_size, lr, scheduler, method_lr, device, num_workers,
                                     # precision (fp32 | bf16 | fp16), task_gradients (auto | loop | batched)
    seeds: [0, 1]
    methods:                         # method → {hyperparameter: value, list of values, or range}
      ls: {}
      ntkmtl: {ntk_exp: [0.5, 1.0]}  # or {ntk_exp: {low: 0.25, high: 1.5}} with a search section
    search: {type: optuna, samples: 10}   # only with ranges: ntkmtl/sweep/space.py
    resources: {cpu: 1, gpu: auto}   # per trial; gpu: a fraction, or auto (benchmark default if GPUs)
    early_stopping: {type: asha, grace_period: 2, reduction_factor: 2}   # none | asha | seed_asha
    storage: ~/ray_results           # Ray's storage_path: a local path or s3:// gs:// file:// URI
    output: results/quickstart       # Parquet directory, one file per trial
    max_failures: 1                  # retries per trial (from its last checkpoint)
    max_concurrent: 0                # at most this many trials at once (0: as resources allow)
    wandb: {enabled: false, project: ntkmtl, mode: offline}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from ntkmtl.benchmarks import BENCHMARKS, DataError, get_benchmark
from ntkmtl.methods import method_class
from ntkmtl.precision import precision_conflict
from ntkmtl.sweep import strict_yaml
from ntkmtl.sweep.config_checks import ConfigChecker, ConfigError
from ntkmtl.sweep.config_renames import rename_deprecated_keys, renamed_override
from ntkmtl.sweep.config_sections import (
    parse_early_stopping,
    parse_methods,
    parse_resources,
    parse_seeds,
    parse_train,
    parse_wandb,
)
from ntkmtl.sweep.config_types import EarlyStoppingConfig, MethodGrid, Resources, SweepConfig, WandbConfig
from ntkmtl.sweep.limits import name_problem, path_problem, shortened
from ntkmtl.sweep.space import parse_search
from ntkmtl.sweep.storage import parse_storage

TOP_LEVEL_KEYS = (
    "name",
    "benchmark",
    "data",
    "train",
    "seeds",
    "methods",
    "resources",
    "early_stopping",
    "storage",
    "output",
    "max_failures",
    "max_concurrent",
    "wandb",
    "search",
)

# What an experiment pickled by ntkmtl 0.1 names (Ray's tuner.pkl holds the searcher, and the
# searcher this module's SweepConfig): kept importable from here so that such a sweep resumes.
SchedulerConfig = EarlyStoppingConfig


# -- loading ---------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike, overrides: list[str] | None = None, check_data: bool = True) -> SweepConfig:
    """Read, override (``key.sub=value``) and validate the YAML file at ``path``."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"{source}: no such config file")
    try:
        raw = strict_yaml.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:  # a DuplicateKeyError too: "line 9: key 'ls' is given twice …"
        if isinstance(error, strict_yaml.DuplicateKeyError):
            raise ConfigError(f"{source}: {error}") from None
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys; got {type(raw).__name__} {raw!r}")
    rename_deprecated_keys(raw, source)  # before --set, so that --set early_stopping.type=… reaches it
    for item in overrides or []:
        apply_override(raw, item, source)
    raw.setdefault("name", path.stem)
    return parse_config(raw, source=source, check_data=check_data)


def apply_override(raw: dict[str, Any], item: str, source: str = "--set") -> None:
    """Apply one ``--set key.sub=value`` (value parsed as YAML) to the raw config, in place."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source}: --set {item!r} is not of the form key=value (e.g. train.epochs=3)")
    try:
        value = strict_yaml.load(text)
    except strict_yaml.DuplicateKeyError as error:
        raise ConfigError(f"{source}: --set {item!r}: {error}") from None
    except yaml.YAMLError:
        value = text
    parts = renamed_override(key.strip().split("."), item, text, source)
    target = raw
    for depth, part in enumerate(parts[:-1]):
        node = target.get(part)
        if node is None:
            node = target[part] = {}
        if not isinstance(node, dict):
            raise ConfigError(
                f"{source}: --set {item!r}: {'.'.join(parts[: depth + 1])} is not a mapping (it is {node!r})"
            )
        target = node
    target[parts[-1]] = value


def parse_config(raw: Mapping[str, Any], source: str = "<config>", check_data: bool = True) -> SweepConfig:
    """Validate a raw mapping (as loaded from YAML) into a SweepConfig; raise ConfigError on any problem."""
    c = ConfigChecker(source)
    if isinstance(raw, Mapping):
        raw = dict(raw)
        rename_deprecated_keys(raw, source)
    c.mapping("", raw, TOP_LEVEL_KEYS)
    for key in ("benchmark", "seeds", "methods"):
        if key not in raw:
            c.fail(key, None, "is required")
    name = c.string("name", raw.get("name", "sweep"))
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        c.fail("name", name, "may contain only letters, digits, '-', '_' and '.' (it names directories)")
    problem = name_problem(name)
    if problem:
        c.fail("name", shortened(name), problem)

    benchmark_name = raw["benchmark"]
    if not isinstance(benchmark_name, str) or benchmark_name not in BENCHMARKS:
        c.fail("benchmark", benchmark_name, f"is not a known benchmark; valid: {', '.join(sorted(BENCHMARKS))}")
    data = dict(c.mapping("data", raw.get("data") or {}, None))
    try:
        benchmark = get_benchmark(benchmark_name, **data)
    except ValueError as error:
        bad = _bad_key(error, data)
        c.fail(f"data.{bad}" if bad else "data", data.get(bad) if bad else data, str(error))
    train = parse_train(c, raw.get("train") or {})
    epochs = train.get("epochs") or benchmark.defaults.epochs
    seeds = parse_seeds(c, raw["seeds"])
    methods = parse_methods(c, raw["methods"])
    for grid in methods:
        conflict = precision_conflict(
            train.get("precision", "fp32"), method_class(grid.name), train.get("task_gradients", "auto")
        )
        if conflict:
            c.fail("train.precision", train["precision"], f"{conflict} (methods.{grid.name})")
    resources = parse_resources(c, raw.get("resources") or {})
    early_stopping = parse_early_stopping(c, raw.get("early_stopping") or {}, benchmark, epochs)
    storage = raw.get("storage")
    try:
        location = parse_storage(storage)
    except ValueError as error:
        c.fail("storage", storage, str(error))
    output = c.string("output", raw.get("output", f"results/{name}"))
    local_paths = {"output": output, "storage": location.path if location.filesystem is None else None}
    for key, where in local_paths.items():
        problem = path_problem(where) if where is not None else None
        if where is not None and problem:
            c.fail(key, shortened(where), problem)
    max_failures = c.integer("max_failures", raw.get("max_failures", 1), low=0)
    max_concurrent = c.integer("max_concurrent", raw.get("max_concurrent", 0), low=0)
    wandb = parse_wandb(c, raw.get("wandb") or {})
    ranges = [(f"methods.{m.name}.{hp}", raw["methods"][m.name][hp]) for m in methods for hp in m.ranges]
    search = parse_search(c.fail, raw.get("search"), ranges)
    if early_stopping.type == "seed_asha" and 0 < max_concurrent < len(seeds):
        c.fail(
            "max_concurrent",
            max_concurrent,
            f"is below the {len(seeds)} seeds: seed_asha pauses a configuration's seeds until all of them "
            "reach a rung, so all must be able to start; use 0 (no limit) or at least the number of seeds",
        )
    config = SweepConfig(
        name=name,
        benchmark=benchmark_name,
        data=dict(benchmark.options),
        train=train,
        seeds=seeds,
        methods=methods,
        resources=resources,
        early_stopping=early_stopping,
        storage=storage,
        output=output,
        max_failures=max_failures,
        max_concurrent=max_concurrent,
        wandb=wandb,
        source=source,
        search=search,
    )
    if check_data:
        check_benchmark_data(config)
    return config


def check_benchmark_data(cfg: SweepConfig) -> None:
    """Raise ConfigError (naming ``data.root`` and the path) when the benchmark's data is missing."""
    benchmark = get_benchmark(cfg.benchmark, **cfg.data)
    try:
        benchmark.check_data()
    except (DataError, OSError) as error:
        key = "root" if "root" in benchmark.options else None
        value = benchmark.options.get(key) if key else cfg.data
        ConfigChecker(cfg.source).fail(f"data.{key}" if key else "data", value, f"the data is not usable: {error}")


def _bad_key(error: ValueError, options: Mapping[str, Any]) -> str | None:
    """The data option a benchmark's ValueError is about (its message quotes the name)."""
    text = str(error)
    for key in options:
        if f"{key!r}" in text or f" {key}=" in text:
            return key
    return None


__all__ = [
    "ConfigError",
    "SweepConfig",
    "apply_override",
    "check_benchmark_data",
    "load_config",
    "parse_config",
    # for experiments pickled by ntkmtl 0.1 (see SchedulerConfig): the classes its SweepConfig held
    "MethodGrid",
    "Resources",
    "SchedulerConfig",
    "WandbConfig",
]
