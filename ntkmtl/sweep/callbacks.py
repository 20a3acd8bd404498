"""Driver-side Tune callbacks: the Parquet rows as results arrive, and W&B runs.

``ParquetCallback`` hands every reported epoch to ``export.ParquetExporter``. A failed write (a
full disk, a read-only or vanished output directory) does not crash the driver with a traceback:
the sweep is stopped resumably (``storefiles.request_stop``) and the driver prints one line; the
rows the exporter could not write are still in its row log or in Ray's result log and are put
back by ``--resume`` (``recovery.py``).
"""

from __future__ import annotations

from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS, RESULT_DUPLICATE, SHOULD_CHECKPOINT

from ntkmtl.sweep import secrets, storefiles
from ntkmtl.sweep import wandb as wandb_settings
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import ParquetExporter
from ntkmtl.sweep.faults import inject_write_error
from ntkmtl.sweep.plan import TrialSpec
from ntkmtl.sweep.trainable import trial_name

RAY_RESULT_KEYS = frozenset(AUTO_RESULT_KEYS) | {
    "done",
    "trial_id",
    "experiment_tag",
    SHOULD_CHECKPOINT,
    RESULT_DUPLICATE,
    "timesteps_total",
    "episodes_total",
}


def record_of(result: dict, spec: dict) -> dict:
    """The trainer's epoch record in a Ray result (Ray's own keys dropped, its hostname kept) of
    the trial ``spec``; also how ``recovery.py`` reads Ray's result logs."""
    record = {k: v for k, v in result.items() if k not in RAY_RESULT_KEYS}
    record["hostname"] = result.get("hostname")  # Ray's own key: the host of the trial's process
    if spec.get("search"):  # the search that sampled the configuration
        record["search"] = spec["search"]
    return record


class ParquetCallback(tune.Callback):
    """Writes every reported epoch of every trial to Parquet as it arrives (see ``export.py``)."""

    def __init__(
        self, output: str, sweep: str, benchmark: str, kinds: dict[str, type], faults: list[dict] | None = None
    ):
        self.output, self.sweep, self.benchmark, self.kinds = output, sweep, benchmark, kinds
        self.faults = faults or []
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
        record = record_of(result, trial.config["trial"])
        self._guarded(trial, lambda: self._add(trial, record))

    def _add(self, trial, record: dict) -> None:
        inject_write_error(self.faults, TrialSpec.from_dict(trial.config["trial"]).run_name, int(record["epoch"]))
        self.exporter.add_record(trial.trial_id, trial.config["trial"], record)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._guarded(trial, lambda: self.exporter.finish(trial.trial_id, "complete"))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._guarded(trial, lambda: self.exporter.finish(trial.trial_id, "error"))

    def _guarded(self, trial, write) -> None:
        if storefiles.stop_reasons:
            return  # stopping already: later rows come back on --resume (the row and result logs keep them)
        try:
            write()
        except OSError as error:
            self._exporter = None  # reload from disk on resume, not from a half-updated memory
            storefiles.request_stop(
                f"output {self.output}: cannot write the rows of trial {trial_name(trial)} "
                f"({trial.trial_id}): {storefiles.describe(error)}"
            )


def wandb_callback(cfg: SweepConfig):
    """Ray's WandbLoggerCallback with our run names, grouping and config (imports wandb)."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    class NtkmtlWandbCallback(WandbLoggerCallback):
        def log_trial_start(self, trial):
            config = wandb_settings.run_config(trial.config["sweep"], trial.config["trial"])
            exclude = self._exclude_results + self.excludes + ["config"]
            kwargs = dict(
                id=trial.trial_id,
                name=trial_name(trial),
                resume="allow",
                reinit=True,
                allow_val_change=True,
                config=config,
                **self.kwargs,
            )
            self._start_logging_actor(trial, exclude, **kwargs)

        def _start_logging_actor(self, trial, exclude_results, **kwargs):  # without WANDB_API_KEY in its runtime env
            self._remote_logger_class = self._remote_logger_class or secrets.wandb_logging_actor(self)
            super()._start_logging_actor(trial, exclude_results, **kwargs)

    wandb_settings.prepare_environment(cfg.wandb)
    kwargs = wandb_settings.init_kwargs(cfg.wandb, cfg.name)
    return NtkmtlWandbCallback(excludes=sorted(RAY_RESULT_KEYS - {"done"}), **kwargs)
