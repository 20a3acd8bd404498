"""Interrupted sweeps on Ray (issue 12): a seed-aware ASHA sweep whose driver is SIGKILLed (alone,
and with its whole process group) at several points ends as the uninterrupted one; corrupt trial
files are rebuilt by --resume; a second driver is refused; a write error stops the sweep resumably.

Every run is the CLI in a subprocess (its own Ray); each resume has a time limit that catches a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from ntkmtl.sweep.export import read_results  # noqa: E402
from ntkmtl.sweep.faults import INJECT_ENV  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
RESUME_LIMIT_S = 150  # a resume that has not ended by then hangs


def write_config(tmp_path: Path, name: str, **raw) -> Path:
    base = {
        "name": name,
        "benchmark": "toy",
        "data": {"n_train": 128, "n_val": 32, "n_test": 32},
        "train": {"epochs": 4},
        "seeds": [0, 1],
        "methods": {"ls": {}},
        "resources": {"cpu": 1},
        "storage": str(tmp_path / "ray"),
        "output": str(tmp_path / "out"),
        "max_failures": 1,
        **raw,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def rows(out: Path) -> int:
    return len(read_results(out)) if list(out.glob("*.parquet")) else 0


class Drivers:
    """The CLI runs a test starts, each in its own session; whatever is left of them is killed at the end."""

    def __init__(self):
        self.sessions: list[int] = []

    def start(self, config: Path, *args: str, **extra) -> subprocess.Popen:
        driver = subprocess.Popen(
            [sys.executable, "-m", "ntkmtl.tune", str(config), *args],
            env=env(**extra),
            cwd=config.parent,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.sessions.append(driver.pid)
        return driver

    def run(self, config: Path, *args: str, **extra) -> tuple[int, str]:
        driver = self.start(config, *args, **extra)
        try:
            output = driver.communicate(timeout=RESUME_LIMIT_S)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail(
                f"{' '.join(args) or 'the sweep'} did not end within {RESUME_LIMIT_S} s (a hang): "
                f"{driver.communicate()[0].decode()[-2000:]}"
            )
        return driver.returncode, output

    def wait_rows(self, driver: subprocess.Popen, out: Path, at_rows: int) -> None:
        deadline = time.monotonic() + 120
        while rows(out) < at_rows:
            assert driver.poll() is None, f"ended before {at_rows} rows: {driver.communicate()[0].decode()[-2000:]}"
            assert time.monotonic() < deadline, f"fewer than {at_rows} rows within 120 s"
            time.sleep(0.2)

    def kill_at(self, driver: subprocess.Popen, out: Path, at_rows: int, group: bool) -> None:
        self.wait_rows(driver, out, at_rows)
        if group:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started (a closed terminal)
        else:
            driver.kill()  # the driver process alone
        driver.wait()

    def close(self):
        for pid in self.sessions:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def drivers():
    d = Drivers()
    yield d
    d.close()


def outcome(out: Path):
    df = read_results(out)
    assert not df.duplicated(["trial_id", "epoch"]).any()
    per_trial = df.groupby(["config_id", "seed"]).agg(
        status=("status", "first"), epochs=("epoch", "max"), rows=("epoch", "count")
    )
    metrics = df.set_index(["config_id", "seed", "epoch"])["val_delta_m"].sort_index()
    return df, per_trial, metrics


SEED_ASHA = {
    "train": {"epochs": 4},
    "max_concurrent": 2,
    "methods": {"ls": {"max_norm": [0.0, 1e-9]}, "ntkmtl": {"ntk_exp": [0.5], "max_norm": [1e-9]}},
    "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
}


def test_a_seed_aware_sweep_killed_at_several_points_ends_as_the_uninterrupted_one(tmp_path, drivers):
    whole = tmp_path / "whole"
    whole.mkdir()
    code, log = drivers.run(write_config(whole, "asha", **SEED_ASHA))
    assert code == 0, log[-3000:]
    _, expected, expected_metrics = outcome(whole / "out")
    assert expected["status"].value_counts().to_dict() == {"stopped_early": 4, "completed": 2}
    assert int(expected["rows"].sum()) == 12  # ls max_norm 0: 2 x 4 epochs; the two clipped ones stopped at rung 1

    cut = tmp_path / "cut"
    cut.mkdir()
    config = write_config(cut, "asha", **SEED_ASHA)
    slow = {INJECT_ENV: "sleep@*:*"}  # 2 s per epoch: time to kill between rows
    driver = drivers.start(config, **slow)
    for at_rows, group in ((2, False), (5, True), (9, False)):  # the driver alone, its group, the driver again
        drivers.kill_at(driver, cut / "out", at_rows, group)
        driver = drivers.start(config, "--resume", **slow)
    code, log = drivers.run(config, "--resume", **slow) if driver.poll() is not None else (None, None)
    if code is None:
        try:
            log = driver.communicate(timeout=RESUME_LIMIT_S)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail(
                f"the last resume did not end within {RESUME_LIMIT_S} s (a hang): {driver.communicate()[0].decode()[-2000:]}"
            )
        code = driver.returncode
    assert code == 0, log[-3000:]
    df, found, found_metrics = outcome(cut / "out")
    print(
        f"rows expected {int(expected['rows'].sum())}, found {len(df)}, duplicated {int(df.duplicated(['trial_id', 'epoch']).sum())}"
    )
    assert found.to_dict() == expected.to_dict()  # the same decisions: statuses and epochs per trial
    assert found_metrics.index.equals(expected_metrics.index)
    assert found_metrics.to_numpy() == pytest.approx(expected_metrics.to_numpy(), rel=1e-9)


def test_corrupt_trial_files_are_rebuilt_by_resume_and_a_second_driver_is_refused(tmp_path, drivers):
    config = write_config(tmp_path, "corrupt", max_concurrent=1, max_failures=0)
    out = tmp_path / "out"
    driver = drivers.start(config, **{INJECT_ENV: "sleep@*:*"})
    drivers.wait_rows(driver, out, 1)
    code, second = drivers.run(config, "--resume")  # while the first driver runs
    assert code == 2 and second.strip().splitlines()[-1].startswith(
        "error: sweep 'corrupt' is already running: driver pid "
    ), second[-2000:]
    print(second.strip().splitlines()[-1])
    drivers.kill_at(driver, out, 5, group=True)  # seed 0 completed (4 rows), seed 1 running
    before = read_results(out)
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 2 and sorted(before.groupby("trial_id").size())[1] == 4, before
    assert set(before.groupby("trial_id")["status"].first()) == {"completed", "running"}
    for path in files:  # cut both files, the completed trial's and the running one's, to half
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, log = drivers.run(config, "--resume")
    assert code == 0, log[-3000:]
    rebuilt = next(line for line in log.splitlines() if line.startswith("resume: rebuilt"))
    assert rebuilt.startswith(f"resume: rebuilt 2 trial file(s) in {out}: ") and rebuilt.count("(corrupt: ") == 2
    after = read_results(out)
    print(
        f"rows expected 8, found {len(after)}, duplicated {int(after.duplicated(['trial_id', 'epoch']).sum())}; {rebuilt}"
    )
    assert len(after) == 8 and not after.duplicated(["trial_id", "epoch"]).any()
    assert set(after["status"]) == {"completed"} and set(before["trial_id"]) == set(after["trial_id"])
    assert "8 rows from 2 trials" in log


def test_a_write_error_during_the_run_stops_the_sweep_resumably(tmp_path, drivers):
    config = write_config(tmp_path, "full", train={"epochs": 3})
    code, log = drivers.run(config, **{INJECT_ENV: "write_error@2:ls-seed0"})
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1, log[-3000:]
    assert errors[0].startswith(f"error: output {tmp_path / 'out'}: cannot write the rows of trial ls-seed0 (")
    assert errors[0].endswith(
        "No space left on device (NTKMTL_INJECT: injected write error); the sweep stopped with its "
        "state saved: fix that, then continue with --resume (no row is lost)"
    )
    code, log = drivers.run(config, "--resume")
    assert code == 0, log[-3000:]
    after = read_results(tmp_path / "out")
    print(f"rows expected 6, found {len(after)}, duplicated {int(after.duplicated(['trial_id', 'epoch']).sum())}")
    assert (
        len(after) == 6 and not after.duplicated(["trial_id", "epoch"]).any() and set(after["status"]) == {"completed"}
    )


def whole_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_a_resume_from_a_snapshot_older_than_the_trials_checkpoints_ends_as_the_uninterrupted_one(tmp_path, drivers):
    """Ray snapshots on its own schedule (checkpoints.py): after a kill its newest snapshot may name
    checkpoints that num_to_keep=2 has deleted since. Made certain here: the snapshot of epoch ≤ 2
    is put back in place of the newer ones after the kill, when both trials are at epoch ≥ 4."""
    whole = tmp_path / "whole"
    whole.mkdir()
    fifo = {"train": {"epochs": 6}, "max_concurrent": 2}
    code, log = drivers.run(write_config(whole, "fifo", **fifo))
    assert code == 0, log[-3000:]
    _, expected, expected_metrics = outcome(whole / "out")

    cut = tmp_path / "cut"
    cut.mkdir()
    config, experiment = write_config(cut, "fifo", **fifo), cut / "ray" / "fifo"
    slow = {INJECT_ENV: "sleep@*:*", "TUNE_GLOBAL_CHECKPOINT_S": "1"}  # 2 s per epoch, a snapshot each second
    driver = drivers.start(config, **slow)
    deadline, old = time.monotonic() + 120, None
    while old is None:  # the first snapshot that names a checkpoint of each trial
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()[0].decode()[-2000:]
        for state in experiment.glob("experiment_state-*.json"):
            text = state.read_text()
            if text.count("checkpoint_00000") >= 2 and rows(cut / "out") <= 4 and whole_json(text):
                old = text  # (Ray copies it to storage in the background: a read may catch it half-written)
        time.sleep(0.1)
    assert "checkpoint_000003" not in old
    drivers.wait_rows(driver, cut / "out", 9)
    assert min(read_results(cut / "out").groupby("trial_id")["epoch"].max()) >= 4  # the old ones are deleted
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    for state in experiment.glob("experiment_state-*.json"):
        state.write_text(old)

    code, log = drivers.run(config, "--resume")
    assert code == 0, log[-3000:]
    settled = [line for line in log.splitlines() if line.startswith("resume: 2 trial(s) continue from their newest")]
    assert len(settled) == 1 and settled[0].count(" from epoch ") == 2, log[-3000:]
    df, found, found_metrics = outcome(cut / "out")
    print(settled[0])
    print(
        f"rows expected {int(expected['rows'].sum())}, found {len(df)}, duplicated {int(df.duplicated(['trial_id', 'epoch']).sum())}"
    )
    assert found.to_dict() == expected.to_dict()
    assert found_metrics.index.equals(expected_metrics.index)
    assert found_metrics.to_numpy() == pytest.approx(expected_metrics.to_numpy(), rel=1e-9)

    # the resumed session's snapshot cut short, as a kill during Ray's copy to storage leaves it:
    # --resume goes back to the session before (the stale snapshot) and still ends with the same rows
    newest = max(experiment.glob("experiment_state-*.json"))
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    code, log = drivers.run(config, "--resume")
    assert code == 0, log[-3000:]
    session = newest.name.removeprefix("experiment_state-").removesuffix(".json")
    assert f"resume: Ray's experiment state of session {session} in {experiment} is cut short" in log, log[-3000:]
    df, found, found_metrics = outcome(cut / "out")
    assert found.to_dict() == expected.to_dict() and len(df) == int(expected["rows"].sum())
    assert found_metrics.to_numpy() == pytest.approx(expected_metrics.to_numpy(), rel=1e-9)
