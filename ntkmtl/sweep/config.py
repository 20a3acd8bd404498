"""Sweep configuration: a YAML file → a typed, validated ``SweepConfig``, before Ray starts.

A sweep is one benchmark, its data options, the training set-up, a list of seeds, and for every
method its own hyperparameter grid (so ``ntk_exp`` only multiplies the methods that have it).
Every problem — an unknown key, method or hyperparameter, a wrong type, a value out of range, an
empty grid, a missing data directory, bad resources, scheduler or W&B settings — raises a
``ConfigError`` naming the file, the key path and the bad value, and listing what is valid.
Nothing here imports Ray: a bad config fails in a second, before any trial exists.

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
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # none | asha | seed_asha
    storage: ~/ray_results           # Ray's storage_path: a local path or s3:// gs:// file:// URI
    output: results/quickstart       # Parquet directory, one file per trial
    max_failures: 1                  # retries per trial (from its last checkpoint)
    max_concurrent: 0                # at most this many trials at once (0: as resources allow)
    wandb: {enabled: false, project: ntkmtl, mode: offline}
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ntkmtl.benchmarks import BENCHMARKS, DataError, benchmark_class, get_benchmark
from ntkmtl.methods import METHODS, method_class
from ntkmtl.precision import precision_conflict
from ntkmtl.sweep import strict_yaml
from ntkmtl.sweep.limits import SEED_MAX, name_problem, path_problem, shortened
from ntkmtl.sweep.space import Range, SearchSettings, parse_range, parse_search
from ntkmtl.sweep.storage import parse_storage
from ntkmtl.sweep.wandb import api_key_present
from ntkmtl.training.settings import TRAIN_SETTINGS

TOP_LEVEL_KEYS = (
    "name",
    "benchmark",
    "data",
    "train",
    "seeds",
    "methods",
    "resources",
    "scheduler",
    "storage",
    "output",
    "max_failures",
    "max_concurrent",
    "wandb",
    "search",
)
SCHEDULER_TYPES = ("none", "asha", "seed_asha")
SCHEDULER_KEYS = ("type", "metric", "mode", "grace_period", "reduction_factor")
RESOURCE_KEYS = ("cpu", "gpu")
WANDB_KEYS = ("enabled", "project", "entity", "mode", "dir")
WANDB_MODES = ("online", "offline", "disabled")


class ConfigError(ValueError):
    """A sweep config is invalid; the message names the file, the key path and the bad value."""


@dataclass(frozen=True)
class MethodGrid:
    """One method and its grid: hyperparameter → the values to try (each already validated);
    ``ranges``: the hyperparameters a search samples instead (the method is then searched)."""

    name: str
    grid: dict[str, tuple[Any, ...]]
    ranges: dict[str, Range] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerConfig:
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
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    storage: Any = None
    output: str = ""
    max_failures: int = 1
    max_concurrent: int = 0
    wandb: WandbConfig = field(default_factory=WandbConfig)
    source: str = "<config>"
    search: SearchSettings | None = None

    @property
    def epochs(self) -> int:
        """Epochs per trial: ``train.epochs`` or the benchmark's default."""
        return self.train.get("epochs") or benchmark_class(self.benchmark).defaults.epochs


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
    parts = key.strip().split(".")
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
    c = _Checker(source)
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
    train = _parse_train(c, raw.get("train") or {})
    epochs = train.get("epochs") or benchmark.defaults.epochs
    seeds = _parse_seeds(c, raw["seeds"])
    methods = _parse_methods(c, raw["methods"])
    for grid in methods:
        conflict = precision_conflict(
            train.get("precision", "fp32"), method_class(grid.name), train.get("task_gradients", "auto")
        )
        if conflict:
            c.fail("train.precision", train["precision"], f"{conflict} (methods.{grid.name})")
    resources = _parse_resources(c, raw.get("resources") or {})
    scheduler = _parse_scheduler(c, raw.get("scheduler") or {}, benchmark, epochs)
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
    wandb = _parse_wandb(c, raw.get("wandb") or {})
    ranges = [(f"methods.{m.name}.{hp}", raw["methods"][m.name][hp]) for m in methods for hp in m.ranges]
    search = parse_search(c.fail, raw.get("search"), ranges)
    if scheduler.type == "seed_asha" and 0 < max_concurrent < len(seeds):
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
        scheduler=scheduler,
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
        _Checker(cfg.source).fail(f"data.{key}" if key else "data", value, f"the data is not usable: {error}")


