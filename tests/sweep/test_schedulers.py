"""The Ray schedulers driven by hand (no cluster), as Ray tests its own: ``on_trial_add`` and
``on_trial_result`` with stand-in trials and controller; then a second scheduler restored from the
first one's journal, as ``--resume`` does, must decide exactly as the uninterrupted one."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from ray.tune.experiment import Trial as RayTrial  # noqa: E402
from ray.tune.schedulers import TrialScheduler  # noqa: E402

from ntkmtl.sweep.schedulers import JOURNAL_FILE, SeedAwareASHA  # noqa: E402


class FakeTrial:
    def __init__(self, trial_id: str, config_id: str, seed: int, experiment: str, n_seeds: int = 2):
        self.trial_id = trial_id
        self.config = {"trial": {"config_id": config_id, "seed": seed, "n_seeds": n_seeds}}
        self.status = RayTrial.PENDING
        self.last_result: dict = {}
        self.storage = SimpleNamespace(storage_filesystem=None, experiment_fs_path=experiment)
        self.run_metadata = SimpleNamespace(checkpoint_manager=None)  # no checkpoint to settle (test_checkpoints.py)

    @property
    def checkpoint(self):  # Ray's latest checkpoint: one per reported epoch, as the trainable saves
        return f"checkpoint_{self.last_result['epoch']}" if self.last_result.get("epoch") else None

    def should_recover(self) -> bool:
        return False


class FakeController:
    """The calls a scheduler makes: get_trials, _set_trial_status, stop_trial (Ray calls on_trial_remove for paused/pending)."""

    def __init__(self, scheduler, trials):
        self.scheduler, self.trials = scheduler, trials

    def get_trials(self):
        return self.trials

    def _set_trial_status(self, trial, status):  # Ray's own schedulers pause a trial this way
        trial.status = status

    def stop_trial(self, trial):
        if trial.status in (RayTrial.PENDING, RayTrial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        trial.status = RayTrial.TERMINATED


def report(scheduler, controller, trial, epoch, val_delta_m):
    trial.status = RayTrial.RUNNING
    action = scheduler.on_trial_result(controller, trial, {"epoch": epoch, "val_delta_m": val_delta_m})
    trial.last_result = {"epoch": epoch}
    trial.status = {TrialScheduler.PAUSE: RayTrial.PAUSED, TrialScheduler.STOP: RayTrial.TERMINATED}.get(
        action, RayTrial.RUNNING
    )
    if action == TrialScheduler.STOP:
        scheduler.on_trial_complete(controller, trial, {})
    return action


def setup(tmp_path, group_seeds=True, statuses=None, recorded=None):
    scheduler = SeedAwareASHA(
        "val_delta_m", "min", grace_period=2, reduction_factor=2, max_t=8, group_seeds=group_seeds
    )
    scheduler.recorded_epochs = dict(recorded or {})  # --resume: each trial's last epoch in the Parquet rows
    trials = [FakeTrial(f"{c}{s}", c, s, str(tmp_path)) for c in "AB" for s in (0, 1)]
    for trial in trials:
        if statuses and trial.trial_id in statuses:
            trial.status, trial.last_result = statuses[trial.trial_id]
    controller = FakeController(scheduler, trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    return scheduler, controller, {t.trial_id: t for t in trials}


def test_seeds_pause_at_the_rung_then_continue_or_stop_together(tmp_path):
    s, c, t = setup(tmp_path)
    assert report(s, c, t["A0"], 1, 5.0) == TrialScheduler.CONTINUE
    assert report(s, c, t["A0"], 2, 4.0) == TrialScheduler.PAUSE
    assert s.choose_trial_to_run(c) is t["A1"]  # the paused seed is not released before its sibling reports
    assert report(s, c, t["A1"], 2, 6.0) == TrialScheduler.CONTINUE
    assert s.choose_trial_to_run(c) is t["A0"]  # released: it goes first
    assert report(s, c, t["B0"], 2, 3.0) == TrialScheduler.PAUSE  # alone better than A's mean 5 ...
    assert report(s, c, t["B1"], 2, 9.0) == TrialScheduler.STOP  # ... but B's mean 6 is worse: both stop
    assert t["B0"].status == RayTrial.TERMINATED and s.debug_string().endswith("1 configurations stopped")
    assert (tmp_path / JOURNAL_FILE).is_file()


def test_plain_asha_judges_each_trial_alone(tmp_path):
    s, c, t = setup(tmp_path, group_seeds=False)
    assert report(s, c, t["A0"], 2, 4.0) == TrialScheduler.CONTINUE  # no pause: its own group
    assert report(s, c, t["A1"], 2, 6.0) == TrialScheduler.STOP  # below the median of {4}
    assert report(s, c, t["B0"], 2, 3.0) == TrialScheduler.CONTINUE
    assert s.debug_string() == "Using ASHA: 1 trials stopped"


def sequence():
    """(trial, epoch, val Δm) of a sweep of two configurations x two seeds, in arrival order."""
    return [
        ("A0", 1, 5.0),
        ("A1", 1, 6.0),
        ("A0", 2, 4.0),
        ("A1", 2, 6.0),
        ("A0", 3, 3.0),
        ("A1", 3, 5.0),
        ("A0", 4, 2.0),
        ("A1", 4, 4.0),
        ("B0", 1, 7.0),
        ("B0", 2, 3.0),
        ("B1", 2, 9.0),
        ("B1", 4, 9.0),
    ]


@pytest.mark.parametrize("group_seeds", [True, False])
@pytest.mark.parametrize("cut", [3, 5, 9, 10])
def test_a_scheduler_restored_from_its_journal_decides_as_the_uninterrupted_one(tmp_path, group_seeds, cut):
    whole, c, t = setup(tmp_path / "whole", group_seeds)
    expected = [
        report(whole, c, t[name], e, v) if t[name].status != RayTrial.TERMINATED else "ended"
        for name, e, v in sequence()
    ]
    first, c1, t1 = setup(tmp_path / "cut", group_seeds)
    got = [
        report(first, c1, t1[name], e, v) if t1[name].status != RayTrial.TERMINATED else "ended"
        for name, e, v in sequence()[:cut]
    ]
    # the driver dies; Ray restores unfinished trials as PENDING with their last result, ended ones as they were
    restored = {
        k: (RayTrial.PENDING if tr.status != RayTrial.TERMINATED else RayTrial.TERMINATED, dict(tr.last_result))
        for k, tr in t1.items()
    }
    second, c2, t2 = setup(tmp_path / "cut", group_seeds, statuses=restored)
    second.choose_trial_to_run(c2)  # held seeds wait, seeds of a stopped configuration are stopped
    for name, e, v in sequence()[cut:]:
        trial = t2[name]
        if trial.status == RayTrial.TERMINATED:
            got.append("ended")
        elif e <= int(trial.last_result.get("epoch", 0)):
            got.append(expected[len(got)])  # reported before the kill: not run again
        else:
            got.append(report(second, c2, trial, e, v))
    assert got == expected
    assert {k: tr.status == RayTrial.TERMINATED for k, tr in t2.items() if k.startswith("B")} == {
        k: tr.status == RayTrial.TERMINATED for k, tr in t.items() if k.startswith("B")
    }


def test_a_restored_seed_whose_sibling_ended_before_the_kill_is_not_left_waiting(tmp_path):
    """The hang of issue 12: a seed waits at a rung for a sibling that had ended (errored) before the
    kill; the restored scheduler must know the sibling ended and release the seed."""
    first, c1, t1 = setup(tmp_path)
    report(first, c1, t1["A0"], 2, 4.0)  # waits for A1
    t1["A1"].status = RayTrial.ERROR
    first.on_trial_error(c1, t1["A1"])  # A1 ends for good: A0 released
    assert first.halving.is_released("A/0")
    restored = {"A0": (RayTrial.PENDING, {"epoch": 2}), "A1": (RayTrial.ERROR, {"epoch": 1})}
    second, c2, t2 = setup(tmp_path, statuses=restored)
    assert second.choose_trial_to_run(c2) is t2["A0"]
    # and without a journal (a sweep from before it), the ended sibling is still dropped when added
    third, c3, t3 = setup(tmp_path / "nojournal", statuses=restored)
    assert report(third, c3, t3["A0"], 3, 3.0) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("sibling_score, then", [(4.0, RayTrial.PAUSED), (99.0, RayTrial.TERMINATED)])
def test_a_restored_seed_waiting_at_an_open_rung_is_paused_not_left_pending(tmp_path, sibling_score, then):
    """The resume of issue 12 that ran a seed one epoch too far: Ray starts every PENDING trial it has
    resources for, whatever ``choose_trial_to_run`` returns, so a held seed left PENDING ran on past
    its rung. It must be PAUSED (as Ray's schedulers pause), then released or stopped with its
    configuration's decision."""
    first, c1, t1 = setup(tmp_path)
    for name, epoch, value in [("A0", 2, 4.0), ("A1", 2, 6.0), ("B0", 2, 5.0)]:  # A continues; B0 waits for B1
        report(first, c1, t1[name], epoch, value)
    restored = {"A0": (RayTrial.PENDING, {"epoch": 2}), "A1": (RayTrial.PENDING, {"epoch": 2})}
    restored |= {"B0": (RayTrial.PENDING, {"epoch": 1}), "B1": (RayTrial.PENDING, {})}  # snapshot older than B0's rung
    second, c2, t2 = setup(tmp_path, statuses=restored)
    assert second.choose_trial_to_run(c2) is t2["A0"]
    assert t2["B0"].status == RayTrial.PAUSED  # held: Ray will not start it
    assert {k: t2[k].status for k in ("A0", "A1", "B1")} == dict.fromkeys(("A0", "A1", "B1"), RayTrial.PENDING)
    action = report(
        second, c2, t2["B1"], 2, sibling_score
    )  # B mean 4.5 beats A 5 (lower is better): continue; 52 stops
    assert action == (TrialScheduler.CONTINUE if then == RayTrial.PAUSED else TrialScheduler.STOP)
    assert t2["B0"].status == then
    if then == RayTrial.PAUSED:
        assert second.halving.is_released("B/0") and second.choose_trial_to_run(c2) is t2["B0"]


def test_a_restored_seed_without_a_checkpoint_runs_again_and_gets_its_configurations_decision(tmp_path):
    """A seed that had reported its rung after Ray's last snapshot comes back as a new trial with no
    checkpoint, and its rows were removed (orphans.py): it must run again, not wait or be stopped
    with nothing written (the resume of issue 12 that lost a stopped seed's row)."""
    first, c1, t1 = setup(tmp_path)
    report(first, c1, t1["A0"], 2, 4.0)
    report(first, c1, t1["A1"], 2, 6.0)  # A: continue at rung 2
    report(first, c1, t1["B0"], 2, 7.0)  # B0 waits; the snapshot did not have it
    restored = {"A0": (RayTrial.PENDING, {"epoch": 2}), "A1": (RayTrial.PENDING, {"epoch": 2})}
    second, c2, t2 = setup(tmp_path, statuses=restored)
    second.choose_trial_to_run(c2)
    assert t2["B0"].status == RayTrial.PENDING  # not held: Ray runs it from epoch 1
    assert report(second, c2, t2["B1"], 2, 9.0) == TrialScheduler.STOP  # B's mean 8 is worse than A's 5
    assert t2["B0"].status == RayTrial.PENDING  # not stopped before it has written its rows again
    assert report(second, c2, t2["B0"], 1, 7.5) == TrialScheduler.CONTINUE
    assert report(second, c2, t2["B0"], 2, 7.0) == TrialScheduler.STOP  # the decision, at its rung


def test_a_rung_in_the_journal_but_not_in_the_rows_is_reported_again_not_stopped_or_held_without_its_row(tmp_path):
    """A kill between the journal line of a rung result and its Parquet row: the restored trial must
    run that epoch again (its row is written) and then get its configuration's decision."""
    first, c1, t1 = setup(tmp_path)
    for name, value in [("A0", 4.0), ("A1", 6.0), ("B0", 9.0), ("B1", 9.0)]:  # B stopped at rung 2
        report(first, c1, t1[name], 2, value)
    report(first, c1, t1["A0"], 4, 3.0)  # A0 waits at rung 4 for A1
    restored = {k: (RayTrial.PENDING, {"epoch": 1}) for k in ("B0", "A1")}
    restored |= {"B1": (RayTrial.PENDING, {"epoch": 2}), "A0": (RayTrial.PENDING, {"epoch": 3})}
    recorded = {"B0": 1, "B1": 2, "A0": 3, "A1": 2}  # B0's row 2 and A0's row 4 were never written
    second, c2, t2 = setup(tmp_path, statuses=restored, recorded=recorded)
    second.choose_trial_to_run(c2)
    assert t2["B1"].status == RayTrial.TERMINATED  # its rung's row is there: stopped as before
    assert t2["B0"].status == RayTrial.PENDING and t2["A0"].status == RayTrial.PENDING  # they run
    assert report(second, c2, t2["B0"], 2, 9.0) == TrialScheduler.STOP  # the decision, after its row
    assert report(second, c2, t2["A0"], 4, 3.0) == TrialScheduler.PAUSE  # waits again for A1


def journal_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_journal_is_appended_one_line_per_event_and_a_line_cut_by_a_crash_is_dropped(tmp_path):
    s, c, t = setup(tmp_path)
    report(s, c, t["A0"], 2, 4.0)
    journal = tmp_path / JOURNAL_FILE
    first = journal.read_bytes()
    report(s, c, t["A1"], 2, 6.0)
    assert journal.read_bytes().startswith(first)  # appended, not rewritten
    assert (
        journal_lines(journal)
        == s.halving.events
        == [
            ["result", "A/0", "A", 2, 2, -4.0],
            ["result", "A/1", "A", 2, 2, -6.0],
        ]
    )
    with open(journal, "a") as f:
        f.write('["result", "B/0", "B", 2, 2, -')  # the driver died in the middle of a line
    second, c2, _ = setup(tmp_path, statuses={"A0": (RayTrial.PENDING, {"epoch": 2})})
    assert second.halving.rungs[2] == {"A": -5.0} and second.halving.events == s.halving.events
    report(second, c2, c2.trials[2], 2, 3.0)  # B0: the journal is written whole once, then appended
    assert journal_lines(journal) == second.halving.events and len(second.halving.events) == 3
