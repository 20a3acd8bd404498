"""Ranges and the search section of a sweep config: parsed, checked, shown by --dry-run (no Ray)."""

from __future__ import annotations

import pytest

from ntkmtl.sweep.config import ConfigError, parse_config
from ntkmtl.sweep.plan import build_plan, dry_run_table, hparam_kinds
from ntkmtl.sweep.space import Range, SearchSettings


def raw(**changes):
    base = {
        "benchmark": "toy",
        "train": {"epochs": 2},
        "seeds": [0, 1],
        "methods": {"ls": {}, "ntkmtl": {"ntk_exp": {"low": 0.25, "high": 1.5}}},
        "search": {"type": "optuna", "samples": 6, "seed": 3},
    }
    base.update(changes)
    return base


def test_a_range_makes_the_method_searched_and_grids_stay_grids():
    cfg = parse_config(raw(), check_data=False)
    ntkmtl = next(m for m in cfg.methods if m.name == "ntkmtl")
    assert ntkmtl.ranges == {"ntk_exp": Range(0.25, 1.5, False)} and ntkmtl.grid == {}
    assert cfg.search == SearchSettings(type="optuna", samples=6, seed=3)
    assert cfg.search.startup_samples == 2  # min(10, max(2, 6 // 3))
    specs = build_plan(cfg)
    assert [s.method for s in specs] == ["ls", "ls"]  # searched trials are sampled at run time
    assert "ntk_exp" in hparam_kinds(specs, cfg) and "ntk_exp" not in hparam_kinds(specs)
    log = parse_config(
        raw(methods={"ntkmtl": {"ntk_exp": {"low": 0.1, "high": 2, "log": True}, "n": [1, 2]}}), check_data=False
    )
    assert log.methods[0].ranges["ntk_exp"] == Range(0.1, 2.0, True) and log.methods[0].grid == {"n": (1, 2)}


def test_dry_run_states_samples_times_seeds():
    cfg = parse_config(raw(), check_data=False)
    text = dry_run_table(cfg, build_plan(cfg), cpus=2, gpus=0)
    assert text.splitlines()[0].endswith(
        "14 trials = 7 configurations x 2 seeds, 2 epochs each (12 of them sampled by a search)"
    )
    assert "ntkmtl               6      12      24  (search)" in text
    assert "  ntkmtl: 6 samples x 2 seeds = 12 trials; ntk_exp ~ uniform[0.25, 1.5]" in text
    assert "search: optuna TPE (seed 3, 2 random samples first), each sample runs all 2 seeds" in text
    assert "(+ 12 trials sampled by the search while the sweep runs)" in text


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"methods": {"ntkmtl": {"n": {"low": 1, "high": 3}}}, "search": {"samples": 2}},
            "methods.ntkmtl.n = {'low': 1, 'high': 3}: is a range, but only float hyperparameters can be searched",
        ),
        ({"methods": {"ntkmtl": {"ntk_exp": {"low": 1.0, "high": 0.5}}}}, "low = 1 must be below high = 0.5"),
        ({"methods": {"ntkmtl": {"ntk_exp": {"low": 0.0, "high": 1.0, "log": True}}}}, "log: true needs low > 0"),
        ({"methods": {"ntkmtl": {"ntk_exp": {"low": 0.5}}}}, "needs both low and high"),
        ({"methods": {"ntkmtl": {"ntk_exp": {"low": 0.5, "high": 99.0}}}}, "methods.ntkmtl.ntk_exp"),
        (
            {"methods": {"ntkmtl": {"ntk_exp": {"low": 0.5, "high": 1, "step": 2}}}},
            "methods.ntkmtl.ntk_exp.step = 2: unknown key",
        ),
        ({"search": None}, "methods.ntkmtl.ntk_exp = {'low': 0.25, 'high': 1.5}: is a range: add a search section"),
        ({"methods": {"ls": {}}}, "search = {'type': 'optuna', 'samples': 6, 'seed': 3}: no method has a range"),
        ({"search": {"type": "bayes"}}, "search.type = 'bayes': is not valid; valid: optuna, random"),
        ({"search": {"samples": 0}}, "search.samples = 0: must be an integer >= 1"),
        ({"search": {"sample": 3}}, "search.sample = 3: unknown key 'sample'"),
    ],
)
def test_bad_ranges_and_search_sections_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw(**changes), source="s.yaml", check_data=False)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_search_without_optuna_installed_is_a_one_line_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(
        ConfigError, match=r"search.type = 'optuna': needs the optuna package: pip install 'ntkmtl\[search\]'"
    ):
        parse_config(raw(), check_data=False)
