"""Comparison statistics (ntkmtl.results: stats, baseline, compare_text) on hand-built rows, every value by hand.

Benchmark "toy", metrics ``acc`` (higher is better) and ``err`` (lower is better). Test values at
each trial's selected epoch (dyadic numbers, so equal means are exactly equal):

    configuration        seed  acc    err  test Δm
    ls max_norm=0        0     0.5    2.0  10
                         1     0.25   1.0  20
                         2     0.75   4.0  30
                         3     diverged (its finite epoch 1 must not count)
    ntkmtl ntk_exp=0.5   0     0.625  1.0   7     epoch 1 selected (val); epoch 2's test values
                         1     0.375  1.5  16     (acc 0.99, err 0.01, Δm -99) must not count
                         2     0.75   2.0  24
    famo gamma=0.01      0     0.5    2.0  10     seeds 0, 1 only: seed 0 equals ls's exactly
                         1     0.25   2.0  22
    uw                   5     0.5    3.0  40     no seed in common with ls: unpaired
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ntkmtl import report
from ntkmtl.results import compare_text, select, stats
from ntkmtl.results.baseline import Baseline
from ntkmtl.results.errors import ReportError
from ntkmtl.results.table import BenchmarkReport, build_benchmark_report
from ntkmtl.sweep.summary import format_summary, summarize

NAN = math.nan
DECLARED = {"acc": True, "err": False}
T_975 = {1: 12.706204736174707, 2: 4.302652729911275}  # Student-t 97.5 % quantiles (tables), 1 and 2 dof

# (method, hyperparameters, seed, status, epochs as (val Δm, test acc, test err, test Δm))
TRIALS = [
    ("ls", {"max_norm": 0.0}, 0, "completed", [(10, 0.5, 2.0, 10)]),
    ("ls", {"max_norm": 0.0}, 1, "completed", [(20, 0.25, 1.0, 20)]),
    ("ls", {"max_norm": 0.0}, 2, "completed", [(30, 0.75, 4.0, 30)]),
    ("ls", {"max_norm": 0.0}, 3, "diverged", [(1, 0.99, 0.01, -50), (NAN, NAN, NAN, NAN)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 0, "completed", [(1, 0.625, 1.0, 7), (5, 0.99, 0.01, -99)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 1, "completed", [(1, 0.375, 1.5, 16), (5, 0.99, 0.01, -99)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 2, "completed", [(1, 0.75, 2.0, 24), (5, 0.99, 0.01, -99)]),
    ("famo", {"gamma": 0.01}, 0, "completed", [(10, 0.5, 2.0, 10)]),
    ("famo", {"gamma": 0.01}, 1, "stopped_early", [(22, 0.25, 2.0, 22)]),
    ("uw", {}, 5, "completed", [(40, 0.5, 3.0, 40)]),
]


def config_id(method: str, hps: dict) -> str:
    return "-".join([method] + [f"{k}={v}" for k, v in sorted(hps.items())])


def results_frame(trials=TRIALS) -> pd.DataFrame:
    rows = []
    for index, (method, hps, seed, status, epochs) in enumerate(trials):
        for epoch, (val_dm, acc, err, test_dm) in enumerate(epochs, start=1):
            rows.append(
                {
                    "sweep": "cmp",
                    "trial_id": f"t{index:02d}",
                    "config_id": config_id(method, hps),
                    "benchmark": "toy",
                    "method": method,
                    "hp_gamma": hps.get("gamma", NAN),
                    "hp_max_norm": hps.get("max_norm", NAN),
                    "hp_ntk_exp": hps.get("ntk_exp", NAN),
                    "seed": seed,
                    "epoch": epoch,
                    "status": status,
                    "val_acc": acc,
                    "val_err": err,
                    "test_acc": acc,
                    "test_err": err,
                    "val_delta_m": val_dm,
                    "test_delta_m": test_dm,
                }
            )
    return pd.DataFrame(rows)


def build(df=None, **options) -> BenchmarkReport:
    return build_benchmark_report(results_frame() if df is None else df, "toy", declared=dict(DECLARED), **options)


def rows(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {r["method"]: r for _, r in table.iterrows()}


def rel(acc, err, acc_ref, err_ref) -> float:
    """Δm % by the formula, with the reference's metrics in place of the STL values."""
    return 100 * (-(acc - acc_ref) / acc_ref + (err - err_ref) / err_ref) / 2


def interval(d: list[float], dof: int) -> tuple[float, float, float]:
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    half = T_975[dof] * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half


def test_default_baseline_is_the_single_ls_configuration():
    result = build()
    assert result.baseline == Baseline("ls-max_norm=0.0", "ls max_norm=0", "ls")
    assert list(result.table["method"]) == ["ntkmtl", "famo", "ls", "uw"]  # still sorted by test Δm


