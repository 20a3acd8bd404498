"""Running a sweep on Ray Tune: the driver (``run_sweep``), from checks to the final table.

Before Ray starts: the output directory is checked (``output_dir.py``), the storage is probed,
the output must belong to this sweep (``identity.check_output_owner``), a resume must have the
sweep's fingerprint (``identity.check_resume_identity``), the driver takes the sweep's lock
(``identity.DriverLock``), a local run must fit one trial on this machine, and the data is
prepared once. Then Ray starts (or joins ``--address``), the trainable of ``trainable.py`` gets
its resources (``tune.with_resources``: CPUs, fractional GPUs), and a resume or an extension
first verifies and rebuilds the trial files (``recovery.py``) and drops the files of trials Ray
lost (``orphans.py``). The Tuner itself, new or restored (``--resume``), comes from
``tuner.py``; what the run ends with — final statuses, the table, a one-line ``SweepError``
when a write failed while Ray ran — from ``outcome.py``. Fault injection for tests is in
``faults.py``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from typing import Any, Callable

import ray
from ray import tune

from ntkmtl.benchmarks import get_benchmark
from ntkmtl.sweep import interrupt, secrets, storefiles
from ntkmtl.sweep.callbacks import record_of
from ntkmtl.sweep.checkpoints import snapshots_on_schedule
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import last_epochs
from ntkmtl.sweep.extend import Extension
from ntkmtl.sweep.faults import INJECT_ENV, parse_faults
from ntkmtl.sweep.identity import DriverLock, SweepError, check_output_owner, check_resume_identity, write_identity
from ntkmtl.sweep.orphans import drop_lost_trials
from ntkmtl.sweep.outcome import SweepOutcome, sweep_outcome
from ntkmtl.sweep.output_dir import check_output
from ntkmtl.sweep.plan import build_plan, cluster_gpu_warning, hparam_kinds, local_resources
from ntkmtl.sweep.ray_state import usable_experiment_state
from ntkmtl.sweep.record import experiments, read_record, write_record
from ntkmtl.sweep.recovery import repair_output
from ntkmtl.sweep.storage import StorageLocation
from ntkmtl.sweep.storage_check import check_storage
from ntkmtl.sweep.trainable import run_trial
from ntkmtl.sweep.tuner import apply_run_settings, new_tuner


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
        # Ray's warning on forced snapshots (num_to_keep) tells a Ray user what to tune, not an ntkmtl user;
        # ntkmtl does not force them (checkpoints.snapshots_on_schedule) where its Ray allows.
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
    if resume:
        for experiment in existing:  # a snapshot cut short by a kill: the session before (ray_state.py)
            usable_experiment_state(location, experiment)
    if resume or extension is not None:
        repair_output(cfg.output, cfg.name, cfg.benchmark, kinds, location, existing, record_of)
    if resume:
        drop_lost_trials(location, existing, cfg.name, cfg.output)
        recorded = last_epochs(cfg.output, cfg.name)  # after the repair: every row the sweep holds
        tuner = tune.Tuner.restore(
            location.join(name),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=location.filesystem,
        )
        apply_run_settings(tuner, cfg, specs, faults, verbose, recorded)
    else:
        tuner = new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension)
        write_record(cfg, names)
        write_identity(cfg, location, names)
    with snapshots_on_schedule():
        results = tuner.fit()
    return sweep_outcome(cfg, results, specs, location.uri(name), start, baseline)


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


__all__ = ["SweepError", "SweepOutcome", "experiment_exists", "run_sweep"]
