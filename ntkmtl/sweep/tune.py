"""Running a sweep on Ray Tune: the driver (``run_sweep``), from checks to the final table.

Everything is Ray's own machinery: a ``Tuner`` over a ``grid_search`` of the plan's trial specs
(so Ray never multiplies grids itself) — or, when the config searches a range, over the grid
specs and the seed-paired samples of one ``SweepSearcher`` (``search.py``) — the function
trainable of ``trainable.py``, ``tune.with_resources`` for CPUs and (fractional) GPUs, the
resumable ASHA schedulers of ``schedulers.py``, ``FailureConfig(max_failures)`` for retries,
``RunConfig`` storage (local or URI), ``Tuner.restore`` for ``--resume``, the driver-side
callbacks of ``callbacks.py`` (Parquet rows, W&B) and ``CLIReporter``. Fault injection for tests
is in ``faults.py``.

Before Ray starts: the storage is probed, the output must belong to this sweep
(``identity.check_output_owner``), a resume must have the sweep's fingerprint
(``identity.check_resume_identity``), and the driver takes the sweep's lock
(``identity.DriverLock``). A resume or an extension first verifies and rebuilds the trial files
(``recovery.py``) and drops the files of trials Ray lost (``orphans.py``). A write error while
Ray runs stops the sweep resumably and raises ``SweepError`` with one line.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from ntkmtl.benchmarks import get_benchmark
from ntkmtl.sweep import interrupt, secrets, storefiles
from ntkmtl.sweep.callbacks import ParquetCallback, record_of, wandb_callback
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import FINAL_STATUSES, ParquetExporter, read_results
from ntkmtl.sweep.extend import Extension, experiments, judged_samples, read_record, write_record
from ntkmtl.sweep.faults import INJECT_ENV, parse_faults
from ntkmtl.sweep.identity import DriverLock, SweepError, check_output_owner, check_resume_identity, write_identity
from ntkmtl.sweep.orphans import drop_lost_trials
from ntkmtl.sweep.output_dir import check_output
from ntkmtl.sweep.plan import (
    TrialSpec,
    build_plan,
    cluster_gpu_warning,
    expected_concurrency,
    hparam_kinds,
    local_resources,
)
from ntkmtl.sweep.recovery import repair_output
from ntkmtl.sweep.schedulers import build_scheduler
from ntkmtl.sweep.search import build_searcher, format_search
from ntkmtl.sweep.space import search_trials
from ntkmtl.sweep.storage import StorageLocation, check_storage
from ntkmtl.sweep.summary import format_summary, summarize
from ntkmtl.sweep.trainable import run_trial, trial_dirname, trial_name

PROGRESS_COLUMNS = {
    "epoch": "epoch",
    "val_delta_m": "val Δm %",
    "test_delta_m": "test Δm %",
    "epoch_seconds": "s/epoch",
}


@dataclass
class SweepOutcome:
    """What a finished sweep returns to the CLI: the results table and counts."""

    experiment_path: str
    output: str
    trials: int
    rows: int
    errored: int
    unfinished: int
    wall_seconds: float
    table: str
    search: str = ""  # per searched method: samples judged, the best one (ntkmtl.sweep.search)


def experiment_exists(location: StorageLocation, name: str) -> bool:
    import pyarrow.fs

    filesystem = location.filesystem or pyarrow.fs.LocalFileSystem()
    info = filesystem.get_file_info(location.join(name, "tuner.pkl"))
    return info.type == pyarrow.fs.FileType.File


def _start_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    # "local": a fresh Ray instance on this machine, never one some other process happens to run.
    # Ray annotates logging_level as int, but hands it to logging.Logger.setLevel, which takes a level name too
    ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING")  # type: ignore[arg-type]


def run_sweep(
    cfg: SweepConfig,
    resume: bool = False,
    address: str | None = None,
    verbose: int = 1,
    baseline: str | None = None,
    extension: Extension | None = None,
    trainable: Callable[[dict[str, Any]], None] = run_trial,
) -> SweepOutcome:
    """Run (or resume) the sweep; return when every trial has ended. ``baseline``: the final
    table's comparison configuration (``ntkmtl.compare``; default ls). ``extension``: run only
    what ``ntkmtl.sweep.extend.plan_extension`` planned, as a new Ray experiment. ``trainable``:
    the function each trial runs (``run_trial``; bench/driver_scale.py times the driver with a
    synthetic one)."""
    start = time.monotonic()
    storefiles.stop_reasons.clear()
    specs = extension.run if extension is not None else build_plan(cfg)
    names = extension.experiments if extension is not None else (experiments(cfg) if resume else [cfg.name])
    name = names[-1]  # the Ray experiment this call runs: the sweep's own, or its newest extension
    faults = [asdict(f) for f in parse_faults(os.environ.get(INJECT_ENV))]
    check_output(cfg.output)  # before Ray: read-only, a file, a full disk (output_dir.py)
    location = check_storage(cfg.storage, multi_node=False) if address is None else None
    lock = None
    try:
        if location is not None:
            lock = _check_and_lock(cfg, location, name, resume, extension)
            _check_fits_here(cfg)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic table reporter, trimmed below
        # num_to_keep forces a state snapshot per kept checkpoint: intended (resume needs it), not a warning.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        _prepare_data(cfg)
        _start_ray(address)
        secrets.keep_out_of_ray(address, cfg.wandb.enabled)  # no credential in Ray's runtime envs (secrets.py)
        interrupt.rearm()  # ray.init took SIGTERM over; the CLI's handler stops cleanly (interrupt.py)
        if location is None:
            multi_node = sum(1 for node in ray.nodes() if node.get("Alive")) > 1
            location = check_storage(cfg.storage, multi_node=multi_node)
            lock = _check_and_lock(cfg, location, name, resume, extension)
        return _run(
            cfg, specs, names, location, faults, resume, address, verbose, baseline, extension, start, trainable
        )
    finally:
        if lock is not None:
            lock.release()


def _check_and_lock(
    cfg: SweepConfig, location: StorageLocation, name: str, resume: bool, extension: Extension | None
) -> DriverLock:
    _check_resume(location, name, resume)
    check_output_owner(cfg, fresh=not resume and extension is None)
    if resume:
        check_resume_identity(cfg, location, read_record(cfg))
    lock = DriverLock(location, cfg.name).acquire()
    if lock.taken_over:
        print(lock.taken_over, flush=True)
    return lock


def _run(
    cfg, specs, names, location, faults, resume, address, verbose, baseline, extension, start, trainable
) -> SweepOutcome:
    name = names[-1]
    cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
    if address is not None:
        node_gpus = [float(node["Resources"].get("GPU", 0)) for node in ray.nodes() if node.get("Alive")]
        warning = cluster_gpu_warning(cfg, address, node_gpus)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    gpu = cfg.resources.gpu_for(cfg.benchmark, cluster_gpus)
    trainable = tune.with_resources(trainable, {"cpu": cfg.resources.cpu, "gpu": gpu})
    kinds = hparam_kinds(specs, cfg)
    existing = [n for n in names if experiment_exists(location, n)]
    if resume or extension is not None:
        repair_output(cfg.output, cfg.name, cfg.benchmark, kinds, location, existing, record_of)
    if resume:
        drop_lost_trials(location, existing, cfg.name, cfg.output)
        tuner = tune.Tuner.restore(
            location.join(name),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=location.filesystem,
        )
        _apply_run_settings(tuner, cfg, specs, faults, verbose)
    else:
        tuner = _new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension)
        write_record(cfg, names)
        write_identity(cfg, location, names)
    grid = tuner.fit()
    try:
        unfinished = 0 if storefiles.stop_reasons else _finalize(cfg, grid, specs)
    except OSError as error:
        storefiles.stop_reasons.append(
            f"output {cfg.output}: cannot write the final statuses: {storefiles.describe(error)}"
        )
    if storefiles.stop_reasons:
        raise SweepError(
            f"{storefiles.stop_reasons[0]}; the sweep stopped with its state saved: fix that, then "
            "continue with --resume (no row is lost)"
        )
    has_rows = any(Path(cfg.output).expanduser().glob("*.parquet"))
    df = read_results(cfg.output) if has_rows else None
    wall = time.monotonic() - start
    table = format_summary(summarize(df, baseline), wall) if df is not None else "no results"
    errored = sum(1 for i in range(len(grid)) if grid[i].error is not None)  # ResultGrid: __getitem__, no __iter__
    search = format_search(judged_samples(cfg), cfg.scheduler.mode) if cfg.search else ""
    return SweepOutcome(
        experiment_path=location.uri(name),
        output=cfg.output,
        trials=len(grid),
        rows=0 if df is None else len(df),
        errored=errored,
        unfinished=unfinished,
        wall_seconds=wall,
        table=table,
        search=search,
    )


def _check_resume(location: StorageLocation, name: str, resume: bool) -> None:
    exists = experiment_exists(location, name)
    path = location.uri(name)
    if resume and not exists:
        raise SweepError(f"--resume: no sweep named {name!r} to resume at {path} (run it once without --resume)")
    if not resume and exists:
        raise SweepError(
            f"a sweep named {name!r} already exists at {path}: pass --resume to continue it, "
            "or give this one another name (--set name=NEW_NAME)"
        )


def _check_fits_here(cfg: SweepConfig) -> None:
    """A local run needs at least one trial's resources on this machine (else Ray would wait forever)."""
    cpus, gpus = local_resources()
    gpu = cfg.resources.gpu_for(cfg.benchmark, gpus)
    if cfg.resources.cpu > cpus or gpu > gpus:
        raise SweepError(
            f"resources: a trial needs {cfg.resources.cpu:g} CPU and {gpu:g} GPU, but this machine has {cpus:g} "
            f"CPUs and {gpus:g} GPUs; lower them (e.g. --set resources.cpu=1) or run on a cluster with --address"
        )


