"""Fault injection, for tests and demos (documented, off unless set).

The environment variable ``NTKMTL_INJECT`` in the driver holds a comma-separated list of
``KIND@EPOCH:PATTERN``, where PATTERN is a shell pattern matched against trial names
(``method-hp=value-seedN``), EPOCH a number or ``*`` (every epoch), and KIND is one of

- ``raise_once``: raise after reporting that epoch, once per trial (a retry must then resume
  from the checkpoint);
- ``nan``: the metrics of that epoch become NaN (the trial must end diverged);
- ``sleep``: sleep 2 s after that epoch, to widen a window in which a test kills the driver;
- ``write_error``: the driver fails to write that epoch's row to the output (an ``OSError``
  "No space left on device", as a full disk gives), once per driver process: the sweep must
  stop with one line and resume with every row.

The first three act in the trial (``trainable.py``), the last in the driver (``callbacks.py``).
Plain Python, no Ray.
"""

from __future__ import annotations

import errno
import fnmatch
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INJECT_ENV = "NTKMTL_INJECT"
INJECT_KINDS = ("raise_once", "nan", "sleep", "write_error")


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``kind`` at ``epoch`` in trials whose name matches ``pattern``."""

    kind: str
    epoch: int
    pattern: str


def parse_faults(text: str | None) -> list[Fault]:
    """``KIND@EPOCH:PATTERN,…`` (the ``NTKMTL_INJECT`` variable) → faults, or ValueError."""
    faults = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        head, _, pattern = item.partition(":")
        kind, _, epoch = head.partition("@")
        if kind not in INJECT_KINDS or not (epoch.isdigit() or epoch == "*") or not pattern:
            raise ValueError(
                f"{INJECT_ENV}: {item!r} is not KIND@EPOCH:PATTERN with KIND one of {', '.join(INJECT_KINDS)} "
                "(e.g. raise_once@2:ls-seed0)"
            )
        faults.append(Fault(kind, -1 if epoch == "*" else int(epoch), pattern))
    return faults


def matching(faults: list[dict], run_name: str, epoch: int, kinds: tuple[str, ...]) -> list[dict]:
    """The faults (as dicts) of ``kinds`` that apply to this trial name and epoch."""
    return [
        f
        for f in faults
        if f["kind"] in kinds and f["epoch"] in (epoch, -1) and fnmatch.fnmatch(run_name, f["pattern"])
    ]


def inject_before_report(faults: list[dict], run_name: str, record: dict[str, Any]) -> None:
    """``nan``: the epoch's validation and test metrics become NaN."""
    for _ in matching(faults, run_name, record["epoch"], ("nan",)):
        for key in record:
            if key.startswith(("val_", "test_")):
                record[key] = float("nan")


def inject_after_report(faults: list[dict], run_name: str, epoch: int, trial_dir: str) -> None:
    """``sleep``: pause 2 s; ``raise_once``: raise, once per trial (a marker file remembers it)."""
    for fault in matching(faults, run_name, epoch, ("sleep", "raise_once")):
        if fault["kind"] == "sleep":
            time.sleep(2.0)
            continue
        marker = Path(trial_dir) / f".injected-raise-epoch{epoch}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError(f"{INJECT_ENV}: injected failure after epoch {epoch} of {run_name}")


_WRITE_ERRORS_DONE: set[tuple[str, int]] = set()


def inject_write_error(faults: list[dict], run_name: str, epoch: int) -> None:
    """``write_error``: raise ENOSPC for this row, once per (trial, epoch) in this process."""
    if matching(faults, run_name, epoch, ("write_error",)) and (run_name, epoch) not in _WRITE_ERRORS_DONE:
        _WRITE_ERRORS_DONE.add((run_name, epoch))
        raise OSError(errno.ENOSPC, f"No space left on device ({INJECT_ENV}: injected write error)")
