"""The sweep's ``output`` directory (its Parquet rows), checked before Ray starts.

Storage is probed in ``storage.py`` before any trial exists; ``check_output`` does the same for
``output``, so that a read-only directory, a file in its place or a full disk stop the sweep in a
second with one line instead of a traceback after Ray started and left a stub experiment:

* the path, or its nearest existing ancestor when it does not exist yet, is a directory;
* a probe file can be created, written and deleted there (a directory that does not exist yet
  is then creatable; nothing is created until the sweep writes its first row);
* the filesystem holding it has at least ``MIN_FREE_BYTES`` free.

``free_space_problem(path, what)`` is the free-space check alone, shared with local storage.
``OutputError`` is a ``ValueError``, so the CLI prints it as ``error: …`` and exits 2.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MIN_FREE_BYTES = 100 * 2**20
"""Free space a sweep needs on its output (and local storage) filesystem to start: the Parquet
rows of a large sweep take a few MiB, checkpoints of the toy and QM9 models far less than this."""

FIX = "choose another with --set output=DIR"


class OutputError(ValueError):
    """The output directory cannot hold the sweep's rows; the message says why and what to do."""


def check_output(output: str | os.PathLike) -> Path:
    """The absolute output directory, after the checks above; OutputError if one fails."""
    path = Path(output).expanduser().absolute()
    shown = str(path)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            raise OutputError(f"output {shown!r} is a file, not a directory; move it away or {FIX}")
        raise OutputError(f"output {shown!r} cannot be created: {str(existing)!r} is a file, not a directory; {FIX}")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".ntkmtl-write-probe-", dir=existing)
        try:
            os.write(descriptor, b"ntkmtl output probe\n")
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as exc:
        cause = f"{type(exc).__name__}: {exc.strerror or exc}"
        if existing == path:
            raise OutputError(f"output {shown!r} is not writable ({cause}); {FIX}") from None
        raise OutputError(f"output {shown!r} cannot be created in {str(existing)!r} ({cause}); {FIX}") from None
    problem = free_space_problem(existing)
    if problem:
        raise OutputError(f"output {shown!r}: {problem}; free some space or {FIX}")
    return path


def free_space_problem(directory: str | os.PathLike) -> str | None:
    """ "only X MiB free on its filesystem (at least … needed)" when below MIN_FREE_BYTES, else None."""
    free = shutil.disk_usage(directory).free
    if free >= MIN_FREE_BYTES:
        return None
    return f"only {free / 2**20:.1f} MiB free on its filesystem; a sweep needs at least {MIN_FREE_BYTES // 2**20} MiB there"
