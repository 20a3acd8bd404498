"""A sweep's identity and ownership: its fingerprint, its output directory, its one driver.

**Fingerprint.** ``trial_settings(cfg)`` is everything that defines the sweep's trials: the
benchmark, data options, training set-up, seeds, every method's grid and ranges, the early
stopping, the search, and the output directory its rows go to. It is stored (with its hash,
``fingerprint``) in the sweep record ``<output>/<name>.sweep.json`` (``record.write_record``)
and next to the Ray experiment, ``<storage>/<name>/ntkmtl-sweep.identity``. ``--resume`` compares the
config with it and refuses, in one line naming each changed key, when they differ: Ray restores
the trials as they were, so a changed setting would be silently ignored. Only ``RUN_SETTINGS``
(how the trials are run, not what they are) may change on resume.

**Ownership.** An output directory belongs to one sweep: its record is the marker (name and
fingerprint). Another sweep name is refused there, and so is a fresh start of the same name over
rows that exist (``--resume`` or ``--extend`` continue them).

**Lock.** ``DriverLock`` is a file ``<storage>/<name>/ntkmtl-driver.lock`` (host, pid, start and a
heartbeat rewritten every ``HEARTBEAT_S``): a second driver on a running sweep is refused. A lock
is stale, and taken over, when its driver ran on this host and its pid is gone, or when its
heartbeat is older than ``STALE_S`` (a driver on another host that died). Local paths and buckets
alike (``storefiles``). Plain Python, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ntkmtl.sweep import storefiles
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.storage import StorageLocation

IDENTITY_FILE = "ntkmtl-sweep.identity"  # JSON; not *.json (storefiles: Ray syncs those)
LEGACY_IDENTITY_FILE = "ntkmtl-sweep.json"  # ntkmtl 0.1
LOCK_FILE = "ntkmtl-driver.lock"
RUN_SETTINGS = ("max_concurrent", "max_failures", "resources", "wandb")
# A setting's key in the fingerprint when it differs from its config key: early stopping keeps the
# key it had before ``scheduler:`` was renamed ``early_stopping:``, so stored fingerprints still match.
FINGERPRINT_KEYS = {"early_stopping": "scheduler"}
HEARTBEAT_S = 10.0
STALE_S = 60.0


class SweepError(ValueError):
    """The sweep cannot start or resume (existing results, nothing to resume, storage, identity, lock)."""


# -- fingerprint ----------------------------------------------------------------------------------------
def trial_settings(cfg: SweepConfig) -> dict[str, Any]:
    """Everything that defines the sweep's trials (JSON-safe, keys sorted by json.dumps)."""
    methods = {
        m.name: {
            "grid": {k: list(v) for k, v in m.grid.items()},
            **({"ranges": {k: asdict(r) for k, r in m.ranges.items()}} if m.ranges else {}),
        }
        for m in cfg.methods
    }
    settings = {
        "benchmark": cfg.benchmark,
        "data": cfg.data,
        "train": cfg.train,
        "seeds": list(cfg.seeds),
        "methods": methods,
        FINGERPRINT_KEYS["early_stopping"]: asdict(cfg.early_stopping),
        "search": asdict(cfg.search) if cfg.search is not None else None,
        "output": str(Path(cfg.output).expanduser().absolute()),
    }
    return json.loads(json.dumps(settings, default=str))


