"""bench/driver_scale.py --smoke: every side (Ray Tune both ways, ntkmtl with both schedulers) ends with every result counted."""

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
    sides = ("plain", "plain_on_schedule", "none", "seed_asha")
    assert driver_scale.orders(3) == [sides, sides[::-1], sides]


def test_table_reports_medians_ranges_and_ratios_of_medians():
    runs = [
        {"side": side, "trials": 100, "cpu": cpu, "results": 400, "wall": wall}
        for side, cpu, wall in [
            ("plain", 16.0, 10),
            ("plain", 12.0, 12),
            ("plain", 40.0, 30),  # 40, 30, 100 ms: median 40
            ("plain_on_schedule", 8.0, 10),
            ("plain_on_schedule", 6.0, 12),
            ("plain_on_schedule", 20.0, 30),  # 20, 15, 50 ms: median 20
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
        "| 100 | 40.00 (30.00–100.00; 400 results, 12 s) | 20.00 (15.00–50.00; 400 results, 12 s) "
        "| 23.00 (22.50–25.00; 400 results, 10 s) | 25.00 (20.00–30.00; 400 results, 14 s) | 1.15 | 1.25 | 0.57 |"
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
    assert re.findall(r"; (\d+) results", row) == ["16"] * 4, row
    ratios = [float(x) for x in row.strip("| ").split(" | ")[-3:]]
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
