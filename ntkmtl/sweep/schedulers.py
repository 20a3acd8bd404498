"""Early stopping on Ray Tune: ASHA and seed-aware ASHA, both resumable.

``SeedAwareASHA`` is the Ray adapter of ``seed_asha.SeedGroupedHalving``: a configuration's
seeds wait (PAUSE) at a rung, then continue or stop together. With ``group_seeds=False`` every
trial is its own group, which is plain ASHA (Li et al., 2020: the ``1 − 1/η`` quantile rule at
rungs ``grace_period · η^k``), the ``asha`` scheduler of a config.

Trials are keyed by their identity (``config_id/seed``), not Ray's trial id, so a trial Ray
re-creates after an interruption keeps its place. Every change of the bookkeeping is appended to
a journal in the experiment directory (``ntkmtl-scheduler.journal``, one JSON line per event,
appended before the Parquet row of the same result; not ``*.json``: see ``storefiles``); after ``--resume`` the restored scheduler replays it, so it knows the rungs,
the waiting seeds, the decisions and the trials that ended, and decides as an uninterrupted run.
Ray restores every unfinished trial as PENDING from its last snapshot and starts every PENDING
trial it has resources for: a restored seed that had already reported a rung still open is set
PAUSED again until its configuration is decided, and one whose configuration was stopped at a
rung it reached is stopped instead of being run again (reached: its row of that rung is recorded;
a kill between the journal line and the row leaves the trial to run and report the rung again). Before any of that, the checkpoint each
restored trial continues from is settled (``ResumableFIFO``, ``checkpoints.settle_checkpoint``:
Ray's snapshot may name one deleted since). A restored trial left without a checkpoint runs from
its first epoch (Ray's snapshot lost it and its rows were removed, it had not reported yet, or no
intact checkpoint precedes its last recorded epoch): it reports its rungs again and gets its
configuration's decisions then.
"""

from __future__ import annotations

import pyarrow.fs
from ray.tune.experiment import Trial as RayTrial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ntkmtl.sweep import storefiles
from ntkmtl.sweep.checkpoints import settle_checkpoint
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.seed_asha import CONTINUE, STOP, WAIT, SeedGroupedHalving

JOURNAL_FILE = "ntkmtl-scheduler.journal"
LEGACY_JOURNAL_FILE = "ntkmtl-scheduler.json"  # ntkmtl 0.1: read when a sweep has no journal yet
_ACTIONS = {CONTINUE: TrialScheduler.CONTINUE, WAIT: TrialScheduler.PAUSE, STOP: TrialScheduler.STOP}


def trial_key(trial: RayTrial) -> str:
    """A trial's identity: ``config_id/seed`` (stable when Ray re-creates the trial)."""
    spec = trial.config["trial"]
    return f"{spec['config_id']}/{spec['seed']}"


class ResumableFIFO(FIFOScheduler):
    """First in, first out; the checkpoint of each trial ``--resume`` restores is settled as Ray
    adds it (``checkpoints.settle_checkpoint``). The scheduler of a sweep without early stopping
    and the base of ``SeedAwareASHA``."""

    def __init__(self):
        super().__init__()
        self.recorded_epochs: dict[str, int] = {}  # trial_id → its last recorded epoch: set by --resume
        self._settled: list[str] = []

    def on_trial_add(self, tune_controller, trial):
        recorded = getattr(self, "recorded_epochs", {})  # (absent in a scheduler pickled by ntkmtl 0.1)
        moved = settle_checkpoint(trial, recorded.pop(trial.trial_id, None))
        if moved:
            self._settled = [*getattr(self, "_settled", []), moved]

    def choose_trial_to_run(self, tune_controller):
        self.report_settled()
        return super().choose_trial_to_run(tune_controller)

    def report_settled(self) -> None:
        """One line for the restored trials that continue from another checkpoint than Ray's snapshot named."""
        settled = getattr(self, "_settled", [])
        if settled:
            shown = ", ".join(settled[:5]) + (f" and {len(settled) - 5} more" if len(settled) > 5 else "")
            print(
                f"resume: {len(settled)} trial(s) continue from their newest intact checkpoint before their last "
                f"recorded epoch (Ray's snapshot named one since deleted, or none): {shown}",
                flush=True,
            )
            self._settled = []


