"""Trial checkpoints: what each holds, which are intact, and which one a resumed trial continues from.

Ray Tune keeps a trial's newest ``num_to_keep`` (2) checkpoints and deletes the older ones. So
that its experiment snapshot never names a deleted checkpoint, Ray forces a snapshot of the
whole experiment (every trial's state, ~52 KB per QM9 trial) whenever a trial has made
``num_to_keep`` checkpoints since the last one: O(N) work every few results, O(N²) for a sweep
(docs/PERFORMANCE.md: Ray Tune's driver spent 20 ms per result at N = 100 trials and 98 ms at
N = 1,000). ntkmtl's driver lets Ray snapshot on its own schedule only (``snapshots_on_schedule``:
every ≥ 10 s, at most ~5 % of the driver's time) and, on ``--resume``, settles the checkpoint of
each restored trial itself (``settle_checkpoint``, called by the scheduler as Ray adds the trial):

* its checkpoint is intact: it continues from it, as Ray would;
* its checkpoint was deleted after the snapshot (wholly or in part), or the snapshot has none although the trial
  recorded epochs: it continues from the newest intact checkpoint in its storage directory whose
  epoch is before the last epoch the sweep recorded for it (``last_recorded``), so it reports
  that epoch again and the row, the scheduler's decision and Ray's last result are those of an
  uninterrupted run; a checkpoint past the recorded rows (persisted by a worker, its result never
  processed) is not taken, or its epoch's row would be missing;
* it has no such checkpoint: it runs from its first epoch (the exporter replaces its rows).

A checkpoint is intact when its ``ntkmtl-checkpoint.json`` (written by the trainable after the
trial state) names its epoch and the exact size of the state file beside it (an upload cut
short leaves a smaller or missing file).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment import Trial as RayTrial

from ntkmtl.sweep import storefiles
from ntkmtl.training.trial import CHECKPOINT_FILE

INFO_FILE = "ntkmtl-checkpoint.json"
_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


def describe_checkpoint(directory: str | Path, epoch: int) -> None:
    """Write the checkpoint's info file (its epoch, its state file's size) after the state file."""
    state = Path(directory) / CHECKPOINT_FILE
    info = {"epoch": int(epoch), "bytes": state.stat().st_size}
    (Path(directory) / INFO_FILE).write_text(json.dumps(info), encoding="utf-8")


def checkpoint_dirs(filesystem: pyarrow.fs.FileSystem | None, trial_path: str) -> list[tuple[int, str]]:
    """(index, path) of every ``checkpoint_NNNNNN`` directory in a trial's storage directory."""
    try:
        infos = storefiles.filesystem_of(filesystem).get_file_info(
            pyarrow.fs.FileSelector(trial_path, allow_not_found=True)
        )
    except OSError:
        return []
    found = []
    for entry in infos:
        match = _CHECKPOINT_DIR.match(entry.base_name)
        if entry.type == pyarrow.fs.FileType.Directory and match:
            found.append((int(match.group(1)), entry.path))
    return sorted(found)


def intact_checkpoints(filesystem: pyarrow.fs.FileSystem | None, trial_path: str) -> list[tuple[int, int, str]]:
    """(epoch, index, path) of every intact checkpoint in a trial's storage directory, by epoch then index."""
    return _intact(filesystem, checkpoint_dirs(filesystem, trial_path))


def _intact(filesystem: pyarrow.fs.FileSystem | None, dirs: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    return sorted(
        (epoch, index, path) for index, path in dirs if (epoch := _epoch_if_intact(filesystem, path)) is not None
    )


def _epoch_if_intact(filesystem: pyarrow.fs.FileSystem | None, path: str, legacy: bool = False) -> int | None:
    """The checkpoint's epoch when it is intact, else None. With ``legacy``, a checkpoint without
    info file (ntkmtl before 9d60601) whose state file exists counts as intact, with epoch 0."""
    fs = storefiles.filesystem_of(filesystem)
    try:
        state = fs.get_file_info(f"{path}/{CHECKPOINT_FILE}")
        if state.type != pyarrow.fs.FileType.File:
            return None
        info = storefiles.read_json(fs, f"{path}/{INFO_FILE}")
    except (OSError, ValueError):  # cut short or unreadable: not intact
        return None
    if info is None:
        return 0 if legacy else None
    if not isinstance(info, dict) or not isinstance(info.get("epoch"), int) or state.size != info.get("bytes"):
        return None
    return info["epoch"]


def settle_checkpoint(trial: RayTrial, last_recorded: int | None) -> str | None:
    """Point a restored (PENDING) trial at the checkpoint it continues from (module docstring);
    return a short description when that is not the one Ray's snapshot named, else None.

    Whichever it continues from, Ray's list of the trial's checkpoints keeps only intact ones (a
    deleted one would be deleted again, a partial one taken as a fallback) and Ray's next
    checkpoint index is past every existing directory (none is written into)."""
    storage, manager = trial.storage, trial.run_metadata.checkpoint_manager
    if trial.status != RayTrial.PENDING or storage is None or manager is None:
        return None
    current = trial.checkpoint
    if current is None and last_recorded is None:
        return None  # a trial that never reported: it starts as Ray starts it
    fs = storage.storage_filesystem
    existing = checkpoint_dirs(fs, storage.trial_fs_path)

    def is_intact(checkpoint: Checkpoint | None) -> bool:  # as Ray would take it: also one of ntkmtl 0.1
        return (
            checkpoint is not None and _epoch_if_intact(checkpoint.filesystem, checkpoint.path, legacy=True) is not None
        )

    kept = [r for r in manager._checkpoint_results if is_intact(r.checkpoint)]
    changed = len(kept) != len(manager._checkpoint_results)
    moved = None
    if is_intact(current):
        manager._checkpoint_results = kept  # it continues from the checkpoint Ray's snapshot named
    else:
        usable = [c for c in _intact(fs, existing) if last_recorded is not None and c[0] < last_recorded]
        if usable:
            epoch, _, path = usable[-1]
            result = _TrainingResult(
                checkpoint=Checkpoint(path, filesystem=fs),
                metrics={"training_iteration": epoch, "epoch": epoch},
            )
            manager._latest_checkpoint_result = result
            manager._checkpoint_results = [result]  # deleted by Ray in turn, as any older checkpoint
            moved = f"{trial} from epoch {epoch}"
        else:
            manager._latest_checkpoint_result = None
            manager._checkpoint_results = []
            moved = f"{trial} from its first epoch"
        changed = True
    if existing and existing[-1][0] > storage.current_checkpoint_index:
        storage.current_checkpoint_index = existing[-1][0]  # Ray's next checkpoint: past every existing directory
        changed = True
    if changed:
        trial.invalidate_json_state()
        trial.run_metadata.invalidate_cache()
    return moved


@contextlib.contextmanager
def snapshots_on_schedule() -> Iterator[None]:
    """While the sweep runs: Ray snapshots the experiment on its own schedule only, not also each
    time a trial has made ``num_to_keep`` checkpoints (module docstring)."""
    from ray.tune.execution import experiment_state

    manager = getattr(experiment_state, "_ExperimentCheckpointManager", None)
    forced = getattr(manager, "on_trial_checkpoint", None)
    if manager is None or forced is None:  # another Ray: its behaviour stays (resume is correct, slower)
        yield
        return
    manager.on_trial_checkpoint = lambda self, trial: None
    try:
        yield
    finally:
        manager.on_trial_checkpoint = forced
