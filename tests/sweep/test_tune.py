"""Sweeps of the toy benchmark on a local Ray instance (2 CPUs): rows, statuses, early stopping,
divergence, retries, and a driver killed mid-sweep then resumed.

One Ray instance serves the in-process sweeps of this module; the kill/resume test drives the
CLI in subprocesses (each with its own Ray) because it kills the driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")

from ntkmtl.sweep.config import load_config  # noqa: E402
from ntkmtl.sweep.export import read_results  # noqa: E402
from ntkmtl.sweep.faults import INJECT_ENV, parse_faults  # noqa: E402
from ntkmtl.sweep.tune import SweepError, run_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def write_config(tmp_path: Path, **raw) -> Path:
    base = {
        "benchmark": "toy",
        "train": {"epochs": 3},
        "seeds": [0, 1],
        "methods": {"ls": {}},
        "storage": str(tmp_path / "ray"),
        "output": str(tmp_path / "out"),
        "max_failures": 1,
    }
    base.update(raw)
    path = tmp_path / f"{base.get('name', 'sweep')}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def trial_table(df):
    """One row per trial: name, status, number of epochs."""
    return df.groupby("trial_id").agg(
        method=("method", "first"),
        seed=("seed", "first"),
        config=("config_id", "first"),
        hp_max_norm=("hp_max_norm", "first"),
        status=("status", "first"),
        epochs=("epoch", "count"),
        last=("epoch", "max"),
    )


def test_sweep_rows_statuses_divergence_and_retry(local_ray, tmp_path, monkeypatch):
    """4 trials: one raises once after epoch 2 (retried from its checkpoint), one's metrics turn NaN."""
    monkeypatch.setenv(INJECT_ENV, "raise_once@2:ls-seed0,nan@2:ntkmtl-ntk_exp=0.5-seed1")
    cfg = load_config(write_config(tmp_path, name="basic", methods={"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}}))
    outcome = run_sweep(cfg, verbose=0)
    df = read_results(tmp_path / "out")
    assert outcome.trials == 4 and outcome.errored == 0 and outcome.rows == len(df) == 3 + 3 + 3 + 2
    assert not df.duplicated(["trial_id", "epoch"]).any()
    trials = trial_table(df).set_index(
        df.groupby("trial_id")["method"].first() + df.groupby("trial_id")["seed"].first().astype(str)
    )
    assert trials.loc["ls0", "status"] == "completed" and trials.loc["ls0", "epochs"] == 3  # raised once, resumed
    assert trials.loc["ls1", "status"] == "completed"
    assert trials.loc["ntkmtl0", "status"] == "completed"
    assert trials.loc["ntkmtl1", "status"] == "diverged" and trials.loc["ntkmtl1", "last"] == 2
    assert trials.loc["ls0", "config"] == trials.loc["ls1", "config"] != trials.loc["ntkmtl0", "config"]
    assert set(df["sweep"]) == {"basic"} and set(df["benchmark"]) == {"toy"}
    assert {"train_loss_wave", "val_mae_wave", "test_delta_m", "weight_linear", "lr", "epoch_seconds"} <= set(
        df.columns
    )
    assert df.loc[df["method"] == "ls", "hp_ntk_exp"].isna().all()
    assert (df.loc[df["method"] == "ntkmtl", "hp_ntk_exp"] == 0.5).all()
    # the end-of-sweep table is the report's: the diverged seed is counted, not averaged (1 of 2 seeds used)
    assert "\n4 trials, 0 stopped early, 1 diverged, total time" in outcome.table
    ntkmtl_line = next(line for line in outcome.table.splitlines() if line.startswith("ntkmtl "))
    assert "ntk_exp=0.5" in ntkmtl_line and " 1/2 " in ntkmtl_line
    assert {"node_id", "hostname"} <= set(df.columns) and df["node_id"].notna().all()


def test_wandb_offline_logs_one_named_run_per_trial_without_a_key(local_ray, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = load_config(
        write_config(
            tmp_path,
            name="wb",
            seeds=[3],
            train={"epochs": 2},
            methods={"ntkmtl": {"ntk_exp": [0.75]}},
            wandb={"enabled": True, "mode": "offline", "dir": str(tmp_path / "wandb"), "project": "p"},
        )
    )
    run_sweep(cfg, verbose=0)
    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    # the run's protobuf log holds its name, its config keys and the per-epoch metrics
    log = next(runs[0].glob("*.wandb")).read_bytes()
    for text in (b"ntkmtl-ntk_exp=0.75-seed3", b"hp_ntk_exp", b"config_id", b"val_delta_m", b"train_loss_wave"):
        assert text in log, text


def test_asha_stops_the_clear_loser(local_ray, tmp_path):
    """max_norm 1e-9 clips every shared update to nothing: far behind after 2 epochs."""
    cfg = load_config(
        write_config(
            tmp_path,
            name="asha",
            seeds=[0],
            train={"epochs": 4},
            max_concurrent=1,
            methods={"ls": {"max_norm": [0.0, 1e-9]}},
            early_stopping={"type": "asha", "grace_period": 2, "reduction_factor": 2},
        )
    )
    run_sweep(cfg, verbose=0)
    trials = trial_table(read_results(tmp_path / "out")).set_index("hp_max_norm")
    assert trials.loc[0.0, "status"] == "completed" and trials.loc[0.0, "epochs"] == 4
    assert trials.loc[1e-9, "status"] == "stopped_early" and trials.loc[1e-9, "epochs"] == 2


def test_seed_aware_asha_decides_a_configurations_seeds_together(local_ray, tmp_path):
    """max_concurrent 2 = the seeds of one configuration: the good one reaches the rung first."""
    cfg = load_config(
        write_config(
            tmp_path,
            name="seedasha",
            seeds=[0, 1],
            train={"epochs": 4},
            max_concurrent=2,
            methods={"ls": {"max_norm": [0.0, 1e-9]}},
            early_stopping={"type": "seed_asha", "grace_period": 2, "reduction_factor": 2},
        )
    )
    outcome = run_sweep(cfg, verbose=0)
    df = read_results(tmp_path / "out")
    assert not df.duplicated(["trial_id", "epoch"]).any()
    trials = trial_table(df)
    for _, group in trials.groupby("config"):
        assert group["status"].nunique() == 1 and group["epochs"].nunique() == 1, group
    by_norm = trials.groupby("hp_max_norm").first()
    assert by_norm.loc[0.0, "status"] == "completed" and by_norm.loc[0.0, "epochs"] == 4
    assert by_norm.loc[1e-9, "status"] == "stopped_early" and by_norm.loc[1e-9, "epochs"] == 2
    assert outcome.trials == 4


def test_fault_injection_spec_is_validated():
    assert parse_faults("raise_once@2:ls-seed0, nan@*:ntkmtl*")[1].epoch == -1
    with pytest.raises(ValueError, match="KIND@EPOCH:PATTERN"):
        parse_faults("explode@2:ls")


def test_driver_killed_mid_sweep_resumes_with_every_row_exactly_once(tmp_path):
    config = write_config(tmp_path, name="killed", train={"epochs": 4})
    env = {**os.environ, INJECT_ENV: "sleep@*:*", "PYTHONPATH": str(REPO)}  # 2 s per epoch: time to kill
    out, experiment = tmp_path / "out", tmp_path / "ray" / "killed"
    driver = subprocess.Popen(
        [sys.executable, "-m", "ntkmtl.tune", str(config)],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = len(read_results(out)) if list(out.glob("*.parquet")) else 0
            if rows >= 2 and list(experiment.glob("experiment_state-*.json")):
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.25)
        else:
            pytest.fail("no rows within 120 s")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()
    before = read_results(out)
    assert 2 <= len(before) < 8 and set(before["status"]) == {"running"}
    resumed = subprocess.run(
        [sys.executable, "-m", "ntkmtl.tune", str(config), "--resume"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = read_results(out)
    assert len(after) == 8 and not after.duplicated(["trial_id", "epoch"]).any()
    assert set(after["status"]) == {"completed"} and set(before["trial_id"]) <= set(after["trial_id"])
    assert sorted(after.groupby("trial_id")["epoch"].apply(list).tolist()) == [[1, 2, 3, 4]] * 2
    with pytest.raises(SweepError, match="already exists.*--resume"):
        run_sweep(load_config(config, [f"storage={tmp_path / 'ray'}"]))  # refused before Ray starts


def test_benchmark_data_is_loaded_once_per_worker_process():
    from ntkmtl.sweep.trainable import cached_benchmark

    first = cached_benchmark("toy", {"n_train": 64, "n_val": 16, "n_test": 16})
    splits = first.splits()
    again = cached_benchmark("toy", {"n_test": 16, "n_val": 16, "n_train": 64})  # same options, any order
    assert again is first and again.splits() is splits
    assert cached_benchmark("toy", {"n_train": 65, "n_val": 16, "n_test": 16}) is not first
