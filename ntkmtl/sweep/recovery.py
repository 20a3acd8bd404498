"""Trial files verified and rebuilt before a sweep continues (``--resume``, ``--extend``).

Every Parquet file of the sweep in its output is verified (``export.verified_rows``). A trial's
rows also exist in two other places: the exporter's row log ``<output>/.rows/<trial_id>.jsonl``
(every record, appended before the file is rewritten) and Ray's result log, ``result.json`` in
the trial's directory of the Ray experiment in storage (every result Ray processed, synced with
the experiment's snapshots). Each is replayed with the exporter's own rules (an epoch again
replaces its row, an earlier one drops the later rows), and the trial's file is rewritten from
the one with the most epochs when the file is corrupt, missing or shorter — a corrupt completed
trial is rewritten too, and rows a failed write left out come back. A corrupt file with no
other copy is moved aside (``.<trial_id>.parquet.corrupt``) and named in one line. Nothing
stops the resume. Plain Python, no Ray (the conversion of a Ray result is passed in).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs

from ntkmtl.sweep.export import ParquetExporter, verified_rows
from ntkmtl.sweep.storage import StorageLocation

_TRIAL_DIR = re.compile(r"_([0-9a-f]+_[0-9]+)$")


def result_logs(location: StorageLocation | None, experiments: list[str]) -> dict[str, str]:
    """trial_id → the path of its Ray ``result.json`` in storage, over the sweep's experiments."""
    if location is None:
        return {}
    fs = location.filesystem or pyarrow.fs.LocalFileSystem()
    found: dict[str, str] = {}
    for name in experiments:
        try:
            infos = fs.get_file_info(pyarrow.fs.FileSelector(location.join(name), allow_not_found=True))
        except OSError:
            continue
        for info in infos:
            match = _TRIAL_DIR.search(info.base_name)
            if info.type == pyarrow.fs.FileType.Directory and match:
                found[match.group(1)] = f"{info.path}/result.json"
    return found


def ray_entries(location: StorageLocation, path: str, record_of: Callable[[dict, dict], dict]) -> list[dict[str, Any]]:
    """A Ray result log as row-log entries (a result Ray marked done: the scheduler stopped the trial)."""
    fs = location.filesystem or pyarrow.fs.LocalFileSystem()
    try:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except (OSError, FileNotFoundError):
        return []
    entries: list[dict[str, Any]] = []
    for line in lines:
        try:
            result = json.loads(line)
        except ValueError:
            continue
        spec = (result.get("config") or {}).get("trial")
        if not spec or "epoch" not in result:
            continue
        entries.append({"add": spec, "record": record_of(result, spec)})
        if result.get("done"):
            entries.append({"finish": "complete"})
    return entries


def repair_output(
    output: str,
    sweep: str,
    benchmark: str,
    kinds: dict[str, type],
    location: StorageLocation | None,
    experiments: list[str],
    record_of: Callable[[dict, dict], dict],
) -> list[str]:
    """Verify and rebuild the sweep's trial files; return the lines it printed (one per kind of event)."""
    directory = Path(output).expanduser()
    ray_logs = result_logs(location, experiments)
    ids = set(ray_logs)
    if directory.is_dir():
        ids |= {p.stem for p in directory.glob("*.parquet") if not p.name.startswith(".")}
        ids |= {p.stem for p in (directory / ".rows").glob("*.jsonl")}
    rebuilt, lost = [], []
    for trial_id in sorted(ids):
        exporter = ParquetExporter(directory, sweep, benchmark, kinds)
        path, current, problem = exporter.path(trial_id), None, None
        if path.is_file():
            try:
                current = verified_rows(path)
            except ValueError as error:
                problem = str(error)
            if current and current[0].get("sweep") != sweep:
                continue  # another sweep's file (ownership is checked before)
        best = None
        for source, read in (
            ("row log", lambda: exporter.read_log(trial_id)),
            (
                "Ray result log",
                lambda: (
                    ray_entries(location, ray_logs[trial_id], record_of)
                    if location is not None and trial_id in ray_logs
                    else []
                ),
            ),
        ):
            entries = read()
            n = len(exporter.replay(trial_id, entries)) if entries else 0
            if n and (best is None or n > best[1]):
                best = (source, n, entries)
        have = len(current) if current is not None else 0
        if best is not None and (problem is not None or best[1] > have):
            exporter.replay(trial_id, best[2])
            exporter.write(trial_id)
            what = "corrupt" if problem else ("missing" if current is None else f"short ({have} rows)")
            rebuilt.append(f"{trial_id} ({what}: {best[1]} rows from its {best[0]})")
        elif problem is not None:
            aside = path.with_name(f".{path.name}.corrupt")
            path.replace(aside)
            lost.append(
                f"{trial_id} ({problem}; moved to {aside.name}; no row log or Ray result log holds its rows, "
                "so they are lost; Ray continues the trial from its checkpoint)"
            )
    lines = []
    if rebuilt:
        lines.append(f"resume: rebuilt {len(rebuilt)} trial file(s) in {directory}: {', '.join(rebuilt)}")
    if lost:
        lines.append(
            f"resume: {len(lost)} corrupt trial file(s) in {directory} could not be rebuilt: {', '.join(lost)}"
        )
    for line in lines:
        print(line, flush=True)
    return lines
