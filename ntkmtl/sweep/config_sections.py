"""The sections of a sweep config, each checked on its own: ``train``, ``seeds``, ``methods``,
``resources``, ``early_stopping`` and ``wandb``.

Each ``parse_*`` takes the raw YAML value of its section and the ``ConfigChecker`` of the file,
and returns the section validated (a dict or a dataclass of ``config_types``) or raises the
checker's one-line ``ConfigError``. ``ntkmtl.sweep.config.parse_config`` calls them in order and
checks what spans sections. Plain Python, no Ray.
"""

from __future__ import annotations

import os
from typing import Any

from ntkmtl.methods import METHODS, method_class
from ntkmtl.sweep.config_checks import ConfigChecker, did_you_mean
from ntkmtl.sweep.config_types import EarlyStoppingConfig, MethodGrid, Resources, WandbConfig
from ntkmtl.sweep.limits import SEED_MAX
from ntkmtl.sweep.space import parse_range
from ntkmtl.sweep.wandb import api_key_present
from ntkmtl.training.settings import TRAIN_SETTINGS

EARLY_STOPPING_TYPES = ("none", "asha", "seed_asha")
EARLY_STOPPING_KEYS = ("type", "metric", "mode", "grace_period", "reduction_factor")
RESOURCE_KEYS = ("cpu", "gpu")
WANDB_KEYS = ("enabled", "project", "entity", "mode", "dir")
WANDB_MODES = ("online", "offline", "disabled")


def parse_train(c: ConfigChecker, raw: Any) -> dict[str, Any]:
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


def parse_seeds(c: ConfigChecker, raw: Any) -> tuple[int, ...]:
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


def parse_methods(c: ConfigChecker, raw: Any) -> tuple[MethodGrid, ...]:
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
                f"is not a known method{did_you_mean(name, METHODS)}; valid: {', '.join(sorted(METHODS))}",
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


def parse_resources(c: ConfigChecker, raw: Any) -> Resources:
    c.mapping("resources", raw, RESOURCE_KEYS)
    cpu = c.number("resources.cpu", raw.get("cpu", 1), low=0.0, low_open=True)
    gpu = raw.get("gpu", "auto")
    if gpu == "auto":
        return Resources(cpu=cpu, gpu=None)
    gpu = c.number("resources.gpu", gpu, low=0.0)
    if gpu > 1 and gpu != int(gpu):
        c.fail("resources.gpu", gpu, "must be a fraction up to 1 or a whole number of GPUs (Ray cannot split 1.5 GPUs)")
    return Resources(cpu=cpu, gpu=gpu)


def parse_early_stopping(c: ConfigChecker, raw: Any, benchmark: Any, epochs: int) -> EarlyStoppingConfig:
    c.mapping("early_stopping", raw, EARLY_STOPPING_KEYS)
    kind = c.choice("early_stopping.type", raw.get("type", "none"), EARLY_STOPPING_TYPES)
    metric = c.string("early_stopping.metric", raw.get("metric", "val_delta_m"))
    directions = {"val_delta_m": "min"}
    directions.update({f"val_{m.name}": "max" if m.higher_is_better else "min" for m in benchmark.metrics})
    if metric not in directions:
        c.fail(
            "early_stopping.metric",
            metric,
            f"is not a validation metric of {benchmark.name!r}; valid: {', '.join(directions)}",
        )
    mode = c.choice("early_stopping.mode", raw.get("mode", directions[metric]), ("min", "max"))
    if mode != directions[metric]:
        c.fail(
            "early_stopping.mode",
            mode,
            f"contradicts {metric}, which is {'higher' if directions[metric] == 'max' else 'lower'} is better; use mode: {directions[metric]}",
        )
    grace = c.integer("early_stopping.grace_period", raw.get("grace_period", 1), low=1)
    if grace > epochs:
        c.fail(
            "early_stopping.grace_period",
            grace,
            f"exceeds the {epochs} epochs of a trial, so nothing could ever be stopped",
        )
    factor = c.number("early_stopping.reduction_factor", raw.get("reduction_factor", 2), low=1.0, low_open=True)
    return EarlyStoppingConfig(type=kind, metric=metric, mode=mode, grace_period=grace, reduction_factor=factor)


def parse_wandb(c: ConfigChecker, raw: Any) -> WandbConfig:
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