class SeedAwareASHA(ResumableFIFO):
    """Seed-aware (or, with ``group_seeds=False``, plain) ASHA whose state survives ``--resume``."""

    _supports_buffered_results = False

    def __init__(
        self,
        metric: str,
        mode: str,
        grace_period: int,
        reduction_factor: float,
        max_t: int,
        prefill: dict[int, dict[str, float]] | None = None,
        group_seeds: bool = True,
    ):
        super().__init__()
        self._metric, self._mode = metric, mode
        self._sign = 1.0 if mode == "max" else -1.0
        self.group_seeds = group_seeds
        self.halving = SeedGroupedHalving(grace_period, reduction_factor, max_t)
        for milestone, scores in (prefill or {}).items():  # an extension: the rungs the sweep's trials left
            self.halving.rungs.setdefault(milestone, {}).update(scores)
        self._trials: dict[str, RayTrial] = {}
        self._to_stop: set[str] = set()
        self._restored: set[str] = set()  # trials added PENDING with a checkpoint, not settled yet
        self._restored_epochs: dict[str, int] = {}  # their last recorded epochs (the Parquet rows)
        self._journal: tuple[pyarrow.fs.FileSystem | None, str] | None = (
            None  # (filesystem, path), found on the first trial
        )
        self._saved = 0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    # -- the journal ------------------------------------------------------------------------------
    def _attach(self, trial: RayTrial) -> None:
        """On the first trial: find the experiment directory and replay its journal (a resume)."""
        if self._journal is not None:
            return
        storage = trial.storage
        assert storage is not None, "a Ray trial has its storage context once it is added"
        self._journal = (storage.storage_filesystem, f"{storage.experiment_fs_path}/{JOURNAL_FILE}")
        found = storefiles.read_lines(*self._journal)
        if found is None:  # a new sweep, or one of ntkmtl 0.1 (one JSON document)
            legacy = storefiles.read_json(
                storage.storage_filesystem, f"{storage.experiment_fs_path}/{LEGACY_JOURNAL_FILE}"
            )
            found = (legacy["events"], True) if legacy else ([], True)
        events, rewrite = found
        self.halving.replay(events)
        # appended from here on; written whole first when the file is not exactly what was replayed
        self._saved = 0 if rewrite or self.halving.events != events else len(events)

    def _save(self) -> None:
        """Append the new events to the journal (one JSON line each: a write grows with the
        events it adds, not with the sweep)."""
        events = self.halving.events
        if self._journal is None or len(events) == self._saved:
            return
        filesystem, path = self._journal
        try:
            if self._saved == 0:
                storefiles.write_lines(filesystem, path, events)
            else:
                storefiles.append_lines(filesystem, path, events[self._saved :], whole=events)
        except OSError as error:
            storefiles.request_stop(f"storage: cannot write the scheduler journal {path}: {storefiles.describe(error)}")
            return
        self._saved = len(events)

    # -- Ray's hooks ------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial):
        recorded = getattr(self, "recorded_epochs", {}).get(trial.trial_id)
        super().on_trial_add(tune_controller, trial)  # its checkpoint first: what follows reads it
        self._attach(trial)
        spec, key = trial.config["trial"], trial_key(trial)
        self._trials[key] = trial
        if spec.get("stop_after") is not None:
            return  # decided already: its configuration's seeds were judged (an extension)
        group, n_seeds = (spec["config_id"], spec["n_seeds"]) if self.group_seeds else (key, 1)
        self.halving.add(key, group, n_seeds)
        if trial.status == RayTrial.PENDING and trial.checkpoint is None:
            # it runs from its first epoch (a trial Ray's snapshot lost, whose rows ``orphans.py``
            # removed, or one that never reported): it must report its rungs again, not wait
            self.halving.restart(key)
        elif trial.status == RayTrial.PENDING:
            self._restored.add(key)  # restored from a checkpoint: held or stopped before Ray starts it
            if recorded is not None:
                self._restored_epochs[key] = recorded
        if trial.status in (RayTrial.TERMINATED, RayTrial.ERROR):  # restored after it ended: never waited for
            self._release(tune_controller, self.halving.drop(key))
            self._save()

    def on_trial_result(self, tune_controller, trial, result):
        key = trial_key(trial)
        if "epoch" not in result or key not in self.halving.config_of:
            return TrialScheduler.CONTINUE
        score = self._sign * float(result.get(self._metric, float("nan")))
        action, released = self.halving.result(key, int(result["epoch"]), score)
        self._save()
        self._release(tune_controller, released)
        return _ACTIONS[action]

    def on_trial_complete(self, tune_controller, trial, result):
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._to_stop.discard(trial_key(trial))
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        if not trial.should_recover():  # a retry comes back through on_trial_add
            self._ended(tune_controller, trial)

    def _ended(self, tune_controller, trial) -> None:
        released = self.halving.drop(trial_key(trial))
        self._save()
        self._release(tune_controller, released)

    def _release(self, tune_controller, released: list[tuple[str, str]]) -> None:
        for key, action in released:
            if action == STOP:
                self._to_stop.add(key)
        self._stop_waiting(tune_controller)

    def _stop_waiting(self, tune_controller) -> None:
        for key in list(self._to_stop):
            trial = self._trials.get(key)
            if trial is not None and trial.status in (RayTrial.PAUSED, RayTrial.PENDING):
                self._to_stop.discard(key)
                tune_controller.stop_trial(trial)

    def _restored_state(self, trial: RayTrial) -> str | None:
        """For a PENDING trial that reported before (a resume): "stop", "hold" or None (run it)."""
        # The journal, not Ray's snapshot, says what the trial reported: the snapshot may predate
        # its rung result (its last_result then is older), and a seed run on from a checkpoint past
        # an open rung would wait at the next one while its sibling waits for it at this one.
        # A rung the journal holds but the rows do not (a kill between the journal line and the
        # Parquet row of that result): the trial runs, reports that rung again and gets its decision.
        key = trial_key(trial)
        recorded = getattr(self, "_restored_epochs", {}).pop(key, None)
        stopped, waiting = self.halving.stopped_at(key), self.halving.waiting_at(key)
        rung = stopped if stopped is not None else waiting
        if rung is None or (recorded is not None and recorded < rung):
            return None
        return "stop" if stopped is not None else "hold"

    def choose_trial_to_run(self, tune_controller):
        """Promoted seeds first (as in ASHA, a promoted trial goes on at once), then new trials."""
        self.report_settled()
        self._stop_waiting(tune_controller)
        self._settle_restored(tune_controller)
        for trial in tune_controller.get_trials():
            if (
                trial.status == RayTrial.PAUSED
                and trial_key(trial) not in self._to_stop
                and self.halving.is_released(trial_key(trial))
            ):
                return trial
        # in creation order (Ray requeues restored trials by their last result time): a resumed
        # sweep starts its trials in the order the uninterrupted one does
        pending = [t for t in tune_controller.get_trials() if t.status == RayTrial.PENDING]
        return min(pending, key=lambda t: t.trial_id, default=None)

    def _settle_restored(self, tune_controller) -> None:
        """Restored trials the journal shows waiting are PAUSED again, those stopped are stopped.

        Ray starts every PENDING trial its resources allow (the scheduler only picks which goes
        first), so a held trial must not stay PENDING: it is set PAUSED as Ray's own schedulers
        pause a trial, and a decision releases it like any paused seed. Called before Ray starts
        pending trials (``choose_trial_to_run`` opens each of its scheduling rounds).
        """
        for key in sorted(self._restored):
            trial = self._trials[key]
            self._restored.discard(key)
            if trial.status != RayTrial.PENDING:
                continue
            state = self._restored_state(trial)
            if state == "stop":
                tune_controller.stop_trial(trial)
            elif state == "hold":
                tune_controller._set_trial_status(trial, RayTrial.PAUSED)

    def debug_string(self) -> str:
        if self.group_seeds:
            return f"Using seed-aware ASHA: {self.halving.stopped_configs} configurations stopped"
        return f"Using ASHA: {self.halving.stopped_configs} trials stopped"


def build_scheduler(cfg: SweepConfig, prefill: dict[int, dict[str, float]] | None = None) -> TrialScheduler:
    """The config's early stopping: ``asha``, ``seed_asha`` (both resumable) or none (FIFO)."""
    s = cfg.early_stopping
    if s.type in ("asha", "seed_asha"):
        return SeedAwareASHA(
            s.metric, s.mode, s.grace_period, s.reduction_factor, cfg.epochs, prefill, group_seeds=s.type == "seed_asha"
        )
    return ResumableFIFO()
