"""Seed-paired search: the searcher driven by hand (no cluster), then a seeded search on Ray.

By hand: each sample becomes one trial per seed with one config_id, and OptunaSearch is told the
mean over the seeds of each seed's best validation value, leaving diverged seeds out. On Ray: a
seeded TPE search of 6 samples x 2 seeds next to an LS grid, with seed-aware ASHA, where every
sample has both seeds and the search and the table rank the samples on their mean.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

from ntkmtl.sweep.config import parse_config  # noqa: E402
from ntkmtl.sweep.plan import build_plan  # noqa: E402
from ntkmtl.sweep.search import SweepSearcher, build_searcher  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def told_samples(experiment: Path) -> list[dict]:
    """The judged samples in the searcher state Ray pickled last into the experiment directory."""
    import pickle

    newest = max(experiment.glob("searcher-state-*.pkl"), key=lambda p: p.stat().st_mtime_ns)
    searcher = SweepSearcher([], [], "", "min")
    searcher.__dict__.update(pickle.loads(newest.read_bytes()))
    return searcher.summary()


def config(tmp_path: Path | None = None, **changes):
    raw = {
        "name": "search",
        "benchmark": "toy",
        "train": {"epochs": 2},
        "seeds": [0, 1],
        "methods": {"ls": {}, "ntkmtl": {"ntk_exp": {"low": 0.25, "high": 1.5}}},
        "search": {"type": "optuna", "samples": 3, "seed": 0, "concurrent_samples": 2},
    }
    if tmp_path is not None:
        raw.update(storage=str(tmp_path / "ray"), output=str(tmp_path / "out"))
    raw.update(changes)
    return parse_config(raw, check_data=False)


def study(searcher):
    """The Optuna study behind the (only) searched method."""
    return searcher.searches[0].searcher.searcher._ot_study


def test_grid_first_then_every_sample_once_per_seed():
    cfg = config()
    searcher = build_searcher(cfg, build_plan(cfg), concurrency=4)
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert [c["trial"]["method"] for c in configs] == ["ls", "ls", "ntkmtl", "ntkmtl", "ntkmtl", "ntkmtl"]
    samples = configs[2:]
    assert [c["trial"]["seed"] for c in samples] == [0, 1, 0, 1]
    assert samples[0]["trial"]["config_id"] == samples[1]["trial"]["config_id"] != samples[2]["trial"]["config_id"]
    assert all(0.25 <= c["trial"]["hparams"]["ntk_exp"] <= 1.5 and c["trial"]["search"] == "optuna" for c in samples)
    assert samples[0]["trial"]["hparams"]["eps"] == 1e-8  # the method's defaults complete the sample
    assert searcher.suggest("t6") is None  # 2 samples in flight (concurrent_samples): wait


def test_a_sample_is_judged_on_the_mean_of_its_seeds_best_epochs():
    cfg = config()
    searcher = build_searcher(cfg, [], concurrency=4)
    for i in range(4):
        searcher.suggest(f"t{i}")
    # sample 0: seed 0 best 3.0 (epoch 2), seed 1 best 5.0 (epoch 1) → mean 4.0
    for trial, values in (("t0", [4.0, 3.0]), ("t1", [5.0, 6.0])):
        for value in values:
            searcher.on_trial_result(trial, {"val_delta_m": value, "status": "running"})
    searcher.on_trial_complete("t0", {"val_delta_m": 3.0, "status": "completed"})
    assert len(study(searcher).trials) == 2 and study(searcher).trials[0].value is None  # waits for seed 1
    searcher.on_trial_complete("t1", {"val_delta_m": 6.0, "status": "completed"})
    assert study(searcher).trials[0].value == pytest.approx(4.0)
    # sample 1: seed 1 diverged (its finite epoch 1.0 must not count), seed 0 stopped while paused
    searcher.on_trial_result("t2", {"val_delta_m": 7.0})
    searcher.on_trial_result("t3", {"val_delta_m": 1.0})
    searcher.on_trial_complete("t3", {"val_delta_m": math.nan, "status": "diverged"})
    searcher.on_trial_complete("t2", None)
    assert study(searcher).trials[1].value == pytest.approx(7.0)
    rows = searcher.summary()
    assert [(r["objective"], r["seeds_used"]) for r in rows] == [(4.0, 2), (7.0, 1)]
    assert searcher.suggest("t4")["trial"]["seed"] == 0  # a slot is free again: the third sample
    searcher.suggest("t5")
    searcher.on_trial_complete("t4", error=True)
    searcher.on_trial_complete("t5", {"val_delta_m": math.nan, "status": "diverged"})
    assert study(searcher).trials[2].state.name == "FAIL"
    assert searcher.suggest("t6") == "FINISHED"


def test_random_search_uses_optunas_seeded_random_sampler():
    import optuna

    draws = []
    for _ in range(2):
        searcher = build_searcher(config(search={"type": "random", "samples": 2, "seed": 7}), [], concurrency=4)
        assert isinstance(searcher.searches[0].searcher.searcher._sampler, optuna.samplers.RandomSampler)
        draws.append([searcher.suggest(f"t{i}")["trial"]["hparams"]["ntk_exp"] for i in range(4)])
    assert draws[0] == draws[1] and draws[0][0] == draws[0][1] != draws[0][2]  # seeded; one draw per sample


def test_searcher_state_survives_pickling(tmp_path):
    cfg = config()
    searcher = build_searcher(cfg, build_plan(cfg), concurrency=4)
    first = [searcher.suggest(f"t{i}") for i in range(3)]  # ls seeds 0, 1; the first sample's seed 0
    searcher.save(str(tmp_path / "state.pkl"))
    again = build_searcher(cfg, [], concurrency=4)
    again.restore(str(tmp_path / "state.pkl"))
    second = again.suggest("t3")["trial"]
    assert (second["seed"], second["config_id"]) == (1, first[2]["trial"]["config_id"]) and again.searches[
        0
    ].started == 1


@pytest.mark.slow
def test_seeded_search_of_6_samples_x_2_seeds_on_the_toy_benchmark(tmp_path):
    from ntkmtl.results.table import build_benchmark_report
    from ntkmtl.sweep.export import read_results
    from ntkmtl.sweep.tune import run_sweep

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    cfg = config(
        tmp_path,
        search={"type": "optuna", "samples": 6, "seed": 0},
        early_stopping={"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
    )
    (tmp_path / "search.yaml").write_text(yaml.safe_dump({"name": cfg.name}))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        outcome = run_sweep(cfg, verbose=0)
    finally:
        ray.shutdown()
    df = read_results(tmp_path / "out")
    assert outcome.trials == 14 and outcome.errored == 0 and not df.duplicated(["trial_id", "epoch"]).any()
    searched = df[df["method"] == "ntkmtl"]
    seeds = searched.groupby("config_id")["seed"].agg(lambda s: sorted(set(s)))
    assert len(seeds) == 6 and all(s == [0, 1] for s in seeds)  # every sample has both seeds
    assert (searched["search"] == "optuna").all() and df.loc[df["method"] == "ls", "search"].isna().all()
    assert searched["hp_ntk_exp"].between(0.25, 1.5).all()
    for _, group in searched.groupby("config_id"):  # seed-aware ASHA: a sample's seeds end together
        per_trial = group.groupby("trial_id").agg(status=("status", "first"), epochs=("epoch", "max"))
        assert per_trial["status"].nunique() == 1 and per_trial["epochs"].nunique() == 1
    # the search was told, per sample, the mean over both seeds of each seed's best val Δm
    best = searched.groupby(["config_id", "seed"])["val_delta_m"].min().groupby("config_id").mean()
    told = {r["config_id"]: r["objective"] for r in told_samples(tmp_path / "ray" / "search")}
    assert told.keys() == set(best.index) and all(told[c] == pytest.approx(best[c]) for c in told)
    from ntkmtl.sweep.past_trials import judged_samples  # the final lines judge from the rows, as the searcher did

    judged = {r["config_id"]: r["objective"] for r in judged_samples(cfg)}
    assert judged.keys() == told.keys() and all(judged[c] == pytest.approx(told[c]) for c in told)
    # the table ranks samples on their mean; the search's best sample is the table's best val Δm
    table = build_benchmark_report(df, "toy").table.set_index("config_id")
    assert all(table.loc[c, "seeds"] == 2 and table.loc[c, "val_delta_m_mean"] == pytest.approx(best[c]) for c in told)
    assert f"ntk_exp={searched.loc[searched['config_id'] == best.idxmin(), 'hp_ntk_exp'].iloc[0]:.4g}" in outcome.search


@pytest.mark.slow
def test_search_killed_and_resumed_runs_every_sample_and_seed_once(tmp_path):
    """Trials created after Ray's last snapshot are re-suggested on --resume; their rows stay once."""
    import signal
    import subprocess
    import sys
    import time

    from ntkmtl.sweep.export import read_results
    from ntkmtl.sweep.tune import INJECT_ENV

    raw = {
        "name": "killed",
        "benchmark": "toy",
        "train": {"epochs": 3},
        "seeds": [0, 1],
        "methods": {"ls": {}, "ntkmtl": {"ntk_exp": {"low": 0.25, "high": 1.5}}},
        "search": {"type": "optuna", "samples": 2, "seed": 0},
        "storage": str(tmp_path / "ray"),
        "output": str(tmp_path / "out"),
    }
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, INJECT_ENV: "sleep@*:*", "PYTHONPATH": str(REPO)}  # 2 s per epoch: time to kill
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "ntkmtl.tune", str(path)],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.glob("*.parquet"))) < 3:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.25)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert "running" in set(read_results(out)["status"])
    del env[INJECT_ENV]
    resumed = subprocess.run(
        [sys.executable, "-m", "ntkmtl.tune", str(path), "--resume"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    df = read_results(out)
    trials = df.groupby("trial_id").agg(
        method=("method", "first"),
        config=("config_id", "first"),
        seed=("seed", "first"),
        status=("status", "first"),
        epochs=("epoch", "count"),
    )
    assert not trials.duplicated(["config", "seed"]).any() and len(trials) == 2 + 2 * 2
    assert trials.groupby("config")["seed"].apply(sorted).tolist() == [[0, 1]] * 3
    assert set(trials["status"]) == {"completed"} and (trials["epochs"] == 3).all() and len(df) == 6 * 3
    assert "search ntkmtl: 2 samples judged on the mean over seeds" in resumed.stdout
