"""Running a sweep on Ray Tune (with search.py and orphans.py, the modules that import Ray).

Everything is Ray's own machinery: a ``Tuner`` over a ``grid_search`` of the plan's trial specs
(so Ray never multiplies grids itself) — or, when the config searches a range, over the grid
specs and the seed-paired samples of one ``SweepSearcher`` (``search.py``) — a function trainable that wraps ``ntkmtl.train.Trial``
and calls ``tune.report(record, checkpoint=…)`` after every epoch and ``tune.get_checkpoint()``
to resume, ``tune.with_resources`` for CPUs and (fractional) GPUs, ``ASHAScheduler`` or our
seed-aware ``TrialScheduler``, ``FailureConfig(max_failures)`` for retries, ``RunConfig``
storage (local or URI), ``Tuner.restore`` for ``--resume``, a driver-side ``Callback`` that
writes the Parquet rows, Ray's ``WandbLoggerCallback`` and ``CLIReporter``.

Data is loaded once per worker process, not once per trial: the trainable keeps the loaded
benchmark in a process-level cache keyed by benchmark and data options, and actors are reused
between trials (``reuse_actors``), so a worker trains trial after trial on data it already holds.

A trial whose record is ``diverged`` (non-finite loss or metric) or whose scheduler metric is not
finite reports that record and returns: it ends ``diverged`` and the sweep goes on.

Fault injection, for tests and demos (documented, off unless set): the environment variable
``NTKMTL_INJECT`` in the driver, a comma-separated list of ``KIND@EPOCH:PATTERN`` where PATTERN
is a shell pattern matched against trial names (``method-hp=value-seedN``), EPOCH a number or
``*`` (every epoch), and KIND is
``raise_once`` (raise after reporting that epoch, once per trial: a retry must then resume from
the checkpoint), ``nan`` (the metrics of that epoch become NaN: the trial must end diverged) or
``sleep`` (sleep 2 s after that epoch, to widen a window in which a test kills the driver).
"""
from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial as RayTrial
from ray.tune.result import AUTO_RESULT_KEYS, RESULT_DUPLICATE, SHOULD_CHECKPOINT
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from ntkmtl.benchmarks import Benchmark, get_benchmark
from ntkmtl.sweep import interrupt, secrets
from ntkmtl.sweep import wandb as wandb_settings
from ntkmtl.sweep.config import SweepConfig
from ntkmtl.sweep.export import FINAL_STATUSES, ParquetExporter, read_results
from ntkmtl.sweep.plan import (
    TrialSpec, build_plan, cluster_gpu_warning, expected_concurrency, hparam_kinds, local_resources,
)
from ntkmtl.sweep.extend import Extension, experiments, judged_samples, write_record
from ntkmtl.sweep.orphans import drop_lost_trials
from ntkmtl.sweep.output_dir import check_output
from ntkmtl.sweep.search import build_searcher, format_search
from ntkmtl.sweep.space import search_trials
from ntkmtl.sweep.seed_asha import CONTINUE, STOP, WAIT, SeedGroupedHalving
from ntkmtl.sweep.storage import StorageLocation, check_storage
from ntkmtl.sweep.summary import format_summary, summarize

INJECT_ENV = "NTKMTL_INJECT"
INJECT_KINDS = ("raise_once", "nan", "sleep")
RAY_RESULT_KEYS = frozenset(AUTO_RESULT_KEYS) | {
    "done", "trial_id", "experiment_tag", SHOULD_CHECKPOINT, RESULT_DUPLICATE, "timesteps_total", "episodes_total",
}
PROGRESS_COLUMNS = {"epoch": "epoch", "val_delta_m": "val Δm %", "test_delta_m": "test Δm %", "epoch_seconds": "s/epoch"}


class SweepError(ValueError):
    """The sweep cannot start or resume (existing results, nothing to resume, storage)."""


# -- fault injection ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """One injected fault: ``kind`` at ``epoch`` in trials whose name matches ``pattern``."""

    kind: str
    epoch: int
    pattern: str


