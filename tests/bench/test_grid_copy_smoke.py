"""bench/grid_copy.py --smoke: both grids create every trial and the table has its row."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import grid_copy  # noqa: E402


def test_smoke_prints_one_row_for_twenty_trials(capsys):
    grid_copy.main(["--smoke"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 20 |")]
    assert len(rows) == 1 and rows[0].count(" s |") == 2, rows
