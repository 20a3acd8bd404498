"""The report on a small hand-made Parquet data set whose every table number is known.

Benchmark "toy" with two metrics: ``acc`` (higher is better) and ``err`` (lower is better). Each
trial is a list of epochs (val Δm, test Δm, test acc, test err); val acc/err copy the test ones.

    config              seeds            selected test Δm      test acc          test err
    famo gamma=0.01     s0 completed     1.0 (epoch 3)         0.65              0.9
                        s1 stopped early 2.0 (epoch 1)         0.66              1.1
                        s2 running       -100 (left out by default)
    ntkmtl ntk_exp=0.5  s0 s1 s2         1, 2, 3 (epoch 3)     0.70 0.72 0.74    1.0 1.2 1.4
    ntkmtl ntk_exp=1    s0 s1            3, 4                  0.60 0.62         0.5 0.7
                        s2 diverged at epoch 2 (epoch 1 had test Δm -50: must not count)
    ls                  s0               7 (epoch 2; best TEST epoch is 3 with 6: no peeking)
                        s1               8 (val tie at epochs 2 and 3: the earliest wins)
                        s2               9 (epoch 1; statuses running, running, completed)
    uw                  s0 errored       nothing used: sorted last, blank cells
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from PIL import Image

from ntkmtl import report
from ntkmtl.results import markdown, plots, select
from ntkmtl.results.table import build_benchmark_report, build_reports

NAN = math.nan
DECLARED = {"acc": True, "err": False}

# (method, hyperparameters, seed, status per epoch, epochs as (val Δm, test Δm, test acc, test err))
TRIALS = [
    ("famo", {"gamma": 0.01}, 0, "completed", [(5, 5, 0.60, 1.5), (4, 3, 0.62, 1.2), (3, 1, 0.65, 0.9)]),
    ("famo", {"gamma": 0.01}, 1, "stopped_early", [(4, 2, 0.66, 1.1)]),
    ("famo", {"gamma": 0.01}, 2, "running", [(6, 0, 0.50, 2.0), (2, -100, 0.99, 0.1)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 0, "completed", [(5, 5, 0.60, 1.5), (4, 4, 0.65, 1.3), (3, 1, 0.70, 1.0)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 1, "completed", [(5, 6, 0.60, 1.5), (4, 5, 0.65, 1.4), (3, 2, 0.72, 1.2)]),
    ("ntkmtl", {"ntk_exp": 0.5}, 2, "completed", [(5, 7, 0.60, 1.5), (4, 6, 0.65, 1.5), (3, 3, 0.74, 1.4)]),
    ("ntkmtl", {"ntk_exp": 1.0}, 0, "completed", [(6, 3, 0.60, 0.5), (7, 2, 0.61, 0.4), (8, 1, 0.62, 0.3)]),
    ("ntkmtl", {"ntk_exp": 1.0}, 1, "completed", [(9, 9, 0.50, 0.9), (5, 4, 0.62, 0.7), (6, 3, 0.63, 0.6)]),
    ("ntkmtl", {"ntk_exp": 1.0}, 2, "diverged", [(1, -50, 0.99, 0.1), (NAN, NAN, NAN, NAN)]),
    ("ls", {}, 0, "completed", [(10, 9, 0.50, 2.0), (8, 7, 0.55, 1.8), (9, 6, 0.60, 1.7)]),
    ("ls", {}, 1, "completed", [(9, 8, 0.52, 1.9), (7, 8, 0.56, 1.7), (7, 5, 0.58, 1.6)]),
    ("ls", {}, 2, ["running", "running", "completed"], [(8, 9, 0.54, 1.8), (9, 9, 0.50, 1.9), (10, 10, 0.49, 2.0)]),
    ("uw", {}, 0, "errored", [(3, 3, 0.70, 1.0)]),
]
EPOCH_SECONDS = {"ls": [3.0, 1.0, 1.0], "ntkmtl": [6.0, 4.0, 4.0], "famo": [1.2, 1.2, 1.2], "uw": [2.0]}


def config_id(method: str, hps: dict) -> str:
    return "-".join([method] + [f"{k}={v}" for k, v in sorted(hps.items())])


def results_frame(benchmark: str = "toy") -> pd.DataFrame:
    rows = []
    for trial_index, (method, hps, seed, status, epochs) in enumerate(TRIALS):
        statuses = status if isinstance(status, list) else [status] * len(epochs)
        for epoch, (val_dm, test_dm, acc, err) in enumerate(epochs, start=1):
            rows.append(
                {
                    "sweep": "s1",
                    "trial_id": f"t{trial_index:02d}",
                    "config_id": config_id(method, hps),
                    "benchmark": benchmark,
                    "method": method,
                    "hp_gamma": hps.get("gamma", NAN),
                    "hp_ntk_exp": hps.get("ntk_exp", NAN),
                    "seed": seed,
                    "epoch": epoch,
                    "status": statuses[epoch - 1],
                    "train_loss_a": 1.0 / epoch,
                    "train_loss_b": 2.0 / epoch,
                    "val_acc": acc,
                    "val_err": err,
                    "test_acc": acc,
                    "test_err": err,
                    "val_delta_m": val_dm,
                    "test_delta_m": test_dm,
                    "weight_a": 1.0 + epoch if method == "ntkmtl" else NAN,
                    "weight_b": 2.0 * epoch if method == "ntkmtl" else NAN,
                    "lr": 1e-3,
                    "epoch_seconds": EPOCH_SECONDS[method][epoch - 1],
                    "samples_per_second": 100.0,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.parquet"
    results_frame().to_parquet(path, index=False)
    return path


@pytest.fixture
def declared(monkeypatch):
    """The CLI reads metric directions from the benchmark; here they are the data set's own."""
    monkeypatch.setattr(select, "declared_metrics", lambda benchmark: dict(DECLARED))


