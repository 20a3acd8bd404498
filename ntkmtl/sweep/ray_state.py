"""Ray's experiment state, checked before ``--resume`` restores it.

Each driver session of a sweep writes its snapshot as ``experiment_state-<session>.json`` (JSON),
with the searcher's and the callbacks' states beside it (``basic-variant-state-<session>.json``,
``searcher-state-<session>.pkl``, ``callback-states-<session>.pkl``: pickles), and Ray copies
them to storage in the background, one by one and not atomically: a driver killed during that
copy leaves a file cut short or missing. ``Tuner.restore`` would then stop on a JSON error, or
pair the session's trials with the searcher of the session before (which may suggest trials
again that exist: duplicated rows). A session is whole when its experiment state parses, each
of its other files unpickles, and it has every kind of file the session before it had.
``usable_experiment_state`` moves the files of a newest session that is not whole aside
(``<name>.cut``, which Ray no longer reads) in one line, so the resume continues from the
session before it — an older snapshot, which ``checkpoints.py`` and ``orphans.py`` make safe: its
trials continue from checkpoints they have, and trials it does not know run again. When no
session is whole the resume stops with one line. (Ray restores from a new driver staging
directory each run, filled from storage, so files moved aside there are not read again.)
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


def _kinds(names: list[str], session: str) -> dict[str, str]:
    """A session's files by kind (the name without ``-<session>``): ``{"searcher-state.pkl": name}``."""
    found = {}
    for name in names:
        for ext in (".json", ".pkl"):
            if name.endswith(f"-{session}{ext}"):
                found[name[: -len(f"-{session}{ext}")] + ext] = name
    return found


def _is_whole(fs: pyarrow.fs.FileSystem, directory: str, files: dict[str, str], before: dict[str, str]) -> bool:
    """Its experiment state parses, its other files unpickle, no kind of file the session before had is missing."""
    import ray.cloudpickle

    if not set(before) <= set(files):
        return False
    for kind, name in files.items():
        try:
            if kind == "experiment_state.json":
                if storefiles.read_json(fs, f"{directory}/{name}") is None:
                    return False
            else:
                with fs.open_input_stream(f"{directory}/{name}") as f:
                    ray.cloudpickle.loads(f.read())
        except Exception:  # noqa: BLE001  (a pickle cut short raises one of several errors: not whole)
            return False
    return True


def usable_experiment_state(location: StorageLocation, name: str) -> list[str]:
    """Move aside the files of the newest sessions while they are not whole (module docstring);
    return the lines printed. SweepError when no session is whole."""
    fs, directory = storefiles.filesystem_of(location.filesystem), location.join(name)
    names = _names(fs, directory)
    sessions = sorted((m.group(1) for m in map(_STATE.match, names) if m), reverse=True)
    lines: list[str] = []
    for at, session in enumerate(sessions):
        files = _kinds(names, session)
        before = _kinds(names, sessions[at + 1]) if at + 1 < len(sessions) else {}
        if _is_whole(fs, directory, files, before):
            return lines
        moved = sorted(files.values())
        for file in moved:
            fs.move(f"{directory}/{file}", f"{directory}/{file}.cut")
        lines.append(
            f"resume: Ray's experiment state of session {session} in {directory} is cut short or incomplete (its "
            f"driver was killed while Ray saved it); its files are moved aside ({', '.join(moved)} → *.cut) "
            "and the sweep continues from the session before"
        )
        print(lines[-1], flush=True)
    if sessions:
        raise SweepError(
            f"--resume: no intact Ray experiment state of sweep {name!r} is left at {directory} (each was cut short "
            "or incomplete after a kill while Ray saved it); its rows stay in the output: run the sweep again under a "
            "new name (--set name=NEW_NAME)"
        )
    return lines