def fingerprint(cfg: SweepConfig) -> str:
    text = json.dumps(trial_settings(cfg), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'train.epochs: 3 -> 5' for every key whose value differs (nested mappings compared by key)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif json.dumps(a, default=str) != json.dumps(b, default=str):
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def identity_path(location: StorageLocation, name: str) -> str:
    return location.join(name, IDENTITY_FILE)


def write_identity(cfg: SweepConfig, location: StorageLocation, experiments: list[str]) -> None:
    data = {
        "sweep": cfg.name,
        "fingerprint": fingerprint(cfg),
        "trials": trial_settings(cfg),
        "experiments": experiments,
    }
    storefiles.write_json(location.filesystem, identity_path(location, cfg.name), data)


def check_resume_identity(cfg: SweepConfig, location: StorageLocation, record: dict[str, Any] | None) -> None:
    """Refuse ``--resume`` with a config whose trials differ from the sweep's (one line, each key)."""
    try:
        stored = storefiles.read_json(location.filesystem, identity_path(location, cfg.name)) or storefiles.read_json(
            location.filesystem, location.join(cfg.name, LEGACY_IDENTITY_FILE)
        )
    except ValueError:
        stored = None
    stored = stored if stored and "trials" in stored else (record if record and "trials" in record else None)
    if stored is None:
        return  # a sweep from before fingerprints: nothing to compare with
    changed = [_as_config_key(change) for change in differences(stored["trials"], trial_settings(cfg))]
    if changed:
        raise SweepError(
            f"--resume: sweep {cfg.name!r} was started with another config (changed: {'; '.join(changed)}); a resume "
            f"continues the same trials, so only {', '.join(RUN_SETTINGS)} may change: restore these values, run the "
            "changed config as a new sweep (--set name=NEW_NAME), or, once it has finished, grow it with --extend"
        )


def _as_config_key(change: str) -> str:
    """A change of ``differences`` named by the config key (``early_stopping.…``), not the fingerprint's."""
    for config_key, stored_key in FINGERPRINT_KEYS.items():
        if change.startswith(f"{stored_key}."):
            return config_key + change[len(stored_key) :]
    return change


# -- ownership of the output ------------------------------------------------------------------------------
def check_output_owner(cfg: SweepConfig, fresh: bool) -> None:
    """Refuse an output directory that holds another sweep (or, for a ``fresh`` start, this one's rows)."""
    output = Path(cfg.output).expanduser()
    if not output.is_dir():
        return
    for record in sorted(output.glob("*.sweep.json")):
        other = record.name[: -len(".sweep.json")]
        if other != cfg.name:
            raise SweepError(
                f"output {output} belongs to sweep {other!r} (its record {record.name}); one directory holds one "
                f"sweep's results: give sweep {cfg.name!r} its own output (--set output=NEW_DIR), or continue "
                f"{other!r} under its own name"
            )
    names = _sweeps_in(output)
    others = sorted(names - {cfg.name})
    if others:
        raise SweepError(
            f"output {output} holds rows of sweep {others[0]!r}; one directory holds one sweep's results: give "
            f"sweep {cfg.name!r} its own output (--set output=NEW_DIR)"
        )
    if fresh and cfg.name in names:
        raise SweepError(
            f"output {output} already holds rows of sweep {cfg.name!r} but its Ray experiment is not in this storage: "
            "continue it with --resume (same storage), grow it with --extend, or choose another output"
        )


def _sweeps_in(output: Path) -> set[str]:
    names = set()
    for path in sorted(p for p in output.glob("*.parquet") if not p.name.startswith(".")):
        try:
            column = pq.read_table(path, columns=["sweep"])["sweep"]
        except Exception:  # noqa: BLE001 - a corrupt file is recovery's business, not ownership's
            continue
        names |= {v for v in column.to_pylist() if v}
    return names


# -- the driver lock --------------------------------------------------------------------------------------
class DriverLock:
    """One driver per sweep: ``acquire`` refuses a live holder, takes over a stale one."""

    def __init__(self, location: StorageLocation, name: str):
        self.location, self.name = location, name
        self.path = location.join(name, LOCK_FILE)
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.taken_over: str | None = None

    def acquire(self) -> "DriverLock":
        held = self._read()
        if held is not None:
            reason = stale_reason(held)
            if reason is None:
                raise SweepError(self.refusal(held))
            self.taken_over = (
                f"lock: took over the stale lock of sweep {self.name!r} (driver pid {held.get('pid')} on "
                f"{held.get('host')}: {reason})"
            )
        self._write(started=time.time())
        time.sleep(0.2)  # a racing driver wrote after us: the last writer wins, the other one stops
        again = self._read()
        if again is not None and again.get("token") != self.token:
            raise SweepError(self.refusal(again))
        self._thread = threading.Thread(target=self._beat, name="ntkmtl-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def refusal(self, held: dict[str, Any]) -> str:
        age = time.time() - float(held.get("heartbeat") or 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(held.get("started") or 0)))
        return (
            f"sweep {self.name!r} is already running: driver pid {held.get('pid')} on host {held.get('host')} holds "
            f"its lock {self.location.uri(self.name, LOCK_FILE)} (since {started}, heartbeat {age:.0f} s ago); a "
            "second driver would run its trials twice: wait for it to end, or stop it (Ctrl-C) and then --resume"
        )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = self._read()
        if held is not None and held.get("token") == self.token:
            storefiles.delete(self.location.filesystem, self.path)

    def _read(self) -> dict[str, Any] | None:
        try:
            held = storefiles.read_json(self.location.filesystem, self.path)
        except (ValueError, OSError):
            return {"pid": None, "host": None, "heartbeat": 0, "token": "unreadable"}  # stale by its heartbeat
        return held if isinstance(held, dict) else None

    def _write(self, started: float) -> None:
        self._started = started
        storefiles.write_json(
            self.location.filesystem,
            self.path,
            {
                "sweep": self.name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "token": self.token,
                "started": started,
                "heartbeat": time.time(),
            },
        )

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write(self._started)
            except OSError:
                continue  # storage briefly unreachable: the next beat tries again


def stale_reason(held: dict[str, Any]) -> str | None:
    """Why a lock's driver is gone (None: it runs)."""
    age = time.time() - float(held.get("heartbeat") or 0)
    if age > STALE_S:
        return f"no heartbeat for {age:.0f} s"
    pid = held.get("pid")
    if held.get("host") == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "its process no longer exists"
        except PermissionError:
            return None
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return "its process has exited"
        except (OSError, IndexError):
            pass
    return None