def build(**options):
    return build_benchmark_report(results_frame(), "toy", declared=dict(DECLARED), **options)


def by_method(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {f"{r['method']} {r['hyperparameters']}".strip(): r for _, r in table.iterrows()}


def test_selected_epochs_use_validation_only():
    trials = build().trials.set_index("trial_id")
    # ls seed 0: best val at epoch 2 (8) although the best test value is at epoch 3 (6).
    assert trials.loc["t09", "selected_epoch"] == 2 and trials.loc["t09", "test_delta_m"] == 7
    assert trials.loc["t10", "selected_epoch"] == 2  # val tie 7 = 7: the earliest epoch
    assert trials.loc["t11", "selected_epoch"] == 1
    assert trials.loc["t11", "status"] == "completed"  # the status of the trial's last row
    assert trials.loc["t06", "selected_epoch"] == 1  # lower is better: 6 < 7 < 8
    assert list(trials["used"]) == [True, True, False, True, True, True, True, True, False, True, True, True, False]
    assert trials.loc["t02", "excluded_because"] == "running"
    assert trials.loc["t08", "excluded_because"] == "diverged"
    assert trials.loc["t12", "excluded_because"] == "errored"


def test_select_by_another_metric_takes_its_direction():
    trials = build(select_by="val_acc").trials.set_index("trial_id")
    assert trials.loc["t06", "selected_epoch"] == 3  # acc: higher is better
    assert build(select_by="val_err").trials.set_index("trial_id").loc["t06", "selected_epoch"] == 3
    assert build(select_by="val_acc", select_mode="min").trials.set_index("trial_id").loc["t06", "selected_epoch"] == 1


def test_table_means_stds_counts_exactly():
    table = build().table
    assert list(table["method"] + " " + table["hyperparameters"]) == [
        "famo gamma=0.01",
        "ntkmtl ntk_exp=0.5",
        "ntkmtl ntk_exp=1",
        "ls ",
        "uw ",
    ]
    rows = by_method(table)
    famo, ntk05, ntk1, ls, uw = (
        rows[k] for k in ("famo gamma=0.01", "ntkmtl ntk_exp=0.5", "ntkmtl ntk_exp=1", "ls", "uw")
    )
    # sample std, ddof = 1
    assert famo["test_delta_m_mean"] == pytest.approx(1.5) and famo["test_delta_m_std"] == pytest.approx(math.sqrt(0.5))
    assert famo["test_acc_mean"] == pytest.approx(0.655) and famo["test_err_mean"] == pytest.approx(1.0)
    assert (famo["seeds"], famo["trials"], famo["stopped_early"], famo["running"]) == (2, 3, 1, 1)
    assert famo["selected_epochs"] == "3;1"
    assert ntk05["test_delta_m_mean"] == pytest.approx(2.0) and ntk05["test_delta_m_std"] == pytest.approx(1.0)
    assert ntk05["test_acc_mean"] == pytest.approx(0.72) and ntk05["test_acc_std"] == pytest.approx(0.02)
    assert ntk05["test_err_mean"] == pytest.approx(1.2) and ntk05["test_err_std"] == pytest.approx(0.2)
    assert ntk05["val_delta_m_mean"] == pytest.approx(3.0) and ntk05["val_delta_m_std"] == pytest.approx(0.0)
    # the diverged seed's earlier epoch (test Δm -50) is not mixed in
    assert ntk1["test_delta_m_mean"] == pytest.approx(3.5) and ntk1["test_delta_m_std"] == pytest.approx(math.sqrt(0.5))
    assert ntk1["test_err_mean"] == pytest.approx(0.6)
    assert (ntk1["seeds"], ntk1["diverged"], ntk1["selected_epochs"]) == (2, 1, "1;2")
    assert ls["test_delta_m_mean"] == pytest.approx(8.0) and ls["test_delta_m_std"] == pytest.approx(1.0)
    assert ls["test_err_mean"] == pytest.approx(5.3 / 3) and ls["test_err_std"] == pytest.approx(math.sqrt(1 / 300))
    assert (uw["seeds"], uw["errored"]) == (0, 1) and math.isnan(uw["test_delta_m_mean"])


def test_best_value_per_column_follows_direction():
    best = {k: r["best_in"] for k, r in by_method(build().table).items()}
    # MR: acc ranks ntkmtl 0.5 (0.72) 1, famo (0.655) 2, ntkmtl 1 (0.61) 3, ls (0.55) 4; err ranks
    # ntkmtl 1 (0.6) 1, famo (1.0) 2, ntkmtl 0.5 (1.2) 3, ls (1.77) 4: three configurations tie at MR 2.
    assert best["famo gamma=0.01"] == "test_delta_m;mean_rank"
    assert best["ntkmtl ntk_exp=0.5"] == "val_delta_m;test_acc;mean_rank"  # acc: higher is better
    assert best["ntkmtl ntk_exp=1"] == "test_err;mean_rank"  # err: lower is better
    assert best["ls"] == "" and best["uw"] == ""


def test_running_and_stopped_options():
    famo = by_method(build(include_running=True).table)["famo gamma=0.01"]
    assert famo["seeds"] == 3 and famo["test_delta_m_mean"] == pytest.approx(-97.0 / 3)
    assert famo["selected_epochs"] == "3;1;2"
    table = build(exclude_stopped=True).table
    famo = by_method(table)["famo gamma=0.01"]
    assert famo["seeds"] == 1 and famo["test_delta_m_mean"] == 1.0 and math.isnan(famo["test_delta_m_std"])
    assert table.iloc[0]["method"] == "famo"


def test_paper_rows_compare_but_are_never_best():
    df = results_frame("nyuv2")
    table = build_benchmark_report(df, "nyuv2", declared=dict(DECLARED), paper=True).table
    paper = table[table["source"] == "paper"].set_index("method")
    assert paper.loc["ntkmtl", "test_delta_m_mean"] == -6.99 and paper.loc["ntkmtl", "test_delta_m_std"] == 0.38
    assert paper.loc["ls", "test_delta_m_mean"] == 5.59 and len(paper) == 6
    assert table.iloc[0]["source"] == "paper"  # sorted by Δm with the measured rows
    assert (
        table.loc[table["method"].eq("famo") & table["source"].eq("sweep"), "best_in"].item()
        == "test_delta_m;mean_rank"
    )
    assert (table.loc[table["source"] == "paper", "best_in"] == "").all()
    assert table.loc[table["source"] == "paper", "mean_rank"].isna().all()


def test_markdown_marks_best_and_flags_partial_trials():
    text = markdown.markdown_table(build())
    lines = text.splitlines()
    assert lines[0].startswith("| # | method | hyperparameters | seeds | test Δm % | val Δm % | acc ↑ | err ↓ |")
    famo = lines[2]
    assert famo.startswith("| 1 | famo | gamma=0.01 | 2/3 | **1.50 ± 0.71** | ")
    assert "1 stopped early; 1 running (left out)" in famo
    assert "| **0.7200 ± 0.0200** |" in lines[3] and "| **0.600 ± 0.141** |" in lines[4]
    assert "1 diverged (left out)" in lines[4]
    assert lines[6].startswith("| 5 | uw |  | 0/1 |  |  |  |  |") and "1 errored (left out)" in lines[6]


def test_time_relative_to_ls():
    ratios = plots.epoch_time_ratios(build())
    assert ratios.to_dict() == pytest.approx({"ls": 1.0, "famo": 1.2, "ntkmtl": 4.0})


def test_cli_writes_tables_and_png_plots(results, tmp_path, declared, capsys):
    out = tmp_path / "out"
    assert report.main([str(results), "--out", str(out)]) == 0
    csv = pd.read_csv(out / "toy.csv")
    assert list(csv["method"]) == ["famo", "ntkmtl", "ntkmtl", "ls", "uw"]
    assert csv.loc[1, "test_delta_m_mean"] == pytest.approx(2.0)
    assert len(pd.read_csv(out / "toy_trials.csv")) == len(TRIALS)
    markdown = (out / "toy.md").read_text()
    assert "**1.50 ± 0.71**" in markdown and "![val_curves](toy_val_curves.png)" in markdown
    sizes = {
        "delta_m_vs_ntk_exp": (800, 500),
        "val_curves": (800, 500),
        "time_vs_ls": (800, 500),
        "task_weights": plots.weight_figure_pixels(2),
    }
    for name, size in sizes.items():
        with Image.open(out / f"toy_{name}.png") as image:
            assert image.format == "PNG" and image.size == size
    assert plots.weight_figure_pixels(2) == (1000, 350) and plots.weight_figure_pixels(4) == (1500, 700)
    assert "best test Δm 1.50 % by famo gamma=0.01" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["MISSING"], "does not exist"),
        (["EMPTY"], "hold no rows"),
        (["RESULTS", "--select-by", "val_nope"], "no such column"),
        (["RESULTS", "--select-by", "test_delta_m"], "not a validation column"),
        (["RESULTS", "--benchmark", "qm9"], "not in the results"),
        (["UNKNOWN"], "unknown benchmark 'mystery'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, results, tmp_path, capsys):
    empty = tmp_path / "empty.parquet"
    results_frame().iloc[:0].to_parquet(empty)
    unknown = tmp_path / "unknown.parquet"
    results_frame("mystery").to_parquet(unknown)
    paths = {"MISSING": str(tmp_path / "nope"), "EMPTY": str(empty), "RESULTS": str(results), "UNKNOWN": str(unknown)}
    assert report.main([paths.get(a, a) for a in args] + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("ntkmtl.report: error: ")


def test_declared_metrics_come_from_the_benchmark():
    from ntkmtl.benchmarks import benchmark_class

    expected = {m.name: m.higher_is_better for m in benchmark_class("toy")().metrics}
    assert select.declared_metrics("toy") == expected and expected


def test_wandb_offline_writes_a_run_directory(results, tmp_path, declared, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "out"
    assert report.main([str(results), "--out", str(out), "--wandb", "--paper"]) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    media = runs[0] / "files" / "media"
    assert len(list((media / "images" / "toy").glob("*.png"))) == 4
    assert len(list((media / "table" / "toy").glob("*.table.json"))) == 1


def test_wandb_online_without_key_fails_before_any_work(results, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    out = tmp_path / "out"
    assert report.main([str(results), "--out", str(out), "--wandb"]) == 2
    assert "API key" in capsys.readouterr().err and not out.exists()


def test_trial_without_a_finite_selection_value_is_flagged_not_used():
    df = results_frame()
    df.loc[df["trial_id"] == "t09", "val_delta_m"] = NAN  # ls seed 0, status completed
    result = build_benchmark_report(df, "toy", declared=dict(DECLARED))
    ls = by_method(result.table)["ls"]
    assert (ls["seeds"], ls["completed"], ls["no_valid_epoch"]) == (2, 3, 1)
    assert ls["test_delta_m_mean"] == pytest.approx(8.5)
    assert "1 without a finite val_delta_m (left out)" in markdown.markdown_table(result)


def test_several_benchmarks_keep_their_own_metrics():
    other = results_frame("nyuv2").assign(val_depth=1.0, test_depth=2.0)
    df = pd.concat([results_frame(), other], ignore_index=True)
    reports = build_reports(df, select_by="val_delta_m", declared=dict(DECLARED))
    assert [r.benchmark for r in reports] == ["nyuv2", "toy"]
    assert [m for m, _ in reports[0].metrics] == ["acc", "err", "depth"]
    assert [m for m, _ in reports[1].metrics] == ["acc", "err"]
    assert reports[1].table["test_delta_m_mean"].iloc[0] == pytest.approx(1.5)


def test_a_sweep_that_only_started_reports_counts_and_no_numbers():
    df = results_frame().assign(status="running")
    table = build_benchmark_report(df, "toy", declared=dict(DECLARED)).table
    assert (table["seeds"] == 0).all() and table["test_delta_m_mean"].isna().all()
    assert table["running"].sum() == len(TRIALS)
