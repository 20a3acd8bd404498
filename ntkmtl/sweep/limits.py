"""Limits a sweep config must respect beyond its own keys: RNG seeds and filesystem names.

Seeds: ``ntkmtl.train`` seeds ``random``, ``numpy`` and ``torch`` with the trial's seed, and
``numpy.random.seed`` accepts only 0 ≤ seed < 2**32 (torch takes up to 2**64 - 1, ``random``
any integer), so ``SEED_MAX = 2**32 - 1`` bounds every seed.

Names: the sweep's ``name`` becomes a directory and part of file names: the Ray experiment
``<storage>/<name>`` and ``<name>-extend<k>``, the record ``<output>/<name>.sweep.json`` and its
temporary ``.<name>.sweep.json.<pid>.tmp``. One path component may have at most ``NAME_MAX`` =
255 bytes on ext4, XFS, Btrfs, ZFS, NFS, Lustre and APFS, so ``name`` may have at most
``NAME_MAX - RESERVED_BYTES`` bytes (UTF-8): the longest of those names adds 24 bytes, and
the rest of the reserve leaves room for files named after the sweep later. ``path_problem``
checks the components of a local ``output`` or ``storage`` path the same way and the whole path
against ``PATH_MAX`` (4096 bytes on Linux) with room for what goes below it.
"""

from __future__ import annotations

import os

SEED_MAX = 2**32 - 1
NAME_MAX = 255
PATH_MAX = 4096
RESERVED_BYTES = 40
PATH_RESERVE = 512  # trial directories, checkpoints and Parquet files below output or storage


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a sweep's files and directories, or None."""
    size = len(name.encode("utf-8"))
    limit = NAME_MAX - RESERVED_BYTES
    if size <= limit:
        return None
    return (
        f"is {size} bytes long; at most {limit} bytes, since directories and files are named after it "
        f"(e.g. '.<name>.sweep.json.<pid>.tmp', '<name>-extend<k>') and a file name may have at most {NAME_MAX} bytes"
    )


def path_problem(path: str) -> str | None:
    """Why the local directory ``path`` is too long for what a sweep writes below it, or None."""
    full = os.path.abspath(os.path.expanduser(path))
    for part in full.split(os.sep):
        if len(part.encode("utf-8")) > NAME_MAX:
            return f"has a component of {len(part.encode('utf-8'))} bytes ({shortened(part)!r}); at most {NAME_MAX} bytes each"
    size = len(full.encode("utf-8"))
    if size > PATH_MAX - PATH_RESERVE:
        return (
            f"is {size} bytes long; at most {PATH_MAX - PATH_RESERVE} bytes, so that the files a sweep writes "
            f"below it stay under the {PATH_MAX}-byte path limit"
        )
    return None


def shortened(text: str, keep: int = 40) -> str:
    """``text`` cut to ``keep`` characters with an ellipsis, for one-line messages."""
    return text if len(text) <= keep else text[:keep] + "…"