def test_relative_delta_m_seed_by_seed():
    table = rows(build().table)
    ntk = [rel(0.625, 1.0, 0.5, 2.0), rel(0.375, 1.5, 0.25, 1.0), rel(0.75, 2.0, 0.75, 4.0)]
    assert ntk == [-37.5, 0.0, -25.0]
    assert table["ntkmtl"]["rel_delta_m_mean"] == pytest.approx(np.mean(ntk))
    assert table["ntkmtl"]["rel_delta_m_std"] == pytest.approx(np.std(ntk, ddof=1))
    assert table["ntkmtl"]["rel_paired_seeds"] == 3
    famo = [rel(0.5, 2.0, 0.5, 2.0), rel(0.25, 2.0, 0.25, 1.0)]  # seeds 0 and 1 only
    assert table["famo"]["rel_delta_m_mean"] == pytest.approx(25.0) == np.mean(famo)
    assert table["famo"]["rel_delta_m_std"] == pytest.approx(np.std(famo, ddof=1))
    # uw: no seed in common, so against ls's mean over its used seeds (acc 0.5, err 7/3); 1 seed: no std
    assert table["uw"]["rel_delta_m_mean"] == pytest.approx(rel(0.5, 3.0, 0.5, 7 / 3)) == pytest.approx(100 / 7)
    assert table["uw"]["rel_paired_seeds"] == 0 and math.isnan(table["uw"]["rel_delta_m_std"])
    assert table["ls"]["rel_delta_m_mean"] == 0.0 and table["ls"]["rel_delta_m_std"] == 0.0


def test_paired_difference_and_its_t_interval():
    table = rows(build().table)
    mean, low, high = interval([7 - 10, 16 - 20, 24 - 30], dof=2)
    # sd = sqrt(7/3), so the half-width is t · sqrt(7/3) / sqrt(3) = t · sqrt(7) / 3
    assert (mean, low, high) == pytest.approx(
        (-13 / 3, -13 / 3 - T_975[2] * math.sqrt(7) / 3, -13 / 3 + T_975[2] * math.sqrt(7) / 3)
    )
    assert (round(low, 3), round(high, 3)) == (-8.128, -0.539)
    ntk = table["ntkmtl"]
    assert (ntk["paired_diff_mean"], ntk["paired_diff_low"], ntk["paired_diff_high"]) == pytest.approx(
        (mean, low, high)
    )
    assert ntk["paired_n"] == 3 and ntk["paired_diff_high"] < 0  # excludes zero: beyond seed noise
    famo = table["famo"]
    mean, low, high = interval([10 - 10, 22 - 20], dof=1)
    assert (famo["paired_diff_mean"], famo["paired_diff_low"], famo["paired_diff_high"]) == pytest.approx(
        (mean, low, high)
    )
    assert (low, high) == pytest.approx((1 - 12.706204736174707, 1 + 12.706204736174707))
    uw = table["uw"]
    assert uw["paired_n"] == 0 and math.isnan(uw["paired_diff_mean"]) and compare_text.interval_text(uw) == "n/a"
    one = results_frame([t for t in TRIALS if not (t[0] in ("ntkmtl",) and t[2] > 0)])
    single = rows(build(one).table)["ntkmtl"]
    assert single["paired_diff_mean"] == -3 and math.isnan(single["paired_diff_low"])
    assert compare_text.interval_text(single) == "-3.00 [n/a]"  # one common seed: no interval


def test_wins_losses_ties_per_metric():
    table = rows(build().table)
    # ntkmtl: acc 0.5833 vs 0.5 (win), err 1.5 vs 2.333 (win)
    assert compare_text.record_text(table["ntkmtl"]) == "2/0/0"
    # famo over seeds 0, 1: acc 0.375 vs 0.375 (tie), err 2.0 vs 1.5 (loss)
    assert compare_text.record_text(table["famo"]) == "0/1/1"
    # uw, unpaired: acc 0.5 vs 0.5 (tie), err 3.0 vs 2.333 (loss)
    assert compare_text.record_text(table["uw"]) == "0/1/1"


def test_mean_rank_with_ties_shares_the_average_rank():
    table = rows(build().table)
    # acc (higher better): ntkmtl 0.583 → 1, ls 0.5 and uw 0.5 → (2 + 3) / 2 = 2.5 each, famo 0.375 → 4
    # err (lower better):  ntkmtl 1.5 → 1, famo 2.0 → 2, ls 2.333 → 3, uw 3.0 → 4
    expected = {"ntkmtl": (1 + 1) / 2, "ls": (2.5 + 3) / 2, "famo": (4 + 2) / 2, "uw": (2.5 + 4) / 2}
    assert {m: r["mean_rank"] for m, r in table.items()} == pytest.approx(expected)
    assert "mean_rank" in table["ntkmtl"]["best_in"].split(";")
    assert stats.mean_ranks(pd.DataFrame({"source": ["sweep"], "seeds": [1]}), []).isna().all()


