"""Parquet export: one row per trial × epoch, written while the sweep runs, exactly once.

Layout: ``<output>/<trial_id>.parquet``, one file per trial, rewritten after every epoch through a
temporary file and ``os.replace`` — a reader (or a crash) never sees a half-written file. Rows are
keyed by epoch: a record for an epoch already written replaces it, and one for an earlier epoch
drops the later rows (a trial resumed from an older checkpoint after the driver was killed
re-runs them), so a resume or a retry never duplicates a row. The exporter reloads a trial's
file the first time it sees the trial, so a restarted driver continues where the old one stopped.

Every change is first appended to the trial's row log ``<output>/.rows/<trial_id>.jsonl`` (one
JSON line per record or end of trial), then the Parquet file is rewritten. A file is verified when
read (it parses, and its rows are the trial's, one per epoch); a corrupt or truncated one is
rebuilt from the row log by replaying it (``recovery.py`` also rebuilds from Ray's result log),
and ``read_results`` names a file it cannot read in one line instead of failing.

Columns: ``ntkmtl.results.schema`` holds each one's declaration (name, Arrow type, meaning; the
trainer's are made next to its code; docs/SWEEP.md "Results schema" is generated from them): the
identity columns ``sweep, trial_id, config_id, benchmark, method, hp_<name>…`` (every
hyperparameter of the sweep's methods, null where a method has no such hyperparameter), ``seed,
epoch, status`` (the trial's latest status, on every row), then every key of the epoch record in
the order it first appears, typed by its declaration.

Read with ``read_results(path)`` (pandas), ``pyarrow.parquet.read_table(path)`` or DuckDB:
``SELECT * FROM read_parquet('<output>/*.parquet', union_by_name=true)``.
"""

from __future__ import annotations