# -- sections --------------------------------------------------------------------------------------
def _parse_train(c: "_Checker", raw: Any) -> dict[str, Any]:
    """The ``train:`` keys, types and ranges are the trainer's declared TRAIN_SETTINGS."""
    c.mapping("train", raw, [h.name for h in TRAIN_SETTINGS])
    out: dict[str, Any] = {}
    for h in (h for h in TRAIN_SETTINGS if h.name in raw):
        path, value = f"train.{h.name}", raw[h.name]
        if h.choices is not None:
            out[h.name] = c.choice(path, value, h.choices)
        elif h.kind is int:
            out[h.name] = c.integer(path, value, low=int(h.low) if h.low is not None else None)
        else:
            out[h.name] = c.number(path, value, low=h.low, low_open=h.low_open)
    return out


def _parse_seeds(c: "_Checker", raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list):
        c.fail("seeds", raw, "must be a list of integers, e.g. [0, 1, 2]")
    if not raw:
        c.fail("seeds", raw, "is empty: give at least one seed")
    rng = " (2**32 - 1: numpy's random.seed, which every trial calls, accepts no larger seed)"
    seeds = tuple(c.integer(f"seeds[{i}]", s, low=0, high=SEED_MAX, why=rng) for i, s in enumerate(raw))
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        c.fail("seeds", raw, f"lists seed {duplicates[0]} more than once")
    return seeds


def _parse_methods(c: "_Checker", raw: Any) -> tuple[MethodGrid, ...]:
    if isinstance(raw, list) and all(isinstance(m, str) for m in raw):
        raw = {m: {} for m in raw}
    if not isinstance(raw, dict):
        c.fail(
            "methods",
            raw,
            "must map each method to its hyperparameter grid, e.g. {ls: {}, ntkmtl: {ntk_exp: [0.5, 1.0]}}",
        )
    if not raw:
        c.fail("methods", raw, f"is empty: give at least one method; valid: {', '.join(sorted(METHODS))}")
    grids = []
    for name, hparams in raw.items():
        path = f"methods.{name}"
        if name not in METHODS:
            c.fail(
                path,
                hparams,
                f"is not a known method{_did_you_mean(name, METHODS)}; valid: {', '.join(sorted(METHODS))}",
            )
        cls = method_class(name)
        if hparams is None:
            hparams = {}
        valid = [h.name for h in cls.all_hparams()]
        c.mapping(path, hparams, valid)
        grid, ranges = {}, {}
        kinds = {h.name: h.kind for h in cls.all_hparams()}
        for hp, values in hparams.items():
            if isinstance(values, dict):

                def check(value, hp=hp):
                    try:
                        return cls.validate_hparams({hp: value})[hp]
                    except ValueError as error:
                        c.fail(f"{path}.{hp}", values, str(error))

                ranges[hp] = parse_range(c.fail, f"{path}.{hp}", values, check, kinds[hp])
                continue
            values = values if isinstance(values, list) else [values]
            if not values:
                c.fail(f"{path}.{hp}", values, "is an empty grid: give at least one value")
            checked = []
            for i, value in enumerate(values):
                where = f"{path}.{hp}" if len(values) == 1 else f"{path}.{hp}[{i}]"
                try:
                    checked.append(cls.validate_hparams({hp: value})[hp])
                except ValueError as error:
                    c.fail(where, value, str(error))
            if len(set(checked)) != len(checked):
                c.fail(f"{path}.{hp}", values, "lists a value more than once (it would run the same trials twice)")
            grid[hp] = tuple(checked)
        grids.append(MethodGrid(name, grid, ranges))
    return tuple(grids)


def _parse_resources(c: "_Checker", raw: Any) -> Resources:
    c.mapping("resources", raw, RESOURCE_KEYS)
    cpu = c.number("resources.cpu", raw.get("cpu", 1), low=0.0, low_open=True)
    gpu = raw.get("gpu", "auto")
    if gpu == "auto":
        return Resources(cpu=cpu, gpu=None)
    gpu = c.number("resources.gpu", gpu, low=0.0)
    if gpu > 1 and gpu != int(gpu):
        c.fail("resources.gpu", gpu, "must be a fraction up to 1 or a whole number of GPUs (Ray cannot split 1.5 GPUs)")
    return Resources(cpu=cpu, gpu=gpu)


