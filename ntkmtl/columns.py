"""``Column``: how one result column is declared — its name, Arrow type and meaning.

The code that computes a per-epoch value declares its column next to that code (the trainer's
epoch record: ``ntkmtl/training/records.py`` and ``trial.py``); ``ntkmtl/results/schema.py``
collects those declarations with the identity columns and the ones the sweep adds, and builds the
Parquet Arrow schema and docs/SWEEP.md's "Results schema" table from them. This module sits below
every layer (the trainer and the results layer both use it) and imports nothing of the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One Parquet column (or a family of them, when ``name`` holds a ``<part>`` filled in at run
    time, e.g. ``train_loss_<task>``): its name, its Arrow type name (``pyarrow.type_for_alias``;
    ``hp_<name>`` is typed by each hyperparameter's kind) and what it means (its row of
    docs/SWEEP.md's table)."""

    name: str
    dtype: str
    meaning: str

    @property
    def pattern(self) -> re.Pattern[str]:
        """The column names this declaration covers: ``<part>`` matches one or more characters."""
        parts = re.split(r"<[a-z]+>", self.name)
        return re.compile("^" + "(.+)".join(re.escape(p) for p in parts) + "$")

    @property
    def is_family(self) -> bool:
        return "<" in self.name
