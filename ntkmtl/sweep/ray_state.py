"""Ray's experiment state, checked before ``--resume`` restores it.

Each driver session of a sweep writes its snapshot as ``experiment_state-<session>.json`` (with
the searcher's ``basic-variant-state-<session>.json`` or ``searcher-state-<session>.pkl``
beside it) and Ray copies it to storage in the background, not atomically: a driver killed
during that copy leaves the newest file cut short, and ``Tuner.restore`` would stop on a JSON
error. ``usable_experiment_state`` moves such a session's files aside
(``<name>.cut``, which Ray no longer reads) in one line, so the resume continues from the session
before it — an older snapshot, which ``checkpoints.py`` and ``orphans.py`` make safe: its
trials continue from checkpoints they have, and trials it does not know run again. When no
session's state is intact the resume stops with one line.
"""

from __future__ import annotations

import re

import pyarrow.fs

from ntkmtl.sweep import storefiles
from ntkmtl.sweep.identity import SweepError
from ntkmtl.sweep.storage import StorageLocation

_STATE = re.compile(r"^experiment_state-(.+)\.json$")


def _names(fs: pyarrow.fs.FileSystem, directory: str) -> list[str]:
    selector = pyarrow.fs.FileSelector(directory, allow_not_found=True)
    return [info.base_name for info in fs.get_file_info(selector) if info.type == pyarrow.fs.FileType.File]


def _is_whole(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    try:
        return storefiles.read_json(fs, path) is not None
    except (OSError, ValueError):
        return False


def usable_experiment_state(location: StorageLocation, name: str) -> list[str]:
    """Move aside the newest sessions' state files while their experiment state is cut short;
    return the lines printed. SweepError when no intact experiment state is left."""
    fs, directory = storefiles.filesystem_of(location.filesystem), location.join(name)
    names = _names(fs, directory)
    sessions = sorted((m.group(1) for m in map(_STATE.match, names) if m), reverse=True)
    lines: list[str] = []
    for session in sessions:
        if _is_whole(fs, f"{directory}/experiment_state-{session}.json"):  # (the searcher's files are pickles)
            return lines
        moved = sorted(n for n in names if n.endswith((f"-{session}.json", f"-{session}.pkl")))
        for file in moved:
            fs.move(f"{directory}/{file}", f"{directory}/{file}.cut")
        lines.append(
            f"resume: Ray's experiment state {directory}/experiment_state-{session}.json is cut short (its driver "
            f"was killed while Ray saved it); its session's files are moved aside ({', '.join(moved)} → *.cut) "
            "and the sweep continues from the session before"
        )
        print(lines[-1], flush=True)
    if sessions:
        raise SweepError(
            f"--resume: no intact Ray experiment state of sweep {name!r} is left at {directory} (each was cut short "
            "while Ray saved it); its rows stay in the output: run the sweep again under a new name (--set name=NEW_NAME)"
        )
    return lines