import glob
import json
import os
import sys
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

    def log_path(self, trial_id: str) -> Path:
        return self.directory / ".rows" / f"{trial_id}.jsonl"

    def add_record(self, trial_id: str, spec: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Store one epoch record of a trial (replacing that epoch, dropping later ones) and write."""
        rows = self._load(trial_id)
        self._log(
            trial_id, {"add": {k: spec[k] for k in ("config_id", "method", "hparams", "seed")}, "record": dict(record)}
        )
        self._apply(trial_id, rows, spec, record)
        self._write(trial_id)

    def _apply(
        self, trial_id: str, rows: dict[int, dict[str, Any]], spec: Mapping[str, Any], record: Mapping[str, Any]
    ) -> None:
        epoch = int(record["epoch"])
        for later in [e for e in rows if e > epoch]:
            del rows[later]
        row = {
            "sweep": self.sweep,
            "trial_id": trial_id,
            "config_id": spec["config_id"],
            "benchmark": self.benchmark,
            "method": spec["method"],
        }
        for name in self.hparam_kinds:
            row[f"hp_{name}"] = spec["hparams"].get(name)
        row.update({"seed": int(spec["seed"]), "epoch": epoch, "status": record.get("status", "running")})
        row.update({k: v for k, v in record.items() if k not in ("epoch", "status")})
        rows[epoch] = row
        self._status[trial_id] = row["status"]

    def finish(self, trial_id: str, ended_by: str) -> str:
        """Set the trial's final status on all its rows (see ``final_status``); return it."""
        rows = self._load(trial_id)
        if rows:
            self._log(trial_id, {"finish": ended_by})
        status = final_status(self._status.get(trial_id), ended_by)
        self._status[trial_id] = status
        if rows:
            self._write(trial_id)
        return status

    def status(self, trial_id: str) -> str | None:
        self._load(trial_id)
        return self._status.get(trial_id)

    def replay(self, trial_id: str, entries: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        """The rows that ``entries`` (row-log lines: ``{"add": spec, "record": …}`` or
        ``{"finish": ended_by}``) make, in memory (nothing is written or logged)."""
        rows: dict[int, dict[str, Any]] = {}
        self._status.pop(trial_id, None)
        for entry in entries:
            if "add" in entry:
                self._apply(trial_id, rows, entry["add"], entry["record"])
            elif "finish" in entry and rows:
                self._status[trial_id] = final_status(self._status.get(trial_id), entry["finish"])
        self._rows[trial_id] = rows
        return rows

    def read_log(self, trial_id: str) -> list[dict[str, Any]]:
        """The trial's row-log entries (a line cut short by a crash is skipped)."""
        path, entries = self.log_path(trial_id), []
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries

    def write(self, trial_id: str) -> None:
        """Rewrite the trial's file from the rows in memory (after ``replay``)."""
        if self._rows.get(trial_id):
            self._write(trial_id)

    def _log(self, trial_id: str, entry: dict[str, Any]) -> None:
        path = self.log_path(trial_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")

    def _load(self, trial_id: str) -> dict[int, dict[str, Any]]:
        if trial_id not in self._rows:
            rows: dict[int, dict[str, Any]] = {}
            path = self.path(trial_id)
            if path.is_file():
                try:
                    rows = {int(r["epoch"]): r for r in verified_rows(path)}
                except ValueError as error:  # corrupt: the row log has every row written
                    rows = self.replay(trial_id, self.read_log(trial_id))
                    print(f"{path}: {error}; rebuilt {len(rows)} rows from its row log", file=sys.stderr, flush=True)
                    if rows:
                        self._write(trial_id)
                if rows and trial_id not in self._status:
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


def verified_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of one trial's file, or ValueError naming what is wrong (unreadable, truncated,
    another trial's rows, an epoch twice)."""
    path = Path(path)
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as error:
        raise ValueError(f"not a readable Parquet file ({' '.join(str(error).split())[:120]})") from None
    trial_ids = {r.get("trial_id") for r in rows}
    epochs = [r.get("epoch") for r in rows]
    if trial_ids - {path.stem} or len(set(epochs)) != len(epochs):
        raise ValueError(f"its rows are not one trial's ({path.stem}), one per epoch")
    return rows


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
                raise ValueError(
                    f"results path {str(path)!r} does not exist (expected a sweep's output directory or a .parquet file)"
                )
            files += matches
    return files


def last_epochs(directory: str | os.PathLike, sweep: str) -> dict[str, int]:
    """trial_id → the last epoch the sweep's file in ``directory`` holds for it (unreadable files left out)."""
    found: dict[str, int] = {}
    for path in Path(directory).expanduser().glob("*.parquet"):
        if path.name.startswith("."):
            continue
        try:
            table = pq.read_table(path, columns=["sweep", "trial_id", "epoch"])
        except (OSError, ValueError, pa.ArrowException):
            continue
        epochs = [e for e, s in zip(table["epoch"].to_pylist(), table["sweep"].to_pylist()) if s == sweep]
        if epochs and all(isinstance(e, int) for e in epochs):
            found[table["trial_id"][0].as_py()] = max(epochs)
    return found


def read_results(paths: str | os.PathLike | Iterable[str | os.PathLike]):
    """All rows of one or many sweeps as a pandas DataFrame, sorted by sweep, trial and epoch."""
    import pandas as pd

    files = result_files(paths)
    if not files:
        raise ValueError(f"no .parquet files under {paths!r}; is it a sweep's output directory?")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f))
        except (OSError, ValueError, pa.ArrowException) as error:
            print(
                f"warning: {f} is not a readable Parquet file and is left out ({' '.join(str(error).split())[:120]}); "
                "--resume of its sweep rebuilds it",
                file=sys.stderr,
                flush=True,
            )
    if not tables:
        raise ValueError(f"no readable .parquet file under {paths!r}")
    frames = [t.to_pandas() for t in tables if t.num_rows]
    if not frames:
        return tables[0].to_pandas()
    df = pd.concat(frames, ignore_index=True, sort=False)
    hps = sorted(c for c in df.columns if c.startswith("hp_"))
    leading = [c for c in schema.leading_columns(hps) if c in df.columns]
    rest = [c for c in df.columns if c not in leading]
    return df[leading + rest].sort_values(["sweep", "trial_id", "epoch"], ignore_index=True)
