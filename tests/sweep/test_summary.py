"""The end-of-sweep table is the report's table: same selection, same exclusions, same order.

    configuration        trials                                    selected val / test Δm
    ntkmtl ntk_exp=0.5   s0 val 5 2 3, test 6 4 1 (completed)       2 / 4   (epoch 2)
                         s1 val 4 4 1, test 5 5 2 (completed)       1 / 2   (epoch 3)
    ntkmtl ntk_exp=1     s0 val 0.5 nan (diverged)                  left out (its finite epoch too)
                         s1 val 8, test 7 (stopped early)           8 / 7
    famo gamma=0.01      s0 val 3, test 2 (completed)               3 / 2
    ls                   s0 val 20 30, test 21 31 (stopped early)   20 / 21

Sorted by test Δm (famo first), not by val Δm (which would put ntkmtl ntk_exp=0.5 first).
"""

from __future__ import annotations

import pandas as pd
import pytest

from ntkmtl.results.table import build_benchmark_report
from ntkmtl.sweep.summary import format_summary, summarize

NAN = float("nan")


def rows(trial, method, hps, seed, val, test, status):
    config_id = "-".join([method] + [f"{k}={v}" for k, v in sorted(hps.items())])
    return [
        {
            "sweep": "s",
            "trial_id": trial,
            "config_id": config_id,
            "benchmark": "toy",
            "method": method,
            "hp_ntk_exp": hps.get("ntk_exp", NAN),
            "hp_gamma": hps.get("gamma", NAN),
            "seed": seed,
            "epoch": e + 1,
            "status": status,
            "val_delta_m": v,
            "test_delta_m": t,
        }
        for e, (v, t) in enumerate(zip(val, test))
    ]


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.DataFrame(
        rows("t0", "ntkmtl", {"ntk_exp": 0.5}, 0, [5.0, 2.0, 3.0], [6.0, 4.0, 1.0], "completed")
        + rows("t1", "ntkmtl", {"ntk_exp": 0.5}, 1, [4.0, 4.0, 1.0], [5.0, 5.0, 2.0], "completed")
        + rows("t2", "ntkmtl", {"ntk_exp": 1.0}, 0, [0.5, NAN], [0.1, NAN], "diverged")
        + rows("t3", "ntkmtl", {"ntk_exp": 1.0}, 1, [8.0], [7.0], "stopped_early")
        + rows("t4", "famo", {"gamma": 0.01}, 0, [3.0], [2.0], "completed")
        + rows("t5", "ls", {}, 0, [20.0, 30.0], [21.0, 31.0], "stopped_early")
    )


def test_summary_selects_on_validation_leaves_diverged_out_and_sorts_by_test_delta_m(results):
    summary = summarize(results)
    assert list(summary["configuration"]) == ["famo gamma=0.01", "ntkmtl ntk_exp=0.5", "ntkmtl ntk_exp=1", "ls"]
    a = summary.set_index("configuration").loc["ntkmtl ntk_exp=0.5"]
    assert a["val_delta_m_mean"] == pytest.approx(1.5) and a["test_delta_m_mean"] == pytest.approx(3.0)
    assert a["val_delta_m_std"] == pytest.approx(0.7071, abs=1e-4) and a["selected_epochs"] == "2;3"
    b = summary.set_index("configuration").loc["ntkmtl ntk_exp=1"]
    # the diverged seed's finite epoch 1 (val 0.5) is not averaged in: only the stopped-early seed
    assert b["val_delta_m_mean"] == pytest.approx(8.0) and b["test_delta_m_mean"] == pytest.approx(7.0)
    assert (b["seeds"], b["trials"], b["diverged"], b["stopped_early"], b["completed"]) == (1, 2, 1, 1, 0)


def test_summary_is_the_reports_table(results):
    table = build_benchmark_report(results, "toy").table
    summary = summarize(results)
    for column in ("config_id", "seeds", "trials", "val_delta_m_mean", "test_delta_m_mean", "test_delta_m_std"):
        pd.testing.assert_series_equal(summary[column], table[column], check_names=False)


def test_formatted_summary_lines_and_footer(results):
    text = format_summary(summarize(results), wall_seconds=61.2)
    lines = text.splitlines()
    assert lines[1].startswith("famo gamma=0.01") and "3.00" in lines[1] and "2.00" in lines[1]
    assert "1.50 ± 0.71" in lines[2] and "3.00 ± 1.41" in lines[2]
    assert "1/2" in lines[3] and "unfinished" not in lines[0]
    assert lines[5] == "6 trials, 2 stopped early, 1 diverged, total time 61 s"
    assert format_summary(pd.DataFrame()) == "no results"


def test_the_sweep_layer_does_not_import_matplotlib():
    """The summary imports the results layer; it imports matplotlib only to draw plots."""
    import subprocess
    import sys

    code = "import sys, ntkmtl.sweep.summary; print('matplotlib' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
