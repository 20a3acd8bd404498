"""No credential reaches Ray's runtime environments (which Ray logs in plain text).

Before: with WANDB_API_KEY and AWS_SECRET_ACCESS_KEY set and W&B offline, both values were in
``session_*/logs/runtime_env_agent.log`` under Ray's temp dir: Ray Tune copies AWS variables into
its trainables' runtime environment, Ray's W&B callback the key into its logging actor's. The
last test runs a toy sweep with planted fake secrets and greps every file it writes.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from ray.tune.execution import class_cache  # noqa: E402

from ntkmtl.sweep import secrets  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name",
    [
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "DB_PASSWORD",
        "GITHUB_TOKEN",
        "MY_PRIVATE_KEY",
    ],
)
def test_secret_looking_names(name):
    assert secrets.looks_secret(name)


@pytest.mark.parametrize(
    "name", ["RAY_AUTH_MODE", "PL_DISABLE_FORK", "WANDB_MODE", "PWD", "KEYBOARD", "TUNE_RESULT_DIR"]
)
def test_ordinary_names(name):
    assert not secrets.looks_secret(name)


def test_ray_tune_would_forward_aws_credentials_and_no_longer_does(monkeypatch):
    # Ray's list as Ray ships it: read in a fresh interpreter, since a sweep run earlier in this
    # process has already taken the credentials out of this process's copy
    import subprocess
    import sys

    shipped = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ray.tune.execution import class_cache as c; print('\\n'.join(sorted(c.ENV_VARS_TO_PROPAGATE)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} <= set(shipped)
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", set(shipped))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    assert secrets.withhold_from_trainables() == ["AWS_SECRET_ACCESS_KEY"]  # the ones set here
    left = set(class_cache.ENV_VARS_TO_PROPAGATE)
    assert not any(secrets.looks_secret(name) for name in left) and "PL_DISABLE_FORK" not in left
    assert "RAY_CHDIR_TO_TRIAL_DIR" in left  # Ray's own settings still travel


def test_the_wandb_logging_actor_gets_no_runtime_env(monkeypatch):
    from ray.air.integrations import wandb as ray_wandb

    monkeypatch.setattr(ray_wandb, "_force_on_current_node", lambda: {})
    monkeypatch.setenv("WANDB_API_KEY", "planted")
    callback = ray_wandb.WandbLoggerCallback(project="p", mode="offline")
    options = secrets.wandb_logging_actor(callback)._default_options
    assert options == {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1}


def test_messages_warn_about_a_job_environment_and_note_withheld_credentials_on_a_cluster():
    assert secrets.job_secrets({"env_vars": {"WANDB_API_KEY": "x", "OMP_NUM_THREADS": "1"}}) == ["WANDB_API_KEY"]
    assert secrets.messages(["AWS_SECRET_ACCESS_KEY"], [], cluster=False) == []  # local workers inherit them
    assert secrets.messages(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], ["WANDB_API_KEY"], cluster=True) == [
        "warning: the Ray job's runtime environment sets WANDB_API_KEY for every worker, and Ray writes runtime "
        "environments in plain text to its session logs (runtime_env_agent.log); set credentials on the nodes "
        "instead (docs/SWEEP.md#secrets)",
        "note: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are not passed to Ray's workers (Ray would write them to "
        "its session logs); workers on every node read credentials from their own environment or config files "
        "(docs/SWEEP.md#secrets)",
    ]


@pytest.mark.slow
def test_a_toy_sweep_writes_no_planted_secret_anywhere(tmp_path):
    planted = {
        "WANDB_API_KEY": f"wandbfake{uuid.uuid4().hex}",
        "AWS_SECRET_ACCESS_KEY": f"awsfake{uuid.uuid4().hex}",
        "AWS_ACCESS_KEY_ID": f"AKIAFAKE{uuid.uuid4().hex[:12].upper()}",
    }
    config = tmp_path / "secrets.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "secrets",
                "benchmark": "toy",
                "data": {"n_train": 64, "n_val": 16, "n_test": 16},
                "train": {"epochs": 2},
                "seeds": [0],
                "methods": {"ls": {}},
                "storage": str(tmp_path / "ray"),
                "output": str(tmp_path / "out"),
                "wandb": {"enabled": True, "mode": "offline", "dir": str(tmp_path / "wandb")},
            }
        )
    )
    (tmp_path / "wandb").mkdir()
    ray_tmp = Path(tempfile.mkdtemp(prefix="ntk", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    env = {**os.environ, **planted, "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(REPO)}
    env.pop("WANDB_MODE", None)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "ntkmtl.tune", str(config)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda: os.umask(0o077),
        )
        assert run.returncode == 0, run.stderr[-3000:]
        files = [p for root in (tmp_path, ray_tmp) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        runtime_logs = [p for p in files if p.name == "runtime_env_agent.log"]
        assert runtime_logs and "Creating runtime env" in runtime_logs[0].read_text()  # it logs env_vars …
        assert '"PL_DISABLE_FORK": "1"' in runtime_logs[0].read_text()  # … with their values
        assert any(p.suffix == ".parquet" for p in files) and any("offline-run" in str(p) for p in files)
        leaks = [(str(p), name) for p in files for name, value in planted.items() if value.encode() in p.read_bytes()]
        leaks += [("stdout/stderr", n) for n, v in planted.items() if v in run.stdout + run.stderr]
        assert leaks == []
        logs = [p for p in files if "/logs/" in str(p) and str(p).startswith(str(ray_tmp))]
        assert logs and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in logs)  # umask 077: private files
        assert stat.S_IMODE(ray_tmp.stat().st_mode) == 0o700  # and no one else may enter the temp dir
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
