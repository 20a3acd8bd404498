"""Parquet export: one row per trial × epoch, written while the sweep runs, exactly once.

Layout: ``<output>/<trial_id>.parquet``, one file per trial, rewritten after every epoch through a
temporary file and ``os.replace`` — a reader (or a crash) never sees a half-written file. Rows are
keyed by epoch: a record for an epoch already written replaces it, and one for an earlier epoch
drops the later rows (a trial resumed from an older checkpoint after the driver was killed
re-runs them), so a resume or a retry never duplicates a row. The exporter reloads a trial's
file the first time it sees the trial, so a restarted driver continues where the old one stopped.

Columns: ``ntkmtl.results.schema`` declares each one (name, Arrow type, meaning; docs/SWEEP.md
"Results schema" is its table): the identity columns ``sweep, trial_id, config_id, benchmark,
method, hp_<name>…`` (every hyperparameter of the sweep's methods, null where a method has no
such hyperparameter), ``seed, epoch, status`` (the trial's latest status, on every row), then
every key of the epoch record in the order it first appears, typed by its declaration.

Read with ``read_results(path)`` (pandas), ``pyarrow.parquet.read_table(path)`` or DuckDB:
``SELECT * FROM read_parquet('<output>/*.parquet', union_by_name=true)``.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from ntkmtl.results import schema
from ntkmtl.results.schema import FINAL_STATUSES as FINAL_STATUSES  # the sweep driver's import


def final_status(last_record_status: str | None, ended_by: str) -> str:
    """The status a trial ends with: its record said completed/diverged, or Ray ended it.

    ``ended_by`` is ``"complete"`` (the trial stopped without an error: finished, or stopped by
    the scheduler) or ``"error"`` (it raised, and no retry is left).
    """
    if last_record_status in ("completed", "diverged"):
        return last_record_status
    if ended_by == "error":
        return "errored"
    if ended_by == "complete":
        return "stopped_early"
    raise ValueError(f"ended_by={ended_by!r} is not valid; valid: complete, error")


class ParquetExporter:
    """Keeps every trial's rows and rewrites its Parquet file atomically on each change."""

    def __init__(self, directory: str | os.PathLike, sweep: str, benchmark: str, hparam_kinds: Mapping[str, type]):
        self.directory = Path(directory).expanduser()
        self.sweep = sweep
        self.benchmark = benchmark
        self.hparam_kinds = dict(sorted(hparam_kinds.items()))
        self._rows: dict[str, dict[int, dict[str, Any]]] = {}
        self._status: dict[str, str] = {}

    def path(self, trial_id: str) -> Path:
        return self.directory / f"{trial_id}.parquet"

    def add_record(self, trial_id: str, spec: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Store one epoch record of a trial (replacing that epoch, dropping later ones) and write."""
        rows = self._load(trial_id)
        epoch = int(record["epoch"])
        for later in [e for e in rows if e > epoch]:
            del rows[later]
        row = {
            "sweep": self.sweep, "trial_id": trial_id, "config_id": spec["config_id"],
            "benchmark": self.benchmark, "method": spec["method"],
        }
        for name in self.hparam_kinds:
            row[f"hp_{name}"] = spec["hparams"].get(name)
        row.update({"seed": int(spec["seed"]), "epoch": epoch, "status": record.get("status", "running")})
        row.update({k: v for k, v in record.items() if k not in ("epoch", "status")})
        rows[epoch] = row
        self._status[trial_id] = row["status"]
        self._write(trial_id)

    def finish(self, trial_id: str, ended_by: str) -> str:
        """Set the trial's final status on all its rows (see ``final_status``); return it."""
        rows = self._load(trial_id)
        status = final_status(self._status.get(trial_id), ended_by)
        self._status[trial_id] = status
        if rows:
            self._write(trial_id)
        return status

    def status(self, trial_id: str) -> str | None:
        self._load(trial_id)
        return self._status.get(trial_id)

    def _load(self, trial_id: str) -> dict[int, dict[str, Any]]:
        if trial_id not in self._rows:
            rows: dict[int, dict[str, Any]] = {}
            path = self.path(trial_id)
            if path.is_file():
                for row in pq.read_table(path).to_pylist():
                    rows[int(row["epoch"])] = row
                if rows:
                    self._status[trial_id] = rows[max(rows)]["status"]
            self._rows[trial_id] = rows
        return self._rows[trial_id]

    def _write(self, trial_id: str) -> None:
        rows = [dict(r) for _, r in sorted(self._rows[trial_id].items())]
        for row in rows:
            row["status"] = self._status[trial_id]
        table = pa.Table.from_pylist(rows, schema=self._schema(rows))
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(trial_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

    def _schema(self, rows: list[dict[str, Any]]) -> pa.Schema:
        fields = schema.arrow_fields(self.hparam_kinds, rows)
        return pa.schema([pa.field(name, pa.type_for_alias(dtype)) for name, dtype in fields])


def result_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The Parquet files under ``paths`` (directories searched recursively; hidden temp files skipped)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path)) if not Path(p).name.startswith("."))
            if not matches:
                raise ValueError(f"results path {str(path)!r} does not exist (expected a sweep's output directory or a .parquet file)")
            files += matches
    return files


def read_results(paths: str | os.PathLike | Iterable[str | os.PathLike]):
    """All rows of one or many sweeps as a pandas DataFrame, sorted by sweep, trial and epoch."""
    import pandas as pd

    files = result_files(paths)
    if not files:
        raise ValueError(f"no .parquet files under {paths!r}; is it a sweep's output directory?")
    frames = [pq.read_table(f).to_pandas() for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pq.read_table(files[0]).to_pandas()
    df = pd.concat(frames, ignore_index=True, sort=False)
    hps = sorted(c for c in df.columns if c.startswith("hp_"))
    leading = [c for c in schema.leading_columns(hps) if c in df.columns]
    rest = [c for c in df.columns if c not in leading]
    return df[leading + rest].sort_values(["sweep", "trial_id", "epoch"], ignore_index=True)