def _parse_scheduler(c: "_Checker", raw: Any, benchmark: Any, epochs: int) -> SchedulerConfig:
    c.mapping("scheduler", raw, SCHEDULER_KEYS)
    kind = c.choice("scheduler.type", raw.get("type", "none"), SCHEDULER_TYPES)
    metric = c.string("scheduler.metric", raw.get("metric", "val_delta_m"))
    directions = {"val_delta_m": "min"}
    directions.update({f"val_{m.name}": "max" if m.higher_is_better else "min" for m in benchmark.metrics})
    if metric not in directions:
        c.fail(
            "scheduler.metric",
            metric,
            f"is not a validation metric of {benchmark.name!r}; valid: {', '.join(directions)}",
        )
    mode = c.choice("scheduler.mode", raw.get("mode", directions[metric]), ("min", "max"))
    if mode != directions[metric]:
        c.fail(
            "scheduler.mode",
            mode,
            f"contradicts {metric}, which is {'higher' if directions[metric] == 'max' else 'lower'} is better; use mode: {directions[metric]}",
        )
    grace = c.integer("scheduler.grace_period", raw.get("grace_period", 1), low=1)
    if grace > epochs:
        c.fail(
            "scheduler.grace_period", grace, f"exceeds the {epochs} epochs of a trial, so nothing could ever be stopped"
        )
    factor = c.number("scheduler.reduction_factor", raw.get("reduction_factor", 2), low=1.0, low_open=True)
    return SchedulerConfig(type=kind, metric=metric, mode=mode, grace_period=grace, reduction_factor=factor)


def _parse_wandb(c: "_Checker", raw: Any) -> WandbConfig:
    c.mapping("wandb", raw, WANDB_KEYS)
    enabled = c.boolean("wandb.enabled", raw.get("enabled", False))
    project = c.string("wandb.project", raw.get("project", "ntkmtl"))
    entity = raw.get("entity")
    if entity is not None:
        entity = c.string("wandb.entity", entity)
    directory = raw.get("dir")
    if directory is not None:
        directory = c.string("wandb.dir", directory)
    mode = c.choice("wandb.mode", os.environ.get("WANDB_MODE") or raw.get("mode", "offline"), WANDB_MODES)
    if enabled and mode == "online" and not api_key_present():
        c.fail(
            "wandb.mode",
            mode,
            "needs a W&B API key, and none was found (WANDB_API_KEY or `wandb login`); "
            "use mode: offline (then `wandb sync` later) or set the key",
        )
    return WandbConfig(enabled=enabled, project=project, entity=entity, mode=mode, dir=directory)


# -- checking helpers ------------------------------------------------------------------------------
class _Checker:
    """Type and range checks that raise ConfigError with ``file: key.path = value: reason``."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, value: Any, reason: str):
        where = f"{self.source}: {path}" if path else self.source
        shown = "" if value is None and reason == "is required" else f" = {value!r}"
        raise ConfigError(f"{where}{shown}: {reason}")

    def mapping(self, path: str, value: Any, valid_keys) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path or "<top level>", value, "must be a mapping (key: value)")
        if valid_keys is not None:
            for key in value:
                if key not in valid_keys:
                    full = f"{path}.{key}" if path else str(key)
                    self.fail(
                        full,
                        value[key],
                        f"unknown key {key!r}{_did_you_mean(key, valid_keys)}; valid keys: {', '.join(valid_keys) or 'none'}",
                    )
        return value

    def string(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, value, "must be a non-empty string")
        return value.strip()

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(path, value, "must be true or false")
        return value

    def choice(self, path: str, value: Any, valid) -> Any:
        if value not in valid:
            self.fail(path, value, f"is not valid{_did_you_mean(value, valid)}; valid: {', '.join(map(str, valid))}")
        return value

    def integer(self, path: str, value: Any, low: int | None = None, high: int | None = None, why: str = "") -> int:
        whole = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and float(value) == int(value)
        )
        if not whole:
            self.fail(path, value, "must be an integer" + (f" >= {low}" if low is not None else ""))
        value = int(value)
        if low is not None and value < low:
            self.fail(path, value, f"must be an integer >= {low}")
        if high is not None and value > high:
            self.fail(path, value, f"must be an integer from {low} to {high}{why}")
        return value

    def number(self, path: str, value: Any, low: float | None = None, low_open: bool = False) -> float:
        bound = "" if low is None else f" {'>' if low_open else '>='} {low:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, value, f"must be a finite number{bound}")
        if low is not None and (value <= low if low_open else value < low):
            self.fail(path, value, f"must be a number{bound}")
        return float(value)


def _did_you_mean(value: Any, valid) -> str:
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bad_key(error: ValueError, options: Mapping[str, Any]) -> str | None:
    """The data option a benchmark's ValueError is about (its message quotes the name)."""
    text = str(error)
    for key in options:
        if f"{key!r}" in text or f" {key}=" in text:
            return key
    return None