def parse_faults(text: str | None) -> list[Fault]:
    """``KIND@EPOCH:PATTERN,…`` (the ``NTKMTL_INJECT`` variable) → faults, or ValueError."""
    faults = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        head, _, pattern = item.partition(":")
        kind, _, epoch = head.partition("@")
        if kind not in INJECT_KINDS or not (epoch.isdigit() or epoch == "*") or not pattern:
            raise ValueError(
                f"{INJECT_ENV}: {item!r} is not KIND@EPOCH:PATTERN with KIND one of {', '.join(INJECT_KINDS)} "
                "(e.g. raise_once@2:ls-seed0)"
            )
        faults.append(Fault(kind, -1 if epoch == "*" else int(epoch), pattern))
    return faults


def _matching(faults: list[dict], spec: TrialSpec, epoch: int, kinds: tuple[str, ...]) -> list[dict]:
    return [
        f for f in faults
        if f["kind"] in kinds and f["epoch"] in (epoch, -1) and fnmatch.fnmatch(spec.run_name, f["pattern"])
    ]


def _inject_before_report(faults: list[dict], spec: TrialSpec, record: dict[str, Any]) -> None:
    """``nan``: the epoch's validation and test metrics become NaN."""
    for _ in _matching(faults, spec, record["epoch"], ("nan",)):
        for key in record:
            if key.startswith(("val_", "test_")):
                record[key] = float("nan")


def _inject_after_report(faults: list[dict], spec: TrialSpec, epoch: int, trial_dir: str) -> None:
    """``sleep``: pause 2 s; ``raise_once``: raise, once per trial (a marker file remembers it)."""
    for fault in _matching(faults, spec, epoch, ("sleep", "raise_once")):
        if fault["kind"] == "sleep":
            time.sleep(2.0)
            continue
        marker = Path(trial_dir) / f".injected-raise-epoch{epoch}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError(f"{INJECT_ENV}: injected failure after epoch {epoch} of {spec.run_name}")


# -- the trainable -----------------------------------------------------------------------------------
_BENCHMARK_CACHE: dict[str, Benchmark] = {}


