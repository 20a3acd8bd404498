"""Ray's own messages that mislead a user of ``python -m ntkmtl.tune``, kept from the terminal.

* The hint ``Resume experiment with: Tuner.restore(path=…, trainable=...)`` that Ray Tune logs
  (logger ``ray.tune.tune``) when a run is interrupted: CLI users continue with ``--resume``,
  which the CLI says itself. ``RestoreHintFilter`` drops that record; Tune's other warnings stay.
* ``Failed to fetch metrics for 1 trial(s): - ls-seed2: FileNotFoundError('… both result.json
  and progress.csv were not found …')`` (logger ``ray.tune.analysis.experiment_analysis``) after
  an interruption: a trial that had not started has no results yet, which the CLI reports as
  "not started". ``NotStartedFilter`` drops the record when every trial it lists is such a trial.
* ``ERROR … Error handling checkpoint … FileNotFoundError: Path not found: …/checkpoint_00000k``
  with a traceback, after a resume: the experiment state Ray saved before the driver died still
  lists a checkpoint that ``CheckpointConfig(num_to_keep)`` had already deleted, and Ray's
  checkpoint manager fails deleting it again, which also skips the rest of that checkpoint's
  bookkeeping. ``tolerate_deleted_checkpoints`` makes that deletion accept a path that is already
  gone (the state it wanted); any other deletion error is raised as before.

``quiet_for_cli()`` applies all three in the driver; the CLI calls it before the sweep starts.
"""

from __future__ import annotations

import logging
from typing import Any

RESTORE_HINT = "Tuner.restore("
NO_RESULTS = "both result.json and progress.csv were not found"


class RestoreHintFilter(logging.Filter):
    """Drops Ray Tune's ``Resume experiment with: Tuner.restore(...)`` record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RESTORE_HINT not in record.getMessage()


class NotStartedFilter(logging.Filter):
    """Drops Ray's "Failed to fetch metrics" warning when it lists only trials with no results yet."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Failed to fetch metrics for "):
            return True
        listed = [line for line in message.splitlines()[1:] if line.startswith("- ")]
        return not listed or not all(NO_RESULTS in line for line in listed)


FILTERS = {"ray.tune.tune": RestoreHintFilter, "ray.tune.analysis.experiment_analysis": NotStartedFilter}
"""Ray's logger → the filter ``quiet_for_cli`` adds to it."""


def tolerate_deleted_checkpoints() -> bool:
    """Let Ray's checkpoint manager treat an already deleted checkpoint as deleted; False when
    this Ray version has no such function (then nothing changes)."""
    from ray.train._internal import checkpoint_manager

    delete = getattr(checkpoint_manager, "_delete_fs_path", None)
    if delete is None or getattr(delete, "tolerates_missing", False):
        return delete is not None

    def delete_if_present(fs, fs_path):
        try:
            delete(fs=fs, fs_path=fs_path)
        except FileNotFoundError:
            pass  # deleted before the driver stopped; its removal is what was asked

    marked: Any = delete_if_present  # a function with two attributes of our own
    marked.tolerates_missing, marked.original = True, delete
    checkpoint_manager._delete_fs_path = marked
    return True


def quiet_for_cli() -> None:
    """Install the filter and the tolerant deletion (idempotent)."""
    for name, kind in FILTERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    tolerate_deleted_checkpoints()
