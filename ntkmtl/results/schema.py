"""The result schema: every Parquet column of a sweep, its type and meaning, and the statuses.

This is the one definition. The exporter (``ntkmtl.sweep.export``) builds each file's Arrow schema
from it (``arrow_fields``), the report checks a data set against it (``IDENTITY_COLUMNS``,
``STATUSES``), and docs/SWEEP.md's "Results schema" table is ``markdown_table()`` (a test
compares the two). A column is one ``Column``: its name (``<…>`` is a name part filled in at run
time, e.g. ``train_loss_<task>``), its Arrow type and what it means.

Adding a per-epoch column: the code that computes the value puts it in the epoch record, and one
``Column`` below declares it (its row in docs/SWEEP.md is this module's ``markdown_table()``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DELTA_M = "delta_m"


@dataclass(frozen=True)
class Column:
    """One Parquet column (or a family of them, when ``name`` holds a ``<part>``)."""

    name: str
    dtype: str  # an Arrow type name (pyarrow.type_for_alias), or HP_DTYPE for hp_<name>
    meaning: str

    @property
    def pattern(self) -> re.Pattern[str]:
        """The column names this declaration covers: ``<part>`` matches one or more characters."""
        parts = re.split(r"<[a-z]+>", self.name)
        return re.compile("^" + "(.+)".join(re.escape(p) for p in parts) + "$")

    @property
    def is_family(self) -> bool:
        return "<" in self.name


@dataclass(frozen=True)
class Status:
    name: str
    meaning: str


# A trial's status, on every row of the trial (its latest): the order of the report's columns.
STATUS_MEANINGS = (
    Status("completed", "ran every epoch"),
    Status("stopped_early", "ended before its last epoch by early stopping (its configuration was judged worse)"),
    Status("running", "not ended yet: the sweep is going on, or it was interrupted"),
    Status("diverged", "a loss or the scheduler's metric became NaN or infinite; no record follows"),
    Status("errored", "raised an error with no retry left"),
)
STATUSES = tuple(s.name for s in STATUS_MEANINGS)
FINAL_STATUSES = tuple(s for s in STATUSES if s != "running")  # a trial Ray has ended

HP_DTYPE = "float64 / int64 / bool / string"
HP_DTYPES = {float: "float64", int: "int64", bool: "bool", str: "string"}  # by the HParam's kind

IDENTITY = (
    Column("sweep", "string", "the config's `name`"),
    Column("trial_id", "string", "Ray's trial id (stable across `--resume`)"),
    Column(
        "config_id",
        "string",
        "hash of benchmark, data options, training set-up, method and hyperparameters: "
        "shared by the seeds of one configuration",
    ),
    Column("benchmark", "string", "the benchmark's name"),
    Column("method", "string", "the weighting method's name"),
    Column(
        "hp_<name>",
        HP_DTYPE,
        "every hyperparameter of the sweep's methods, defaults included, typed by its "
        "kind; null where a method has none of that name",
    ),
    Column("seed", "int64", "the trial's seed"),
    Column("epoch", "int64", "the epoch just finished, 1-based"),
    Column("status", "string", "the trial's latest status, on all its rows: " + ", ".join(f"`{s}`" for s in STATUSES)),
)

EPOCH = (  # the trainer's epoch record (ntkmtl.train.Trial.run), then the keys the sweep adds
    Column("train_loss_<task>", "float64", "mean training loss of each task over the epoch"),
    Column("val_<metric>", "float64", "every metric of the benchmark on the validation split"),
    Column("test_<metric>", "float64", "every metric of the benchmark on the test split"),
    Column(
        "val_delta_m",
        "float64",
        "Δm % of the validation metrics against the paper's single-task baselines (lower is better)",
    ),
    Column(
        "test_delta_m",
        "float64",
        "Δm % of the test metrics against the paper's single-task baselines (lower is better)",
    ),
    Column("weight_<task>", "float64", "the method's task weight, mean over the epoch's steps"),
    Column(
        "method_<key>",
        "float64",
        "other per-step scalars of the method (e.g. `method_grad_norm`; a per-task "
        "vector as `method_<key>_<task>`), mean over steps",
    ),
    Column("lr", "float64", "learning rate during the epoch"),
    Column("epoch_seconds", "float64", "training + evaluation time of the epoch"),
    Column("samples_per_second", "float64", "training throughput"),
    Column(
        "search",
        "string",
        "the sampler that drew the configuration (`optuna`, `random`); absent / null for grid points",
    ),
    Column(
        "node_id",
        "string",
        "the Ray node (`ray.get_runtime_context().get_node_id()`) that ran the epoch: a "
        "trial resumed on another node after a node loss shows both",
    ),
    Column("hostname", "string", "the host that ran the epoch (Ray's result key)"),
)

COLUMNS = IDENTITY + EPOCH
IDENTITY_COLUMNS = tuple(c.name for c in IDENTITY if not c.is_family)  # what every data set must have
_EXACT = {c.name: c for c in COLUMNS if not c.is_family}
_FAMILIES = [c for c in COLUMNS if c.is_family]


def column(name: str) -> Column | None:
    """The declaration of column ``name``: its exact entry, else the family it belongs to, else None."""
    if name in _EXACT:
        return _EXACT[name]
    return next((c for c in _FAMILIES if c.pattern.match(name)), None)


def leading_columns(hp_names: Iterable[str]) -> list[str]:
    """The identity columns in file order, with the ``hp_<name>`` columns (sorted) in their place."""
    names: list[str] = []
    for c in IDENTITY:
        names += sorted(hp_names) if c.name == "hp_<name>" else [c.name]
    return names


def arrow_fields(hparam_kinds: Mapping[str, type], rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, Arrow type name) of every column of a trial's file: the identity columns (one
    ``hp_<name>`` per hyperparameter, typed by its kind), then the rows' other keys in the order
    they first appear, typed by their declaration. A key the schema does not declare is kept, as
    string when its value is a str and float64 otherwise (tests/results check that the trainer
    and the sweep declare every key they write)."""
    fields: list[tuple[str, str]] = []
    for c in IDENTITY:
        if c.name == "hp_<name>":
            fields += [(f"hp_{n}", HP_DTYPES.get(k, "string")) for n, k in sorted(hparam_kinds.items())]
        else:
            fields.append((c.name, c.dtype))
    known = {name for name, _ in fields}
    for row in rows:
        for key, value in row.items():
            if key not in known:
                known.add(key)
                declared = column(key)
                dtype = declared.dtype if declared is not None else ("string" if isinstance(value, str) else "float64")
                fields.append((key, dtype))
    return fields


def undeclared(names: Iterable[str]) -> list[str]:
    """The names no column declaration covers."""
    return [n for n in names if column(n) is None]


def markdown_table() -> str:
    """The "Results schema" table of docs/SWEEP.md."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.meaning} |" for c in COLUMNS]
    return "\n".join(lines)