def cached_benchmark(name: str, data: dict[str, Any]) -> Benchmark:
    """The benchmark with these data options, built once per worker process (its data stays loaded)."""
    key = json.dumps([name, data], sort_keys=True, default=str)
    if key not in _BENCHMARK_CACHE:
        _BENCHMARK_CACHE[key] = get_benchmark(name, **data)
    return _BENCHMARK_CACHE[key]


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one ``ntkmtl.train.Trial``, one report + checkpoint per epoch."""
    import torch

    from ntkmtl.train import Trial, TrialConfig

    sweep, spec = config["sweep"], TrialSpec.from_dict(config["trial"])
    torch.set_num_threads(sweep["threads"])
    for name in ("ray.train", "ray.tune"):  # one INFO line per checkpoint and restore drowns the progress table
        logging.getLogger(name).setLevel(logging.WARNING)
    trial_config = TrialConfig(
        benchmark=sweep["benchmark"], method=spec.method, hparams=spec.hparams, data=sweep["data"],
        seed=spec.seed, **sweep["train"],
    )
    trial = Trial(trial_config, benchmark=cached_benchmark(sweep["benchmark"], sweep["data"]))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load_checkpoint(directory)
    trial_dir = tune.get_context().get_trial_dir()
    node_id = ray.get_runtime_context().get_node_id()  # a trial resumed elsewhere reports its new node
    if spec.stop_after is not None and trial.epoch >= spec.stop_after:
        return  # restored after its last epoch (an extension's seed that stops with its configuration)
    for record in trial.run():
        record["node_id"] = node_id
        _inject_before_report(sweep["faults"], spec, record)
        if not math.isfinite(record.get(sweep["metric"], float("nan"))):
            record["status"] = "diverged"
        if record["status"] == "diverged":
            tune.report(record)
            return
        with tempfile.TemporaryDirectory(prefix="ntkmtl-ckpt-") as directory:
            trial.save_checkpoint(directory)
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))
        _inject_after_report(sweep["faults"], spec, record["epoch"], trial_dir)
        if spec.stop_after is not None and record["epoch"] >= spec.stop_after:
            return  # ends stopped_early (or completed at the last epoch), as its configuration's seeds


def trial_name(trial: RayTrial) -> str:
    """Progress table and W&B run name: ``method-hp=value-…-seedN``."""
    return TrialSpec.from_dict(trial.config["trial"]).run_name


def trial_dirname(trial: RayTrial) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"


# -- schedulers --------------------------------------------------------------------------------------
class SeedAwareASHA(FIFOScheduler):
    """Ray adapter of ``SeedGroupedHalving``: seeds wait (PAUSE) at a rung, then continue or stop together."""

    _supports_buffered_results = False

    def __init__(self, metric: str, mode: str, grace_period: int, reduction_factor: float, max_t: int,
                 prefill: dict[int, dict[str, float]] | None = None):
        super().__init__()
        self._metric, self._mode = metric, mode
        self._sign = 1.0 if mode == "max" else -1.0
        self.halving = SeedGroupedHalving(grace_period, reduction_factor, max_t)
        for milestone, scores in (prefill or {}).items():  # an extension: the rungs the sweep's trials left
            self.halving.rungs.setdefault(milestone, {}).update(scores)
        self._trials: dict[str, RayTrial] = {}
        self._to_stop: set[str] = set()

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_add(self, tune_controller, trial):
        spec = trial.config["trial"]
        self._trials[trial.trial_id] = trial
        if spec.get("stop_after") is None:  # else decided already: its configuration's seeds were judged
            self.halving.add(trial.trial_id, spec["config_id"], spec["n_seeds"])

    def on_trial_result(self, tune_controller, trial, result):
        if "epoch" not in result or trial.trial_id not in self.halving.config_of:
            return TrialScheduler.CONTINUE
        score = self._sign * float(result.get(self._metric, float("nan")))
        action, released = self.halving.result(trial.trial_id, int(result["epoch"]), score)
        self._release(tune_controller, released)
        return {CONTINUE: TrialScheduler.CONTINUE, WAIT: TrialScheduler.PAUSE, STOP: TrialScheduler.STOP}[action]

    def on_trial_complete(self, tune_controller, trial, result):
        self._release(tune_controller, self.halving.drop(trial.trial_id))

    def on_trial_remove(self, tune_controller, trial):
        self._to_stop.discard(trial.trial_id)
        self._release(tune_controller, self.halving.drop(trial.trial_id))

    def on_trial_error(self, tune_controller, trial):
        if not trial.should_recover():  # a retry comes back through on_trial_add
            self._release(tune_controller, self.halving.drop(trial.trial_id))

    def _release(self, tune_controller, released: list[tuple[str, str]]) -> None:
        for trial_id, action in released:
            if action == STOP:
                self._to_stop.add(trial_id)
        self._stop_paused(tune_controller)

    def _stop_paused(self, tune_controller) -> None:
        for trial_id in list(self._to_stop):
            trial = self._trials.get(trial_id)
            if trial is not None and trial.status == RayTrial.PAUSED:
                self._to_stop.discard(trial_id)
                tune_controller.stop_trial(trial)

    def choose_trial_to_run(self, tune_controller):
        """Promoted seeds first (as in ASHA, a promoted trial goes on at once), then new trials."""
        self._stop_paused(tune_controller)
        for trial in tune_controller.get_trials():
            if (
                trial.status == RayTrial.PAUSED
                and trial.trial_id not in self._to_stop
                and self.halving.is_released(trial.trial_id)
            ):
                return trial
        for trial in tune_controller.get_trials():
            if trial.status == RayTrial.PENDING:
                return trial
        return None

    def debug_string(self) -> str:
        return f"Using seed-aware ASHA: {self.halving.stopped_configs} configurations stopped"


def build_scheduler(cfg: SweepConfig, prefill: dict[int, dict[str, float]] | None = None) -> TrialScheduler:
    s = cfg.scheduler
    if s.type == "asha":
        return ASHAScheduler(
            time_attr="epoch", metric=s.metric, mode=s.mode, max_t=cfg.epochs,
            grace_period=s.grace_period, reduction_factor=s.reduction_factor,
        )
    if s.type == "seed_asha":
        return SeedAwareASHA(s.metric, s.mode, s.grace_period, s.reduction_factor, cfg.epochs, prefill)
    return FIFOScheduler()


# -- driver-side callbacks ---------------------------------------------------------------------------
class ParquetCallback(tune.Callback):
    """Writes every reported epoch of every trial to Parquet as it arrives (see ``export.py``)."""

    def __init__(self, output: str, sweep: str, benchmark: str, kinds: dict[str, type]):
        self.output, self.sweep, self.benchmark, self.kinds = output, sweep, benchmark, kinds
        self._exporter: ParquetExporter | None = None

    @property
    def exporter(self) -> ParquetExporter:
        if self._exporter is None:  # built lazily: the callback is pickled into the experiment state
            self._exporter = ParquetExporter(self.output, self.sweep, self.benchmark, self.kinds)
        return self._exporter

    def __getstate__(self):
        return {**self.__dict__, "_exporter": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if RESULT_DUPLICATE in result or "epoch" not in result:
            return
        record = {k: v for k, v in result.items() if k not in RAY_RESULT_KEYS}
        record["hostname"] = result.get("hostname")  # Ray's own key: the host of the trial's process
        if trial.config["trial"].get("search"):  # the search that sampled the configuration
            record["search"] = trial.config["trial"]["search"]
        self.exporter.add_record(trial.trial_id, trial.config["trial"], record)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.exporter.finish(trial.trial_id, "complete")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.exporter.finish(trial.trial_id, "error")


def wandb_callback(cfg: SweepConfig):
    """Ray's WandbLoggerCallback with our run names, grouping and config (imports wandb)."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    class NtkmtlWandbCallback(WandbLoggerCallback):
        def log_trial_start(self, trial):
            config = wandb_settings.run_config(trial.config["sweep"], trial.config["trial"])
            exclude = self._exclude_results + self.excludes + ["config"]
            kwargs = dict(
                id=trial.trial_id, name=trial_name(trial), resume="allow", reinit=True,
                allow_val_change=True, config=config, **self.kwargs,
            )
            self._start_logging_actor(trial, exclude, **kwargs)

        def _start_logging_actor(self, trial, exclude_results, **kwargs):  # without WANDB_API_KEY in its runtime env
            self._remote_logger_class = self._remote_logger_class or secrets.wandb_logging_actor(self)
            super()._start_logging_actor(trial, exclude_results, **kwargs)

    wandb_settings.prepare_environment(cfg.wandb)
    kwargs = wandb_settings.init_kwargs(cfg.wandb, cfg.name)
    return NtkmtlWandbCallback(excludes=sorted(RAY_RESULT_KEYS - {"done"}), **kwargs)