def _prepare_data(cfg: SweepConfig) -> None:
    """Load (and for QM9, convert and cache) the data once in the driver, before trials start in
    parallel: for every seed, since a benchmark's split may follow the seed (QM9's, by default)."""
    started = time.monotonic()
    benchmark = get_benchmark(cfg.benchmark, **cfg.data)
    batch = cfg.train.get("batch_size") or benchmark.defaults.batch_size
    for seed in cfg.seeds:
        benchmark.loaders(batch, seed, 0)
    print(f"data ready ({cfg.benchmark}, {time.monotonic() - started:.1f} s)", flush=True)


def _callbacks(cfg: SweepConfig, specs: list[TrialSpec], faults: list[dict]) -> list:
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


def _apply_run_settings(tuner, cfg: SweepConfig, specs: list[TrialSpec], faults: list[dict], verbose: int) -> None:
    """``Tuner.restore`` brings back the first run's settings; the ones a resume may change
    (``identity.RUN_SETTINGS``: concurrency, retries, W&B; resources go with the trainable) and
    the callbacks are set from this config."""
    local = getattr(tuner, "_local_tuner", None)
    if local is None:  # Ray Client: the restored settings stay
        return
    local._tune_config.max_concurrent_trials = cfg.max_concurrent or None
    local._run_config.failure_config = tune.FailureConfig(max_failures=cfg.max_failures)
    local._run_config.callbacks = _callbacks(cfg, specs, faults)
    local._run_config.verbose = verbose


