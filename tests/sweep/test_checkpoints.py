"""Which checkpoint a restored trial continues from when Ray's snapshot is older than its checkpoints
(checkpoints.py), driven by hand on Ray's own Trial objects as Ray's scheduler tests do: no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray")

from ray.train import Checkpoint  # noqa: E402
from ray.train._internal.session import _TrainingResult  # noqa: E402
from ray.train._internal.storage import StorageContext  # noqa: E402
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402

from ntkmtl.sweep.checkpoints import (  # noqa: E402
    INFO_FILE,
    describe_checkpoint,
    intact_checkpoints,
    settle_checkpoint,
    snapshots_on_schedule,
)
from ntkmtl.sweep.schedulers import ResumableFIFO, SeedAwareASHA  # noqa: E402
from ntkmtl.training.trial import CHECKPOINT_FILE  # noqa: E402


def make_trial(tmp_path: Path, seed: int = 0) -> Trial:
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name=f"trial_{seed}")
    spec = {"config_id": "cfg", "seed": seed, "n_seeds": 2}
    return Trial("__fake", config={"trial": spec}, stub=True, storage=storage)


def write_checkpoint(trial: Trial, index: int, epoch: int, damage: str | None = None) -> str:
    directory = Path(trial.storage.trial_fs_path) / f"checkpoint_{index:06d}"
    directory.mkdir(parents=True)
    (directory / CHECKPOINT_FILE).write_bytes(b"state of epoch %d" % epoch)
    describe_checkpoint(directory, epoch)
    if damage == "cut":  # an upload cut short: the state file is smaller than its info says
        (directory / CHECKPOINT_FILE).write_bytes(b"state")
    elif damage == "no info":
        (directory / INFO_FILE).unlink()
    elif damage == "garbled info":
        (directory / INFO_FILE).write_bytes(b"\xff{")
    return str(directory)


def register(trial: Trial, path: str, epoch: int) -> None:
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=Checkpoint(path), metrics={"training_iteration": epoch, "epoch": epoch})
    )
    trial.storage.current_checkpoint_index += 1


def deleted(path: str) -> None:
    for f in Path(path).iterdir():
        f.unlink()
    Path(path).rmdir()


def test_intact_checkpoints_are_those_whose_info_matches_their_state_file(tmp_path):
    trial = make_trial(tmp_path)
    a = write_checkpoint(trial, 0, 1)
    b = write_checkpoint(trial, 1, 2)
    write_checkpoint(trial, 2, 3, damage="cut")
    write_checkpoint(trial, 3, 3, damage="no info")
    write_checkpoint(trial, 4, 3, damage="garbled info")
    (Path(trial.storage.trial_fs_path) / "checkpoint_000005").write_text("a file, not a checkpoint directory")
    assert intact_checkpoints(None, trial.storage.trial_fs_path) == [(1, 0, a), (2, 1, b)]
    assert intact_checkpoints(None, str(tmp_path / "nowhere")) == []


def test_a_checkpoint_that_still_exists_is_kept_as_ray_would(tmp_path):
    trial = make_trial(tmp_path)
    register(trial, write_checkpoint(trial, 0, 1), 1)
    write_checkpoint(trial, 1, 2)
    before = trial.checkpoint.path
    assert settle_checkpoint(trial, last_recorded=3) is None
    assert trial.checkpoint.path == before


def test_a_kept_checkpoint_drops_deleted_entries_and_moves_the_index_past_every_directory(tmp_path):
    trial = make_trial(tmp_path)
    first = write_checkpoint(trial, 0, 1)
    register(trial, first, 1)
    second = write_checkpoint(trial, 1, 2)
    register(trial, second, 2)  # Ray's snapshot names epoch 2 and still lists epoch 1
    deleted(first)
    write_checkpoint(trial, 2, 3)  # persisted after the snapshot
    assert settle_checkpoint(trial, last_recorded=3) is None
    manager = trial.run_metadata.checkpoint_manager
    assert trial.checkpoint.path == second
    assert [r.checkpoint.path for r in manager._checkpoint_results] == [second]  # not deleted again
    assert trial.storage.current_checkpoint_index == 2  # Ray writes its next one to checkpoint_000003


def test_a_named_checkpoint_left_in_part_by_a_deletion_gives_way(tmp_path):
    trial = make_trial(tmp_path)
    first = write_checkpoint(trial, 0, 1)
    second = write_checkpoint(trial, 1, 2)
    register(trial, second, 2)
    (Path(second) / CHECKPOINT_FILE).unlink()  # a deletion cut short: the directory is still there
    assert settle_checkpoint(trial, last_recorded=3) == f"{trial} from epoch 1"
    assert trial.checkpoint.path == first


def test_a_named_checkpoint_of_a_sweep_begun_before_checkpoint_info_is_kept(tmp_path):
    trial = make_trial(tmp_path)
    legacy = write_checkpoint(trial, 0, 1, damage="no info")
    register(trial, legacy, 1)
    assert settle_checkpoint(trial, last_recorded=2) is None
    assert trial.checkpoint.path == legacy


def test_a_deleted_checkpoint_gives_way_to_the_newest_intact_one_before_the_last_recorded_epoch(tmp_path):
    trial = make_trial(tmp_path)
    first = write_checkpoint(trial, 0, 1)
    register(trial, first, 1)  # what Ray's snapshot names
    deleted(first)  # num_to_keep=2 deleted it after the snapshot
    write_checkpoint(trial, 1, 2)
    third = write_checkpoint(trial, 2, 3)
    write_checkpoint(trial, 3, 4)  # persisted by the worker; the driver never recorded epoch 4
    write_checkpoint(trial, 4, 4, damage="cut")
    assert settle_checkpoint(trial, last_recorded=4) == f"{trial} from epoch 3"
    assert trial.checkpoint.path == third
    assert trial.latest_checkpoint_result.metrics == {"training_iteration": 3, "epoch": 3}
    assert trial.storage.current_checkpoint_index == 4  # Ray writes its next one to checkpoint_000005
    assert trial.run_metadata.checkpoint_manager._checkpoint_results == [trial.latest_checkpoint_result]


def test_no_intact_checkpoint_before_the_last_recorded_epoch_runs_the_trial_from_its_first(tmp_path):
    trial = make_trial(tmp_path)
    first = write_checkpoint(trial, 0, 1)
    register(trial, first, 1)
    deleted(first)
    write_checkpoint(trial, 1, 2, damage="cut")
    assert settle_checkpoint(trial, last_recorded=2) == f"{trial} from its first epoch"
    assert trial.checkpoint is None and trial.run_metadata.checkpoint_manager._checkpoint_results == []


def test_a_trial_the_snapshot_shows_without_checkpoint_continues_from_its_recorded_epochs(tmp_path):
    trial = make_trial(tmp_path)  # started after Ray's last snapshot
    write_checkpoint(trial, 0, 1)
    second = write_checkpoint(trial, 1, 2)
    assert settle_checkpoint(trial, last_recorded=3) == f"{trial} from epoch 2"
    assert trial.checkpoint.path == second
    fresh = make_trial(tmp_path / "fresh")
    assert settle_checkpoint(fresh, last_recorded=None) is None and fresh.checkpoint is None


def test_only_pending_trials_are_settled(tmp_path):
    trial = make_trial(tmp_path)
    write_checkpoint(trial, 0, 1)
    trial.set_status(Trial.TERMINATED)
    assert settle_checkpoint(trial, last_recorded=3) is None and trial.checkpoint is None


def test_the_scheduler_settles_restored_trials_before_seed_aware_asha_reads_their_checkpoint(tmp_path, capsys):
    scheduler = SeedAwareASHA("val_delta_m", "min", 1, 2, 4)
    kept, restarted = make_trial(tmp_path, seed=0), make_trial(tmp_path, seed=1)
    for trial in (kept, restarted):
        gone = write_checkpoint(trial, 0, 1)
        register(trial, gone, 1)
        deleted(gone)
    write_checkpoint(kept, 1, 2)
    scheduler.recorded_epochs = {kept.trial_id: 3, restarted.trial_id: 2}
    for trial in (kept, restarted):
        scheduler.on_trial_add(None, trial)
    assert kept.checkpoint is not None and scheduler._restored == {"cfg/0"}  # held or stopped from its checkpoint
    assert restarted.checkpoint is None  # runs from epoch 1 and reports its rungs again
    assert scheduler.recorded_epochs == {}

    class Controller:
        def get_trials(self):
            return [kept, restarted]

    scheduler.choose_trial_to_run(Controller())
    scheduler.choose_trial_to_run(Controller())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resume:")]
    assert lines == [
        "resume: 2 trial(s) continue from their newest intact checkpoint before their last recorded epoch "
        f"(Ray's snapshot named one since deleted, or none): {kept} from epoch 2, {restarted} from its first epoch"
    ]


def test_a_scheduler_pickled_before_recorded_epochs_existed_still_adds_trials(tmp_path):
    scheduler = ResumableFIFO()
    del scheduler.recorded_epochs, scheduler._settled  # as unpickled from ntkmtl 0.1
    trial = make_trial(tmp_path)
    scheduler.on_trial_add(None, trial)
    assert trial.checkpoint is None


def test_snapshots_on_schedule_stops_ray_forcing_one_per_kept_checkpoints_while_it_lasts():
    def forced_after_one_checkpoint() -> bool:
        manager = _ExperimentCheckpointManager(storage=None, checkpoint_period=10, sync_every_n_trial_checkpoints=1)
        manager.on_trial_checkpoint("trial")
        return manager._should_force_sync_up

    assert forced_after_one_checkpoint()  # Ray's own: num_to_keep=1 forces a snapshot after each checkpoint
    with snapshots_on_schedule():
        assert not forced_after_one_checkpoint()
    assert forced_after_one_checkpoint()  # as before once the sweep has run