def test_another_baseline_by_method_hyperparameters_or_config_id():
    by_label = build(baseline="ntkmtl ntk_exp=0.5")
    assert by_label.baseline.short == "ntkmtl"
    ls = rows(by_label.table)["ls"]
    mean, low, high = interval([10 - 7, 20 - 16, 30 - 24], dof=2)
    assert (ls["paired_diff_mean"], ls["paired_diff_low"], ls["paired_diff_high"]) == pytest.approx((mean, low, high))
    assert compare_text.record_text(ls) == "0/2/0"
    assert build(baseline="ntkmtl-ntk_exp=0.5").baseline == by_label.baseline  # a config_id
    assert build(baseline="none").baseline is None and "rel_delta_m_mean" in build(baseline="none").table


def test_baseline_that_names_nothing_or_several_configurations():
    with pytest.raises(
        ReportError, match="matches no configuration; configurations: ls max_norm=0; ntkmtl ntk_exp=0.5; famo"
    ):
        build(baseline="ntkmtl ntk_exp=2")
    two_ls = results_frame(TRIALS + [("ls", {"max_norm": 1.0}, 0, "completed", [(9, 0.5, 2.0, 9)])])
    default = build(two_ls)
    assert default.baseline is None and "2 ls configurations; choose one with --baseline" in default.comparison_note
    assert default.table["rel_delta_m_mean"].isna().all() and default.table["mean_rank"].notna().all()
    with pytest.raises(ReportError, match="matches 2 configurations"):
        build(two_ls, baseline="ls")
    assert build(two_ls, baseline="ls max_norm=1").baseline.label == "ls max_norm=1"
    assert build(two_ls, baseline="ls max_norm=0").baseline.short == "ls max_norm=0"  # two ls: full label


def test_cli_writes_the_columns_to_csv_and_markdown(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(select, "declared_metrics", lambda benchmark: dict(DECLARED))
    path = tmp_path / "results.parquet"
    results_frame().to_parquet(path, index=False)
    out = tmp_path / "out"
    assert report.main([str(path), "--out", str(out), "--no-plots"]) == 0
    csv = pd.read_csv(out / "toy.csv").set_index("method")
    assert csv.loc["ntkmtl", "paired_diff_mean"] == pytest.approx(-13 / 3)
    assert csv.loc["uw", "mean_rank"] == pytest.approx(3.25) and (csv["baseline"] == "ls-max_norm=0.0").all()
    markdown = (out / "toy.md").read_text()
    assert "| Δm vs ls % | test Δm − ls (95 % CI) | W/L/T vs ls | MR |" in markdown
    line = next(x for x in markdown.splitlines() if x.startswith("| 1 | ntkmtl"))
    assert "| -20.83 ± 19.09 | -4.33 [-8.13, -0.54] | 2/0/0 | **1.00** |" in line
    uw = next(x for x in markdown.splitlines() if x.startswith("| 4 | uw"))
    assert "| 14.29* | n/a | 0/1/1 | 3.25 |" in uw
    assert "| baseline | baseline | baseline | 2.75 |" in markdown and "baseline **ls max_norm=0**" in markdown
    assert report.main([str(path), "--out", str(out), "--baseline", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--baseline 'nope' matches no configuration" in err


def test_sweep_summary_shows_the_same_columns(monkeypatch):
    monkeypatch.setattr(select, "declared_metrics", lambda benchmark: dict(DECLARED))
    text = format_summary(summarize(results_frame(), baseline=None)).splitlines()
    assert "Δm vs ls %" in text[0] and "test Δm − ls [95% CI]" in text[0] and "W/L/T" in text[0] and "MR" in text[0]
    assert text[1].startswith("ntkmtl ntk_exp=0.5") and "-20.83 ± 19.09" in text[1]
    assert "-4.33 [-8.13, -0.54]" in text[1] and "2/0/0" in text[1] and "1.00" in text[1]
    assert "1.00 [-11.71, 13.71]" in text[2] and "baseline" in text[3] and "14.29*" in text[4]
    assert any(line.startswith("vs ls: ") for line in text) and any(line.startswith("MR = ") for line in text)


def test_sweep_cli_checks_the_baseline_against_its_plan_before_starting(capsys):
    from pathlib import Path

    from ntkmtl.tune import main

    config = str(Path(__file__).resolve().parents[1] / "tune_configs" / "toy.yaml")
    assert main([config, "--dry-run", "--baseline", "ntkmtl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline 'ntkmtl' matches 2 configurations" in err[0]
    assert main([config, "--dry-run", "--baseline", "ntkmtl ntk_exp=1"]) == 0
