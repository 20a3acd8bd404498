"""Ray's ``Tuner`` for a sweep: a new one built from the plan, or a restored one given this config's run settings.

A new Tuner runs the plan's trial specs as one ``grid_search`` (Ray never multiplies grids
itself) — or, when the config searches a range, the grid specs and the seed-paired samples of
one ``SweepSearcher`` (``search.py``) — with the early stopping of ``schedulers.py``,
``FailureConfig(max_failures)`` for retries, ``RunConfig`` storage (local or URI), the
driver-side callbacks (Ray's CSV and JSON logs, Parquet rows, W&B) and a trimmed
``CLIReporter``. ``Tuner.restore`` brings back the first run's settings; ``apply_run_settings``
sets the ones a resume may change. The driver (``tune.py``) decides which of the two it needs.
"""

from __future__ import annotations

import os
from typing import Any

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler

from ntkmtl.sweep.callbacks import ParquetCallback, wandb_callback
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.plan import TrialSpec, expected_concurrency, hparam_kinds
from ntkmtl.sweep.schedulers import ResumableFIFO, build_scheduler
from ntkmtl.sweep.search import build_searcher
from ntkmtl.sweep.space import search_trials
from ntkmtl.sweep.trainable import trial_dirname, trial_name

PROGRESS_COLUMNS = {
    "epoch": "epoch",
    "val_delta_m": "val Δm %",
    "test_delta_m": "test Δm %",
    "epoch_seconds": "s/epoch",
}


class GridEntry(dict):
    """One trial spec as a value of Ray's ``grid_search``: a read-only dict whose deep copy is itself.

    Ray's variant generator deep-copies the whole unresolved grid (all N specs) for each of the
    N trials it creates: O(N²) driver CPU, 4.4 s at N = 1,000 and 42 s at N = 3,000 with plain
    dicts, 0.2 s and 1.8 s with GridEntry (bench/grid_copy.py). A spec is never changed once
    planned, so sharing it is safe, and its mutators raise to keep it so. It pickles, and Ray's JSON state stores it, as a plain dict.
    """

    def __deepcopy__(self, memo: dict) -> GridEntry:
        return self

    def __copy__(self) -> dict:
        return dict(self)  # a shallow copy is made to be changed (Ray's flatten_dict does)

    def __reduce__(self):
        return GridEntry, (dict(self),)

    def _read_only(self, *args, **kwargs):
        raise TypeError("a planned trial spec is read-only")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]


def driver_callbacks(cfg: SweepConfig, specs: list[TrialSpec], faults: list[dict]) -> list:
    # Ray's CSV and JSON result logs stay (its analysis and recovery.py read them); its TensorBoard
    # logger does not: Parquet (and W&B) hold every epoch, and it cost ~8 ms of driver CPU per
    # QM9-wide result (bench/driver_scale.py).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    callbacks = [
        CSVLoggerCallback(),
        JsonLoggerCallback(),
        ParquetCallback(cfg.output, cfg.name, cfg.benchmark, hparam_kinds(specs, cfg), faults),
    ]
    if cfg.wandb.enabled:
        callbacks.append(wandb_callback(cfg))
    return callbacks


def apply_run_settings(
    tuner, cfg: SweepConfig, specs: list[TrialSpec], faults: list[dict], verbose: int, recorded: dict[str, int]
) -> None:
    """``Tuner.restore`` brings back the first run's settings; the ones a resume may change
    (``identity.RUN_SETTINGS``: concurrency, retries, W&B; resources go with the trainable) and
    the callbacks are set from this config. ``recorded``: each trial's last recorded epoch, for
    the scheduler that settles restored trials' checkpoints (``checkpoints.py``)."""
    local = getattr(tuner, "_local_tuner", None)
    if local is None:  # Ray Client: the restored settings stay
        return
    scheduler = local._tune_config.scheduler
    if type(scheduler) is FIFOScheduler:  # a sweep started by ntkmtl 0.1: the same order, resumable
        scheduler = local._tune_config.scheduler = ResumableFIFO()
    if isinstance(scheduler, ResumableFIFO):
        scheduler.recorded_epochs = dict(recorded)
    local._tune_config.max_concurrent_trials = cfg.max_concurrent or None
    local._run_config.failure_config = tune.FailureConfig(max_failures=cfg.max_failures)
    local._run_config.callbacks = driver_callbacks(cfg, specs, faults)
    local._run_config.verbose = verbose


def new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension):
    sweep = {
        "benchmark": cfg.benchmark,
        "data": cfg.data,
        "train": cfg.train,
        "metric": cfg.early_stopping.metric,
        "faults": faults,
        "threads": max(1, int(cfg.resources.cpu)),
    }
    reporter = tune.CLIReporter(
        metric_columns=PROGRESS_COLUMNS,
        parameter_columns={"trial/seed": "seed"},
        max_report_frequency=15,
        max_column_length=40,
    )
    param_space: dict[str, Any] = {"sweep": sweep, "trial": tune.grid_search([GridEntry(s.to_dict()) for s in specs])}
    search: dict[str, Any] = {"num_samples": 1}
    sampled = search_trials(cfg) if extension is None else extension.sampled_trials
    if cfg.search is not None and sampled:  # grid trials and sampled ones from one searcher (search.py)
        resources = ray.cluster_resources()
        total = len(specs) + sampled
        concurrency = expected_concurrency(cfg, total, resources.get("CPU", 1), resources.get("GPU", 0))
        param_space = {"sweep": sweep}
        searcher = build_searcher(
            cfg, specs, concurrency, *((extension.new_samples, extension.history) if extension else ())
        )
        search = {"num_samples": total, "search_alg": searcher}
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(2, len(cfg.seeds))))  # a sample's seeds together
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=build_scheduler(cfg, extension.prefill if extension else None),
            reuse_actors=True,
            **search,
            max_concurrent_trials=cfg.max_concurrent or None,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=name,
            **location.run_config_kwargs(),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=driver_callbacks(cfg, specs, faults),
            progress_reporter=reporter,
            verbose=verbose,
        ),
    )
