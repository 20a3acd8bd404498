"""One training trial, without Ray: a benchmark, a weighting method, a seed → one record per epoch.

- ``settings``: ``TrialConfig`` and the declared training settings ``TRAIN_SETTINGS``;
- ``step``: ``train_step``, the one implementation of the trainer ↔ method contract;
- ``records``: ``EpochStats``, the per-epoch record of docs/DESIGN.md ("Trainer → sweep");
- ``schedules``: the model's learning-rate schedule;
- ``trial``: ``Trial`` (epochs, evaluation, divergence, checkpoints);
- ``cli``: ``python -m ntkmtl.train``.
"""

from ntkmtl.training.records import EpochStats
from ntkmtl.training.settings import TRAIN_SETTINGS, TrialConfig, check_train_settings
from ntkmtl.training.step import Forward, StepOutcome, train_step
from ntkmtl.training.trial import CHECKPOINT_FILE, Trial, seed_everything

__all__ = [
    "CHECKPOINT_FILE",
    "TRAIN_SETTINGS",
    "EpochStats",
    "Forward",
    "StepOutcome",
    "Trial",
    "TrialConfig",
    "check_train_settings",
    "seed_everything",
    "train_step",
]
