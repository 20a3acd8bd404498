"""``python -m ntkmtl.train``: one trial without Ray (like the reference scripts); the trainer's names.

``Trial(TrialConfig(benchmark="qm9", method="ntkmtl", hparams={"ntk_exp": 0.5})).run()`` yields
the flat per-epoch records of docs/DESIGN.md ("Trainer → sweep"); the sweep layer wraps exactly
this. The code lives in ``ntkmtl.training`` (settings, step, records, schedules, trial, cli);
this module keeps the public names and the command in one place.
"""

from __future__ import annotations

import sys

from ntkmtl.options import parse_value
from ntkmtl.training import (
    CHECKPOINT_FILE,
    TRAIN_SETTINGS,
    EpochStats,
    Forward,
    StepOutcome,
    Trial,
    TrialConfig,
    check_train_settings,
    seed_everything,
    train_step,
)
from ntkmtl.training.cli import build_parser, main, summary_line

__all__ = [
    "CHECKPOINT_FILE",
    "TRAIN_SETTINGS",
    "EpochStats",
    "Forward",
    "StepOutcome",
    "Trial",
    "TrialConfig",
    "build_parser",
    "check_train_settings",
    "main",
    "parse_value",
    "seed_everything",
    "summary_line",
    "train_step",
]

if __name__ == "__main__":
    sys.exit(main())
