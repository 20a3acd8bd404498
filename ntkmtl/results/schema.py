"""The result schema: every Parquet column of a sweep, its type and meaning, and the statuses.

A column is one ``Column`` (``ntkmtl/columns.py``): its name (``<…>`` is a name part filled in at
run time, e.g. ``train_loss_<task>``), its Arrow type and what it means, declared once, where the
value is made: the trainer's epoch record declares its own (``Trial.columns`` in
ntkmtl/training/trial.py, with ``EpochStats.columns`` in records.py); this module declares the
identity columns and the ones the sweep adds, and collects the rest (``columns()``). The exporter
(``ntkmtl.sweep.export``) builds each file's Arrow schema from them (``arrow_fields``), the report
checks a data set against ``IDENTITY_COLUMNS`` and ``STATUSES``, and docs/SWEEP.md's "Results
schema" table is generated from them: ``python -m ntkmtl.results.schema --write-docs`` rewrites
the block between its two markers (a test fails, naming that command, when it is out of date).

The trainer's declarations are imported when first needed, not with this module, so reading and
reporting results never loads torch.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ntkmtl.columns import Column

DELTA_M = "delta_m"


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

SWEEP = (  # the keys the sweep adds to the trainer's record (ntkmtl/sweep/callbacks.py, trainable.py)
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

IDENTITY_COLUMNS = tuple(c.name for c in IDENTITY if not c.is_family)  # what every data set must have


@functools.cache
def columns() -> tuple[Column, ...]:
    """Every column, in the docs' order: the identity columns, the trainer's epoch record
    (declared where it is computed), then the keys the sweep adds."""
    from ntkmtl.training.trial import Trial  # here, not above: reading results needs no torch

    return IDENTITY + Trial.columns + SWEEP


@functools.cache
def _lookup() -> tuple[dict[str, Column], list[Column]]:
    every = columns()
    return {c.name: c for c in every if not c.is_family}, [c for c in every if c.is_family]


@functools.cache  # the exporter asks for every key of every row it writes
def column(name: str) -> Column | None:
    """The declaration of column ``name``: its exact entry, else the family it belongs to, else None."""
    exact, families = _lookup()
    if name in exact:
        return exact[name]
    return next((c for c in families if c.pattern.match(name)), None)


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
    lines += [f"| `{c.name}` | {c.dtype} | {c.meaning} |" for c in columns()]
    return "\n".join(lines)


# docs/SWEEP.md holds the table between these two lines; ``--write-docs`` rewrites what lies between.
WRITE_DOCS = "python -m ntkmtl.results.schema --write-docs"
DOCS_BEGIN = f"<!-- results-schema table: generated by `{WRITE_DOCS}`, do not edit -->"
DOCS_END = "<!-- end of the results-schema table -->"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "SWEEP.md"


def with_docs_table(text: str, where: str = "docs/SWEEP.md") -> str:
    """``text`` with the block between ``DOCS_BEGIN`` and ``DOCS_END`` replaced by ``markdown_table()``."""
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"{where} lacks the lines {DOCS_BEGIN!r} … {DOCS_END!r} around the results-schema table")
    return text[: start + len(DOCS_BEGIN)] + "\n\n" + markdown_table() + "\n\n" + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ntkmtl.results.schema``: print the table, or (``--write-docs``) rewrite docs/SWEEP.md's."""
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.results.schema",
        description="Print the results-schema table, or rewrite it in docs/SWEEP.md after adding a column.",
    )
    parser.add_argument("--write-docs", action="store_true", help="rewrite the table in docs/SWEEP.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the file to rewrite (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.write_docs:
        print(markdown_table())
        return 0
    path: Path = args.docs
    try:
        text = path.read_text(encoding="utf-8")
        new = with_docs_table(text, str(path))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if new == text:
        print(f"{path}: the results-schema table is up to date")
    else:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: results-schema table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
