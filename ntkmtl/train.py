"""``python -m ntkmtl.train``: one trial without Ray (like the reference scripts); the trainer's names.

``Trial(TrialConfig(benchmark="qm9", method="ntkmtl", hparams={"ntk_exp": 0.5})).run()`` yields
the flat per-epoch records of docs/DESIGN.md ("Trainer → sweep"); the sweep layer wraps exactly
this. The code lives in ``ntkmtl.training`` (settings, step, records, schedules, trial, cli);
this module keeps the public names and the command in one place.
"""

from __future__ import annotations

import sys

from ntkmtl import training
from ntkmtl.options import parse_value
from ntkmtl.training import *  # noqa: F403 - the trainer's public names, as ``ntkmtl.training`` lists them
from ntkmtl.training.cli import build_parser, main, summary_line

__all__ = [*training.__all__, "build_parser", "main", "parse_value", "summary_line"]

if __name__ == "__main__":
    sys.exit(main())