def _new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension):
    sweep = {
        "benchmark": cfg.benchmark,
        "data": cfg.data,
        "train": cfg.train,
        "metric": cfg.scheduler.metric,
        "faults": faults,
        "threads": max(1, int(cfg.resources.cpu)),
    }
    reporter = tune.CLIReporter(
        metric_columns=PROGRESS_COLUMNS,
        parameter_columns={"trial/seed": "seed"},
        max_report_frequency=15,
        max_column_length=40,
    )
    param_space: dict[str, Any] = {"sweep": sweep, "trial": tune.grid_search([s.to_dict() for s in specs])}
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
            callbacks=_callbacks(cfg, specs, faults),
            progress_reporter=reporter,
            verbose=verbose,
        ),
    )


def _finalize(cfg: SweepConfig, grid, specs: list[TrialSpec]) -> int:
    """Give every ended trial's file its final status (a driver killed between a trial's end and
    its callback leaves ``running``); return how many trials are unfinished (an interrupted sweep)."""
    exporter = ParquetExporter(cfg.output, cfg.name, cfg.benchmark, hparam_kinds(specs, cfg))
    unfinished = 0
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id")
        status = exporter.status(trial_id) if trial_id is not None else None
        if status in FINAL_STATUSES:
            continue
        if trial_id is not None and status is not None and (result.error is not None or metrics.get("done")):
            exporter.finish(trial_id, "error" if result.error is not None else "complete")
        elif result.error is None:
            unfinished += 1
    return unfinished


__all__ = ["SweepError", "SweepOutcome", "experiment_exists", "run_sweep"]
