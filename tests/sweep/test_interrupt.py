"""Stopping and resuming from the terminal: SIGTERM like Ctrl-C (exit 143, state saved, "continue
with --resume"), counts in the interrupted lines that agree, and none of Ray's own restore hints or
tracebacks about already deleted checkpoints.

Before: SIGTERM gave a C++ stack dump and exit 134; after an interruption with a trial not yet
started, the summary said "2 trials, 2 unfinished" and the last lines "4 rows from 3 trials",
"3 trial(s) unfinished"; Ray printed "Resume experiment with: Tuner.restore(...)" and, on a resume
after the driver was killed, ERROR tracebacks "Error handling checkpoint … FileNotFoundError".
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from ntkmtl.sweep import interrupt, ray_logs  # noqa: E402
from ntkmtl.sweep.export import read_results  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sigterm_handler():
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a known start: ray.init in an earlier test leaves its own handler
    interrupt._armed, interrupt.received = False, None
    yield
    signal.signal(signal.SIGTERM, saved[0])
    signal.signal(signal.SIGINT, saved[1])
    interrupt._armed, interrupt.received = False, None


def test_sigterm_does_what_sigint_does_and_sets_exit_143(sigterm_handler):
    calls = []
    signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))  # as Tune's handler during fit
    interrupt.rearm()
    assert signal.getsignal(signal.SIGTERM) is not interrupt._on_sigterm  # not armed: nothing changes
    interrupt.arm()
    assert interrupt.exit_code() == 130
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    assert calls == [signal.SIGINT] and interrupt.exit_code() == 143
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what ray.init does to it
    interrupt.rearm()
    assert signal.getsignal(signal.SIGTERM) is interrupt._on_sigterm
    signal.signal(signal.SIGINT, signal.default_int_handler)  # outside fit: KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    interrupt.disarm()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # what arm() found


def test_the_cli_leaves_sigterm_as_it_found_it(sigterm_handler, tmp_path):
    from ntkmtl.tune import main

    mine = lambda signum, frame: None  # noqa: E731
    signal.signal(signal.SIGTERM, mine)
    (tmp_path / "out").write_text("a file where the output should go")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"benchmark": "toy", "seeds": [0], "methods": {"ls": {}}, "output": str(tmp_path / "out")})
    )
    assert main([str(config)]) == 2 and signal.getsignal(signal.SIGTERM) is mine


def test_the_restore_hint_and_not_started_trials_warning_are_dropped_other_warnings_kept(caplog, monkeypatch):
    from ray.train._internal import checkpoint_manager

    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", checkpoint_manager._delete_fs_path)
    ray_logs.quiet_for_cli()
    ray_logs.quiet_for_cli()  # idempotent
    tune_logger = logging.getLogger("ray.tune.tune")
    assert sum(isinstance(f, ray_logs.RestoreHintFilter) for f in tune_logger.filters) == 1
    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    with caplog.at_level(logging.WARNING):
        tune_logger.warning(
            "Experiment has been interrupted, but the most recent state was saved.\n"
            'Resume experiment with: Tuner.restore(path="/x", trainable=...)'
        )
        tune_logger.warning("Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run.")
        analysis.warning(
            "Failed to fetch metrics for 1 trial(s):\n- ls-seed2: FileNotFoundError('Could not fetch "
            "metrics for ls-seed2: both result.json and progress.csv were not found at /x')"
        )
        analysis.warning("Failed to fetch metrics for 1 trial(s):\n- ls-seed1: OSError('disk gone')")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run.",
        "Failed to fetch metrics for 1 trial(s)",
    ]
    assert "disk gone" in caplog.records[1].getMessage()


def test_an_already_deleted_checkpoint_is_deleted_without_an_error(tmp_path, monkeypatch):
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal import checkpoint_manager
    from ray.train._internal.session import _TrainingResult

    raw = getattr(checkpoint_manager._delete_fs_path, "original", checkpoint_manager._delete_fs_path)
    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", raw)  # Ray's own; undone after the test
    manager = checkpoint_manager._CheckpointManager(CheckpointConfig(num_to_keep=1))
    paths = [tmp_path / f"checkpoint_00000{i}" for i in range(3)]
    for path in paths:
        path.mkdir()
    manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(paths[0])), {"epoch": 1}))
    paths[0].rmdir()  # deleted before the driver died; Ray's saved state still lists it
    with pytest.raises(FileNotFoundError):  # Ray as it is: the error the resume printed
        manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(paths[1])), {"epoch": 2}))
    manager = checkpoint_manager._CheckpointManager(CheckpointConfig(num_to_keep=1))
    manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(paths[1])), {"epoch": 2}))
    paths[1].rmdir()
    assert ray_logs.tolerate_deleted_checkpoints() and ray_logs.tolerate_deleted_checkpoints()
    manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(paths[2])), {"epoch": 3}))
    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [str(paths[2])]

    def refuse(fs, fs_path):
        raise PermissionError("read-only")

    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", refuse)
    ray_logs.tolerate_deleted_checkpoints()
    with pytest.raises(PermissionError):  # any other failure still surfaces
        checkpoint_manager._delete_fs_path(fs=None, fs_path=str(paths[2]))


@pytest.mark.slow
def test_sigterm_mid_sweep_stops_cleanly_with_agreeing_counts_and_resume_finishes(tmp_path):
    """3 trials on 2 CPUs (one pending), SIGTERM to the driver, then --resume."""
    config = tmp_path / "term.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "term",
                "benchmark": "toy",
                "data": {"n_train": 64, "n_val": 16, "n_test": 16},
                "train": {"epochs": 3},
                "seeds": [0, 1, 2],
                "methods": {"ls": {}},
                "resources": {"cpu": 1},
                "storage": str(tmp_path / "ray"),
                "output": str(tmp_path / "out"),
                "max_failures": 0,
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "NTKMTL_INJECT": "sleep@*:*"}
    command = [sys.executable, "-m", "ntkmtl.tune", str(config)]
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "out"
    deadline = time.monotonic() + 300  # a loaded 2-core machine takes a while to start Ray
    while time.monotonic() < deadline and driver.poll() is None:
        if list(out.glob("*.parquet")) and len(read_results(out)) >= 2:
            break
        time.sleep(0.25)
    else:
        driver.kill()
        pytest.fail(f"no 2 rows within 300 s or the sweep ended first: {driver.communicate()[1][-3000:]}")
    driver.send_signal(signal.SIGTERM)
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 143, stderr[-3000:]
    assert "SIGTERM received" not in stderr and "Tuner.restore" not in stdout + stderr
    rows = read_results(out)
    started, running = rows["trial_id"].nunique(), rows.loc[rows["status"] == "running", "trial_id"].nunique()
    waiting = 3 - started
    assert f"{started} trials, 0 stopped early, {running} unfinished" in stdout
    lines = stdout.splitlines() + stderr.splitlines()
    if waiting:
        assert (
            f"{len(rows)} rows from {started} trials in {out}; {waiting} trial(s) not started yet (read with" in stdout
        )
        assert f"interrupted: {running} trial(s) unfinished and {waiting} not started; continue with --resume" in lines
    else:
        assert f"interrupted: {running} trial(s) unfinished; continue with --resume" in lines

    resumed = subprocess.run(command + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    noise = [
        line
        for line in (resumed.stdout + resumed.stderr).splitlines()
        if "ERROR" in line or "Traceback" in line or "Tuner.restore" in line or "Failed to fetch metrics" in line
    ]
    assert noise == []
    after = read_results(out)
    assert (
        len(after) == 9 and not after.duplicated(["trial_id", "epoch"]).any() and set(after["status"]) == {"completed"}
    )
