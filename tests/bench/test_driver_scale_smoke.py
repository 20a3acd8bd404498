"""bench/driver_scale.py --smoke: both drivers and both schedulers end with every result counted."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import driver_scale  # noqa: E402


def test_sides_alternate_order_between_repeats():
    assert driver_scale.orders(3) == [
        ("plain", "none", "seed_asha"),
        ("seed_asha", "none", "plain"),
        ("plain", "none", "seed_asha"),
    ]


def test_table_reports_medians_ranges_and_ratios_of_medians():
    runs = [
        {"side": side, "trials": 100, "cpu": cpu, "results": 400, "wall": wall}
        for side, cpu, wall in [
            ("plain", 8.0, 10),
            ("plain", 6.0, 12),
            ("plain", 20.0, 30),  # 20, 15, 50 ms: median 20
            ("none", 10.0, 11),
            ("none", 9.0, 9),
            ("none", 9.2, 10),  # 25, 22.5, 23: median 23
            ("seed_asha", 12.0, 14),
            ("seed_asha", 8.0, 13),
            ("seed_asha", 10.0, 15),  # 30, 20, 25: median 25
        ]
    ]
    row = driver_scale.table(runs, epochs=4, repeats=3).splitlines()[-1]
    assert row == (
        "| 100 | 20.00 (15.00–50.00; 400 results, 12 s) | 23.00 (22.50–25.00; 400 results, 10 s) "
        "| 25.00 (20.00–30.00; 400 results, 14 s) | 1.15 | 1.25 |"
    )


@pytest.mark.slow
def test_smoke_run_reports_every_result_of_every_driver(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "driver_scale.py"), "--smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("| 8 |"))
    # 8 trials × 2 epochs = 16 results for plain Ray Tune and for ntkmtl (nothing is stopped early)
    assert re.findall(r"; (\d+) results", row) == ["16", "16", "16"], row
    ratios = [float(x) for x in row.strip("| ").split(" | ")[-2:]]
    assert all(0 < r < 50 for r in ratios), row


def test_odd_trial_counts_are_refused():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "driver_scale.py"), "--trials", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "even number" in result.stderr


@pytest.mark.slow
def test_only_runs_one_side_alone_and_counts_its_results(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "driver_scale.py"), "--smoke", "--only", "seed_asha"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("N=8 ")]
    assert len(lines) == 1 and re.search(r"^N=8 seed_asha: [\d.]+ ms/result \(16 results, \d+ s\)$", lines[0]), lines
    assert "| N trials |" not in result.stdout  # no comparison table from one side


def test_skip_forced_snapshots_leaves_ray_no_trigger_to_force_one(monkeypatch):
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    monkeypatch.setattr(
        _ExperimentCheckpointManager, "on_trial_checkpoint", _ExperimentCheckpointManager.on_trial_checkpoint
    )
    manager = _ExperimentCheckpointManager(storage=None, checkpoint_period=10, sync_every_n_trial_checkpoints=1)
    manager.on_trial_checkpoint("trial")
    assert manager._should_force_sync_up  # Ray's own: one checkpoint of a trial (num_to_keep=1) forces a snapshot
    manager._should_force_sync_up = False
    driver_scale.skip_forced_snapshots()
    manager.on_trial_checkpoint("trial")
    assert not manager._should_force_sync_up