# -- the sweep ---------------------------------------------------------------------------------------
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
    ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING")


def run_sweep(cfg: SweepConfig, resume: bool = False, address: str | None = None, verbose: int = 1,
              baseline: str | None = None, extension: Extension | None = None) -> SweepOutcome:
    """Run (or resume) the sweep; return when every trial has ended. ``baseline``: the final
    table's comparison configuration (``ntkmtl.compare``; default ls). ``extension``: run only
    what ``ntkmtl.sweep.extend.plan_extension`` planned, as a new Ray experiment."""
    start = time.monotonic()
    specs = extension.run if extension is not None else build_plan(cfg)
    names = extension.experiments if extension is not None else (experiments(cfg) if resume else [cfg.name])
    name = names[-1]  # the Ray experiment this call runs: the sweep's own, or its newest extension
    faults = [asdict(f) for f in parse_faults(os.environ.get(INJECT_ENV))]
    check_output(cfg.output)  # before Ray: read-only, a file, a full disk (output_dir.py)
    location = check_storage(cfg.storage, multi_node=False) if address is None else None
    if location is not None:
        _check_resume(location, name, resume)
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
        _check_resume(location, name, resume)
    cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
    if address is not None:
        node_gpus = [float(node["Resources"].get("GPU", 0)) for node in ray.nodes() if node.get("Alive")]
        warning = cluster_gpu_warning(cfg, address, node_gpus)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    gpu = cfg.resources.gpu_for(cfg.benchmark, cluster_gpus)
    trainable = tune.with_resources(run_trial, {"cpu": cfg.resources.cpu, "gpu": gpu})
    if resume:
        drop_lost_trials(location, [n for n in names if experiment_exists(location, n)], cfg.name, cfg.output)
        tuner = tune.Tuner.restore(
            location.join(name), trainable=trainable, resume_unfinished=True, resume_errored=True,
            storage_filesystem=location.filesystem,
        )
    else:
        tuner = _new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension)
        write_record(cfg, names)
    grid = tuner.fit()
    unfinished = _finalize(cfg, grid, specs)
    has_rows = any(Path(cfg.output).expanduser().glob("*.parquet"))
    df = read_results(cfg.output) if has_rows else None
    wall = time.monotonic() - start
    table = format_summary(summarize(df, baseline), wall) if df is not None else "no results"
    errored = sum(1 for r in grid if r.error is not None)
    search = format_search(judged_samples(cfg), cfg.scheduler.mode) if cfg.search else ""
    return SweepOutcome(
        experiment_path=location.uri(name), output=cfg.output, trials=len(grid),
        rows=0 if df is None else len(df), errored=errored, unfinished=unfinished, wall_seconds=wall, table=table,
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


def _new_tuner(cfg, specs, faults, trainable, location, verbose, name, extension):
    sweep = {
        "benchmark": cfg.benchmark, "data": cfg.data, "train": cfg.train, "metric": cfg.scheduler.metric,
        "faults": faults, "threads": max(1, int(cfg.resources.cpu)),
    }
    callbacks = [ParquetCallback(cfg.output, cfg.name, cfg.benchmark, hparam_kinds(specs, cfg))]
    if cfg.wandb.enabled:
        callbacks.append(wandb_callback(cfg))
    reporter = tune.CLIReporter(
        metric_columns=PROGRESS_COLUMNS, parameter_columns={"trial/seed": "seed"},
        max_report_frequency=15, max_column_length=40,
    )
    param_space: dict[str, Any] = {"sweep": sweep, "trial": tune.grid_search([s.to_dict() for s in specs])}
    search: dict[str, Any] = {"num_samples": 1}
    sampled = search_trials(cfg) if extension is None else extension.sampled_trials
    if cfg.search is not None and sampled:  # grid trials and sampled ones from one searcher (search.py)
        resources = ray.cluster_resources()
        total = len(specs) + sampled
        concurrency = expected_concurrency(cfg, total, resources.get("CPU", 1), resources.get("GPU", 0))
        param_space = {"sweep": sweep}
        searcher = build_searcher(cfg, specs, concurrency, *((extension.new_samples, extension.history) if extension else ()))
        search = {"num_samples": total, "search_alg": searcher}
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(2, len(cfg.seeds))))  # a sample's seeds together
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=build_scheduler(cfg, extension.prefill if extension else None), reuse_actors=True, **search,
            max_concurrent_trials=cfg.max_concurrent or None,
            trial_name_creator=trial_name, trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=name, **location.run_config_kwargs(),
            failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks, progress_reporter=reporter, verbose=verbose,
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
        if status is not None and (result.error is not None or metrics.get("done")):
            exporter.finish(trial_id, "error" if result.error is not None else "complete")
        elif result.error is None:
            unfinished += 1
    return unfinished


__all__ = [
    "Fault", "ParquetCallback", "SeedAwareASHA", "SweepError", "SweepOutcome", "build_scheduler",
    "cached_benchmark", "parse_faults", "run_sweep", "run_trial",
]
