"""The end-of-sweep table: best epoch on validation, mean ± std over seeds, end statuses."""
from __future__ import annotations

import pandas as pd
import pytest

from ntkmtl.sweep.summary import format_summary, summarize


def rows(trial, config_id, method, ntk_exp, seed, val, test, status):
    return [
        {"trial_id": trial, "config_id": config_id, "method": method, "hp_ntk_exp": ntk_exp, "hp_max_norm": 1.0,
         "seed": seed, "epoch": e + 1, "status": status, "val_delta_m": v, "test_delta_m": t}
        for e, (v, t) in enumerate(zip(val, test))
    ]


def test_best_validation_epoch_is_selected_per_trial_and_averaged_over_seeds():
    df = pd.DataFrame(
        rows("t0", "A", "ntkmtl", 0.5, 0, [5.0, 2.0, 3.0], [6.0, 4.0, 1.0], "completed")
        + rows("t1", "A", "ntkmtl", 0.5, 1, [4.0, 4.0, 1.0], [5.0, 5.0, 2.0], "completed")
        + rows("t2", "B", "ntkmtl", 1.0, 0, [9.0, float("nan")], [9.0, float("nan")], "diverged")
        + rows("t3", "B", "ntkmtl", 1.0, 1, [8.0], [7.0], "stopped_early")
        + rows("t4", "C", "ls", None, 0, [20.0, 30.0], [21.0, 31.0], "stopped_early")
    )
    summary = summarize(df)
    a = summary.set_index("configuration").loc["ntkmtl ntk_exp=0.5"]
    # t0: best val 2.0 at epoch 2 (test 4.0); t1: best val 1.0 at epoch 3 (test 2.0)
    assert a["val_delta_m_mean"] == pytest.approx(1.5) and a["test_delta_m_mean"] == pytest.approx(3.0)
    assert a["val_delta_m_std"] == pytest.approx(0.7071, abs=1e-4) and a["best_epoch_mean"] == 2.5
    b = summary.set_index("configuration").loc["ntkmtl ntk_exp=1"]
    assert b["val_delta_m_mean"] == pytest.approx(8.5)
    assert (b["diverged"], b["stopped_early"], b["completed"]) == (1, 1, 0)
    assert list(summary["configuration"]) == ["ntkmtl ntk_exp=0.5", "ntkmtl ntk_exp=1", "ls"]
    text = format_summary(summary, wall_seconds=61.2)
    assert "1.50 ± 0.71" in text and "3.00 ± 1.41" in text
    assert text.splitlines()[-1] == "5 trials, 2 stopped early, total time 61 s"
