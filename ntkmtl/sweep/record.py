"""The sweep record ``<output>/<name>.sweep.json``: what a sweep's rows were made with.

It keeps the settings every trial's meaning depends on (benchmark, data options, training
set-up: ``defining_settings``), the sweep's Ray experiments, oldest first (the sweep's own, then
each ``--extend``'s, so that ``--resume`` continues the newest one), and its fingerprint (the
trial settings of ``identity.py``: what ``--resume`` may not change; an extension records its
grown config's). It marks the output directory as the sweep's (``identity.check_output_owner``).
Written atomically; plain Python, no Ray.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.identity import fingerprint, trial_settings


class RecordError(ValueError):
    """The sweep record exists but cannot be read; the message says what to do."""


def record_path(cfg: SweepConfig) -> Path:
    return Path(cfg.output).expanduser() / f"{cfg.name}.sweep.json"


def defining_settings(cfg: SweepConfig) -> dict[str, Any]:
    """What every trial's meaning depends on (also hashed into config_id)."""
    return {"benchmark": cfg.benchmark, "data": cfg.data, "train": cfg.train}


def read_record(cfg: SweepConfig) -> dict[str, Any] | None:
    path = record_path(cfg)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordError(
            f"{path}: not a readable sweep record ({error}); move it away to extend by the rows alone"
        ) from None


def write_record(cfg: SweepConfig, experiments: list[str]) -> None:
    """Write the record atomically (a crash never leaves half a file)."""
    path = record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sweep": cfg.name,
        **json.loads(json.dumps(defining_settings(cfg), default=str)),
        "experiments": experiments,
        "fingerprint": fingerprint(cfg),
        "trials": trial_settings(cfg),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def experiments(cfg: SweepConfig) -> list[str]:
    """The sweep's Ray experiments, oldest first (just the sweep's name when it has no record)."""
    record = read_record(cfg)
    return list(record["experiments"]) if record and record.get("experiments") else [cfg.name]
