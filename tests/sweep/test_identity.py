"""A sweep's identity (issue 12, findings 2, 5 and 6), without Ray: a resume with a changed config
is refused naming the keys, an output directory belongs to one sweep, one driver per sweep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pyarrow.fs
import pytest
import yaml

from ntkmtl.sweep import identity
from ntkmtl.sweep.config import load_config
from ntkmtl.sweep.export import ParquetExporter
from ntkmtl.sweep.identity import DriverLock, SweepError, check_output_owner, check_resume_identity, write_identity
from ntkmtl.sweep.record import write_record
from ntkmtl.sweep.storage import parse_storage
from ntkmtl.sweep.storage_check import check_storage
from tests.sweep.test_storage import s3_server  # noqa: F401 - moto's S3 server fixture

BASE = {
    "name": "ident",
    "benchmark": "toy",
    "train": {"epochs": 3},
    "seeds": [0, 1],
    "methods": {"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}},
    "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
}


def config(tmp_path, *overrides, **changes):
    raw = {**BASE, "storage": str(tmp_path / "ray"), "output": str(tmp_path / "out"), **changes}
    path = tmp_path / "ident.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path, list(overrides), check_data=False)


def started(tmp_path):
    """What a first run leaves: the sweep record in the output, the identity and tuner.pkl in storage."""
    cfg = config(tmp_path)
    location = check_storage(cfg.storage, multi_node=False)
    write_record(cfg, [cfg.name])
    write_identity(cfg, location, [cfg.name])
    (tmp_path / "ray" / "ident" / "tuner.pkl").write_bytes(b"")
    return cfg, location


def test_resume_with_changed_trials_is_refused_naming_each_key(tmp_path):
    _, location = started(tmp_path)
    changed = config(tmp_path, f"output={tmp_path / 'NEW'}", "train.epochs=4", "methods={ls: {}}")
    with pytest.raises(SweepError) as error:
        check_resume_identity(changed, location, None)
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        "--resume: sweep 'ident' was started with another config (changed: "
    )
    assert "methods.ntkmtl: {'grid': {'ntk_exp': [0.5]}} -> <unset>" in message
    assert f"output: {tmp_path / 'out'} -> {tmp_path / 'NEW'}" in message and "train.epochs: 3 -> 4" in message
    assert "only max_concurrent, max_failures, resources, wandb may change" in message
    for fine in ("max_concurrent=2", "max_failures=3", "resources.cpu=2", "wandb.enabled=true"):
        check_resume_identity(config(tmp_path, fine), location, None)  # how trials run, not what they are
    with pytest.raises(SweepError, match=r"changed: seeds: \[0, 1\] -> \[0, 1, 2\]"):
        check_resume_identity(config(tmp_path, "seeds=[0,1,2]"), location, None)
    with pytest.raises(SweepError, match=r"early_stopping.grace_period: 1 -> 2"):  # the record alone suffices too
        (tmp_path / "ray" / "ident" / identity.IDENTITY_FILE).unlink()
        record = json.loads((tmp_path / "out" / "ident.sweep.json").read_text())
        check_resume_identity(config(tmp_path, "early_stopping.grace_period=2"), location, record)


# A sweep fingerprinted by ntkmtl 0.1, before the top-level `scheduler:` became `early_stopping:`:
# its config, and the trial settings and fingerprint 0.1 stored for it (identity.trial_settings,
# identity.fingerprint at commit 3a63474).
OLD_CONFIG = {
    "name": "old",
    "benchmark": "toy",
    "train": {"epochs": 3},
    "seeds": [0, 1],
    "methods": {"ls": {}, "ntkmtl": {"ntk_exp": {"low": 0.25, "high": 1.5}}},
    "search": {"type": "random", "samples": 2},
    "scheduler": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
    "output": "/srv/sweeps/old/out",
}
OLD_FINGERPRINT = "27890c768ce8"
OLD_TRIALS = {
    "benchmark": "toy",
    "data": {"data_seed": 0, "n_test": 128, "n_train": 512, "n_val": 128, "nan_targets": False, "noise": 0.05},
    "methods": {
        "ls": {"grid": {}},
        "ntkmtl": {"grid": {}, "ranges": {"ntk_exp": {"high": 1.5, "log": False, "low": 0.25}}},
    },
    "output": "/srv/sweeps/old/out",
    "scheduler": {
        "grace_period": 1,
        "metric": "val_delta_m",
        "mode": "min",
        "reduction_factor": 2.0,
        "type": "seed_asha",
    },
    "search": {"concurrent_samples": 0, "samples": 2, "seed": 0, "startup": None, "type": "random"},
    "seeds": [0, 1],
    "train": {"epochs": 3},
}


@pytest.mark.parametrize("key", ["scheduler", "early_stopping"])
def test_a_sweep_fingerprinted_before_the_rename_resumes_with_either_spelling(tmp_path, key):
    raw = {(key if k == "scheduler" else k): v for k, v in OLD_CONFIG.items()}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path, check_data=False)
    assert identity.trial_settings(cfg) == OLD_TRIALS and identity.fingerprint(cfg) == OLD_FINGERPRINT
    location = parse_storage(str(tmp_path / "ray"))
    stored = {"sweep": "old", "fingerprint": OLD_FINGERPRINT, "trials": OLD_TRIALS, "experiments": ["old"]}
    (tmp_path / "ray" / "old").mkdir(parents=True)
    (tmp_path / "ray" / "old" / identity.LEGACY_IDENTITY_FILE).write_text(json.dumps(stored))
    check_resume_identity(cfg, location, None)  # the identity file 0.1 wrote: it matches
    check_resume_identity(cfg, parse_storage(str(tmp_path / "none")), stored)  # and 0.1's sweep record
    with pytest.raises(SweepError, match=r"\(changed: early_stopping.reduction_factor: 2.0 -> 3.0\)"):
        check_resume_identity(load_config(path, [f"{key}.reduction_factor=3"], check_data=False), location, None)


def test_the_cli_refuses_a_changed_resume_in_one_line_before_ray_starts(tmp_path):
    started(tmp_path)
    command = [sys.executable, "-m", "ntkmtl.tune", str(tmp_path / "ident.yaml"), "--resume", "--set", "train.epochs=4"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "error: --resume: sweep 'ident' was started with another config (changed: train.epochs: 3 -> 4)"
    )


def test_an_output_directory_belongs_to_one_sweep(tmp_path):
    cfg, _ = started(tmp_path)
    other = config(tmp_path, "name=other")
    with pytest.raises(
        SweepError,
        match=r"^output .*/out belongs to sweep 'ident' \(its record ident.sweep.json\); one "
        r"directory holds one sweep's results: give sweep 'other' its own output",
    ):
        check_output_owner(other, fresh=True)
    (tmp_path / "out" / "ident.sweep.json").unlink()  # rows alone (a sweep from before records) mark it too
    ParquetExporter(tmp_path / "out", "ident", "toy", {}).add_record(
        "t0", {"config_id": "a", "method": "ls", "seed": 0, "hparams": {}}, {"epoch": 1, "status": "running"}
    )
    with pytest.raises(SweepError, match="holds rows of sweep 'ident'"):
        check_output_owner(other, fresh=True)
    with pytest.raises(
        SweepError, match="already holds rows of sweep 'ident' but its Ray experiment is not in this storage"
    ):
        check_output_owner(cfg, fresh=True)
    check_output_owner(cfg, fresh=False)  # its own sweep, resumed or extended


def lock_file(location, **fields):
    data = {"sweep": "ident", "token": "x", "started": time.time(), "heartbeat": time.time(), **fields}
    fs = location.filesystem or pyarrow.fs.LocalFileSystem()
    fs.create_dir(location.join("ident"), recursive=True)
    with fs.open_output_stream(location.join("ident", identity.LOCK_FILE)) as f:
        f.write(json.dumps(data).encode())


def check_lock(location, uri):
    first = DriverLock(location, "ident").acquire()
    try:
        with pytest.raises(SweepError) as error:
            DriverLock(location, "ident").acquire()
        message = str(error.value)
        assert message.startswith(
            f"sweep 'ident' is already running: driver pid {os.getpid()} on host "
            f"{socket.gethostname()} holds its lock {uri}/ident/{identity.LOCK_FILE} (since "
        )
        assert message.endswith(
            "a second driver would run its trials twice: wait for it to end, or stop it (Ctrl-C) and then --resume"
        )
    finally:
        first.release()
    DriverLock(location, "ident").acquire().release()  # released: free again
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file(location, host=socket.gethostname(), pid=dead.pid)  # a killed driver on this host
    taken = DriverLock(location, "ident").acquire()
    assert taken.taken_over.endswith(f"(driver pid {dead.pid} on {socket.gethostname()}: its process no longer exists)")
    taken.release()
    lock_file(location, host="elsewhere", pid=1, heartbeat=time.time() - 2 * identity.STALE_S)  # a dead remote driver
    taken = DriverLock(location, "ident").acquire()
    assert "no heartbeat for 120 s" in taken.taken_over
    taken.release()
    lock_file(location, host="elsewhere", pid=1)  # a live remote driver
    with pytest.raises(SweepError, match="driver pid 1 on host elsewhere"):
        DriverLock(location, "ident").acquire()


def test_one_driver_per_sweep_on_local_storage(tmp_path):
    location = parse_storage(str(tmp_path / "ray"))
    check_lock(location, str(tmp_path / "ray"))


def test_one_driver_per_sweep_on_s3(s3_server):  # noqa: F811
    location = check_storage({"path": "s3://sweeps/locks", "endpoint_url": s3_server}, multi_node=False)
    check_lock(location, "s3://sweeps/locks")


def test_the_heartbeat_keeps_a_long_running_drivers_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(identity, "HEARTBEAT_S", 0.05)
    location = parse_storage(str(tmp_path / "ray"))
    lock = DriverLock(location, "ident").acquire()
    first = json.loads((tmp_path / "ray" / "ident" / identity.LOCK_FILE).read_text())["heartbeat"]
    time.sleep(0.3)
    assert json.loads((tmp_path / "ray" / "ident" / identity.LOCK_FILE).read_text())["heartbeat"] > first
    lock.release()
    assert not (tmp_path / "ray" / "ident" / identity.LOCK_FILE).exists()
