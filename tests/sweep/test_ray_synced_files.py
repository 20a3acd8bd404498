"""The files ntkmtl rewrites in a Ray experiment directory are not among those Ray's restore copies.

At a restore Ray copies files of the experiment directory to its driver staging directory and
uploads that directory back at each snapshot: a file it copied would be replaced by the copy,
taken at the restore. The seed-aware scheduler's journal was (``ntkmtl-scheduler.json``): a
sweep killed and resumed twice replayed a journal without the decisions made after the first
resume, judged a configuration again with an empty rung, and hung with its seeds PAUSED.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pyarrow.lib
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.experiment import Trial as RayTrial
from ray.tune.schedulers import TrialScheduler
from test_schedulers import report, setup

from ntkmtl.sweep import storefiles
from ntkmtl.sweep.identity import IDENTITY_FILE, LOCK_FILE
from ntkmtl.sweep.schedulers import JOURNAL_FILE, LEGACY_JOURNAL_FILE

RAY_FILES = ("experiment_state-2026-12-02_20-00-00.json", "basic-variant-state-2026-12-02_20-00-00.json")
OURS = (JOURNAL_FILE, IDENTITY_FILE, LOCK_FILE)


def copied_by_ray_restore(experiment: Path, staging: Path) -> set[str]:
    """Run Ray's own restore copy (sync_down_experiment_state) and return what it copied."""
    storage = SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(),
        experiment_fs_path=str(experiment),
        experiment_driver_staging_path=str(staging),
    )
    _ExperimentCheckpointManager.sync_down_experiment_state(SimpleNamespace(_storage=storage))  # type: ignore[arg-type]
    return {p.name for p in staging.iterdir()} if staging.exists() else set()


def test_ray_restore_copies_its_own_state_and_none_of_the_files_ntkmtl_rewrites(tmp_path):
    experiment, staging = tmp_path / "experiment", tmp_path / "staging"
    experiment.mkdir()
    for name in (*RAY_FILES, *OURS, LEGACY_JOURNAL_FILE):
        (experiment / name).write_text("{}")
    copied = copied_by_ray_restore(experiment, staging)
    assert copied == {*RAY_FILES, LEGACY_JOURNAL_FILE}  # the old journal name was copied: the bug
    assert {name for name in (*RAY_FILES, *OURS, LEGACY_JOURNAL_FILE) if storefiles.ray_synced(name)} == copied


def test_a_sweep_from_before_the_rename_is_resumed_from_its_old_journal(tmp_path):
    first, c1, t1 = setup(tmp_path)
    report(first, c1, t1["A0"], 2, 4.0)
    report(first, c1, t1["A1"], 2, 6.0)  # A decided at rung 2: continue, mean 5 recorded
    events = [json.loads(line) for line in (tmp_path / JOURNAL_FILE).read_text().splitlines()]
    (tmp_path / JOURNAL_FILE).unlink()
    (tmp_path / LEGACY_JOURNAL_FILE).write_text(json.dumps({"version": 1, "events": events}))  # as ntkmtl 0.1 wrote it
    restored = {"A0": (RayTrial.PENDING, {"epoch": 2}), "A1": (RayTrial.PENDING, {"epoch": 2})}
    second, c2, t2 = setup(tmp_path, statuses=restored)
    assert second.halving.rungs[2] == {"A": -5.0}  # scores are "higher is better"
    report(second, c2, t2["B0"], 2, 7.0)
    assert report(second, c2, t2["B1"], 2, 9.0) == TrialScheduler.STOP  # judged against A's rung entry
    assert [json.loads(line) for line in (tmp_path / JOURNAL_FILE).read_text().splitlines()] == second.halving.events


class NoAppendFileSystem:
    """A store without append (as pyarrow's S3 and GCS filesystems): everything else is local."""

    def __init__(self):
        self._local = pyarrow.fs.LocalFileSystem()

    def open_append_stream(self, path):
        raise pyarrow.lib.ArrowNotImplementedError("append is not supported on this filesystem")

    def __getattr__(self, name):
        return getattr(self._local, name)


def test_a_journal_on_a_store_without_append_is_written_whole(tmp_path):
    path = str(tmp_path / "j")
    storefiles.write_lines(None, path, [[1], [2]])
    storefiles.append_lines(None, path, [[3]], whole=[[1], [2], [3]])
    assert storefiles.read_lines(None, path) == ([[1], [2], [3]], False)
    storefiles.append_lines(NoAppendFileSystem(), path, [[4]], whole=[[1], [2], [3], [4]])  # type: ignore[arg-type]
    assert storefiles.read_lines(None, path) == ([[1], [2], [3], [4]], False)
