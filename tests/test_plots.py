"""The report's plots as a reader sees them: legend texts, epoch ticks, a search's samples as points.

Each plot's figure is captured just before it is saved (``plots._save``), so the tests read the
legend, the axis ticks and the drawn artists of the real figure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ntkmtl.results import labels, plots
from ntkmtl.results.table import build_benchmark_report

NAN = math.nan
DECLARED = {"acc": True}
NTKMTL_DEFAULTS = {"eps": 1e-8, "max_norm": 1.0, "n": 1}


def frame(trials, epochs: int = 3) -> pd.DataFrame:
    """trials: (method, hyperparameters, seed, test Δm, search or None); every epoch the same values."""
    rows = []
    for index, (method, hps, seed, test_dm, search) in enumerate(trials):
        cid = "-".join([method] + [f"{k}={v}" for k, v in sorted(hps.items())])
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "sweep": "p",
                    "trial_id": f"t{index:02d}",
                    "config_id": cid,
                    "benchmark": "toy",
                    "method": method,
                    **{f"hp_{k}": hps.get(k, NAN) for k in ("eps", "max_norm", "n", "ntk_exp")},
                    "seed": seed,
                    "epoch": epoch,
                    "status": "completed",
                    "val_acc": 0.5,
                    "test_acc": 0.5,
                    "val_delta_m": test_dm + 10 - epoch,
                    "test_delta_m": test_dm,
                    "search": search,
                    "weight_a": 1.0 * epoch if method.startswith("ntkmtl") else NAN,
                    "weight_b": 2.0 * epoch if method.startswith("ntkmtl") else NAN,
                }
            )
    return pd.DataFrame(rows)


GRID = [("ls", {"max_norm": 0.0}, s, 20.0 + s, None) for s in (0, 1)] + [
    ("ntkmtl", {**NTKMTL_DEFAULTS, "ntk_exp": e}, s, 10.0 * e + s, None) for e in (0.5, 1.0) for s in (0, 1)
]


@pytest.fixture
def figures(monkeypatch):
    """{plot file stem: the figure}, captured before it is saved and closed."""
    captured = {}
    save = plots._save

    def keep(fig, path):
        captured[path.stem] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return captured


def draw(df, tmp_path, figures):
    built = build_benchmark_report(df, "toy", declared=dict(DECLARED))
    plots.benchmark_plots(built, tmp_path)
    return figures


def legend(fig, index: int = 0) -> list[str]:
    return [t.get_text() for t in fig.axes[index].get_legend().get_texts()]


def test_labels_name_only_the_hyperparameters_that_vary_within_a_method(tmp_path, figures):
    figs = draw(frame(GRID), tmp_path, figures)
    assert sorted(legend(figs["toy_val_curves"])) == ["ls", "ntkmtl ntk_exp=0.5", "ntkmtl ntk_exp=1"]
    # ntk_exp is the x axis: the line is the method; ls (no ntk_exp) a dashed reference
    assert sorted(legend(figs["toy_delta_m_vs_ntk_exp"])) == ["ls", "ntkmtl"]
    titles = [ax.get_title() for ax in figs["toy_task_weights"].axes if ax.get_visible()]
    assert titles == ["ntkmtl ntk_exp=0.5", "ntkmtl ntk_exp=1"]
    assert "eps" not in figs["toy_val_curves"].axes[0].get_title()


def test_a_label_that_would_be_shared_keeps_the_configurations_apart():
    table = pd.DataFrame(
        {"source": ["sweep", "sweep"], "method": ["ls", "ls"], "config_id": ["a1", "b2"], "hp_max_norm": [0.0, 0.0]}
    )
    assert labels.varying_labels(table, ["hp_max_norm"]) == {"a1": "ls [a1]", "b2": "ls [b2]"}


def test_single_epoch_series_get_an_integer_epoch_axis(tmp_path, figures):
    figs = draw(frame(GRID, epochs=1), tmp_path, figures)
    for name in ("toy_val_curves", "toy_task_weights"):
        ax = figs[name].axes[0]
        assert list(ax.get_xticks()) == [1.0], name
        assert ax.get_xlim() == pytest.approx((0.5, 1.5)), name
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1"], name
    three = draw(frame(GRID, epochs=3), tmp_path, figures)["toy_val_curves"].axes[0]
    assert list(three.get_xticks()) == [1.0, 2.0, 3.0]


def test_a_search_is_drawn_as_points_with_each_seed(tmp_path, figures):
    rng = np.random.default_rng(0)
    samples = sorted(rng.uniform(0.25, 1.5, 6))
    search = [
        ("ntkmtl", {**NTKMTL_DEFAULTS, "ntk_exp": float(e)}, s, 10.0 * e + 3 * s, "optuna")
        for e in samples
        for s in (0, 1)
    ]
    grid = [("ntkmtl_sr", {"ntk_exp": e}, s, 5.0 + e + s, None) for e in (0.5, 1.0) for s in (0, 1)]
    ls = [t for t in GRID if t[0] == "ls"]
    ax = draw(frame(ls + grid + search), tmp_path, figures)["toy_delta_m_vs_ntk_exp"].axes[0]
    texts = legend(figures["toy_delta_m_vs_ntk_exp"])
    assert "ntkmtl (search: 6 samples; seeds as circles)" in texts and "ntkmtl_sr" in texts and "ls" in texts
    lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # error bars: (data line, caps, bars)
    searched = lines["ntkmtl (search: 6 samples; seeds as circles)"]
    assert searched.get_linestyle() == "None" and len(searched.get_xdata()) == 6  # means, not joined
    assert lines["ntkmtl_sr"].get_linestyle() == "-" and list(lines["ntkmtl_sr"].get_xdata()) == [0.5, 1.0]
    dots = [c for c in ax.collections if len(c.get_offsets()) == 12]
    assert len(dots) == 1  # 6 samples × 2 seeds, one dot per seed at its own test Δm
    offsets = dots[0].get_offsets()
    expected = sorted((e, 10.0 * e + 3 * s) for e in samples for s in (0, 1))
    assert np.asarray(sorted(map(tuple, np.asarray(offsets)))) == pytest.approx(np.asarray(expected))
