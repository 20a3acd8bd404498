"""--extend: the identity rules on a hand-written output directory (no Ray), then real extensions.

The hand-written output is what the exporter writes for the original sweep: toy benchmark, 3
epochs, seed 0, ``ls`` and ``ntkmtl ntk_exp=0.5`` (ntkmtl stopped early after epoch 1 by
seed-aware ASHA, whose rungs sit at epochs 1 and 2). On Ray: an extension by one seed and one
method, and an extension killed mid-way and resumed, with every row exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ntkmtl.sweep.config import load_config
from ntkmtl.sweep.export import ParquetExporter, read_results
from ntkmtl.sweep.extend import (
    ExtendError,
    extension_table,
    plan_extension,
)
from ntkmtl.sweep.plan import build_plan, hparam_kinds
from ntkmtl.sweep.record import write_record

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "name": "grow",
    "benchmark": "toy",
    "train": {"epochs": 3},
    "seeds": [0],
    "methods": {"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}},
    "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
}


def write_config(tmp_path: Path, name: str = "grow.yaml", **changes) -> Path:
    raw = {**BASE, "storage": str(tmp_path / "ray"), "output": str(tmp_path / "out"), **changes}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def original_output(tmp_path: Path, statuses=None, record: bool = True):
    """The rows the original sweep left: ls seed 0 completed (3 epochs), ntkmtl seed 0 stopped at 1."""
    cfg = load_config(write_config(tmp_path))
    specs = build_plan(cfg)
    exporter = ParquetExporter(cfg.output, cfg.name, cfg.benchmark, hparam_kinds(specs))
    statuses = statuses or {"ls": ("completed", 3), "ntkmtl": ("stopped_early", 1)}
    for index, spec in enumerate(specs):
        status, epochs = statuses[spec.method]
        for epoch in range(1, epochs + 1):
            last = status if epoch == epochs and status != "stopped_early" else "running"
            exporter.add_record(
                f"t{index}", spec.to_dict(), {"epoch": epoch, "status": last, "val_delta_m": 10.0 * (index + 1) - epoch}
            )
        if status == "stopped_early":
            exporter.finish(f"t{index}", "complete")
    if record:
        write_record(cfg, [cfg.name])
    return cfg, specs


def plan(tmp_path: Path, *overrides: str):
    return plan_extension(load_config(write_config(tmp_path), list(overrides)))


def identities(specs):
    return sorted((s.method, s.hparams.get("ntk_exp"), s.seed) for s in specs)


def test_a_new_seed_runs_and_the_finished_trials_are_reused(tmp_path):
    _, original = original_output(tmp_path)
    ext = plan(tmp_path, "seeds=[0, 1]")
    assert identities(ext.run) == [("ls", None, 1), ("ntkmtl", 0.5, 1)]
    assert sorted((r["config_id"], r["seed"]) for r in ext.reused) == sorted((s.config_id, 0) for s in original)
    assert ext.experiment == "grow-extend1" and ext.experiments == ["grow", "grow-extend1"]
    # the new seeds follow their configuration's decision: ls ran on, ntkmtl stopped after epoch 1
    assert {s.method: s.stop_after for s in ext.run} == {"ls": 3, "ntkmtl": 1}
    assert all(s.n_seeds == 1 for s in ext.run)
    text = extension_table(load_config(write_config(tmp_path), ["seeds=[0, 1]"]), ext)
    assert "2 trials to run, 2 reused" in text and "(stops after epoch 1, as its configuration's seeds)" in text
    assert "reuse   " in text and "(completed, trial t0)" in text


def test_a_new_method_and_a_new_value_run_and_the_old_value_is_reused(tmp_path):
    original_output(tmp_path)
    ext = plan(tmp_path, "methods={ls: {}, ntkmtl: {ntk_exp: [0.5, 0.75]}, famo: {}}")
    assert identities(ext.run) == [("famo", None, 0), ("ntkmtl", 0.75, 0)]
    assert all(s.stop_after is None for s in ext.run)  # new configurations: judged by the early stopping
    assert len(ext.reused) == 2 and ext.kept == []
    # seed-aware ASHA starts from the existing configurations' means at its rungs (1 and 2), negated (min)
    ls_id = next(r["config_id"] for r in ext.reused if r["label"] == "ls")
    assert ext.prefill[1][ls_id] == -(10.0 - 1) and ext.prefill[2][ls_id] == -(10.0 - 2)
    assert len(ext.prefill[1]) == 2 and len(ext.prefill[2]) == 1  # ntkmtl stopped after epoch 1
    dropped = plan(tmp_path, "methods={ls: {}}")
    assert dropped.run == [] and [k["label"] for k in dropped.kept] == ["ntkmtl"]


@pytest.mark.parametrize(
    "override, difference",
    [
        ("train.epochs=5", "train.epochs: 3 -> 5"),
        ("data.n_train=256", "data.n_train: 512 -> 256"),
        ("train.lr=0.01", "train.lr: <unset> -> 0.01"),
    ],
)
def test_a_changed_setting_is_refused_naming_the_difference(tmp_path, override, difference):
    original_output(tmp_path)
    with pytest.raises(ExtendError, match="--set name=NEW_NAME") as error:
        plan(tmp_path, override)
    assert difference in str(error.value) and "\n" not in str(error.value)


def test_a_new_name_is_a_new_sweep_and_not_an_extension(tmp_path):
    original_output(tmp_path)
    with pytest.raises(ExtendError, match="sweep 'grown' has no rows"):
        plan(tmp_path, "train.epochs=5", "name=grown")


def test_without_a_record_changed_settings_are_caught_by_the_identities(tmp_path):
    original_output(tmp_path, record=False)
    assert identities(plan(tmp_path, "seeds=[0, 1]").run) == [("ls", None, 1), ("ntkmtl", 0.5, 1)]
    with pytest.raises(ExtendError, match="rows of (ls|ntkmtl) with other benchmark, data or training settings"):
        plan(tmp_path, "train.epochs=5")


def test_unfinished_trials_refuse_and_errored_identities_run_again(tmp_path):
    original_output(tmp_path, statuses={"ls": ("completed", 3), "ntkmtl": ("running", 2)})
    with pytest.raises(ExtendError, match="1 trial\\(s\\) of sweep 'grow' are unfinished .*--resume"):
        plan(tmp_path, "seeds=[0, 1]")
    other = tmp_path / "errored"
    other.mkdir()
    original_output(other, statuses={"ls": ("completed", 3), "ntkmtl": ("errored", 2)})
    assert identities(plan(other).run) == [("ntkmtl", 0.5, 0)]


def test_nothing_to_extend_without_rows(tmp_path):
    with pytest.raises(ExtendError, match="has no rows .* run it without --extend"):
        plan(tmp_path)


def rows_once(out: Path):
    df = read_results(out)
    trials = df.groupby("trial_id").agg(
        method=("method", "first"),
        config=("config_id", "first"),
        seed=("seed", "first"),
        status=("status", "first"),
        epochs=("epoch", "count"),
        last=("epoch", "max"),
    )
    assert not df.duplicated(["trial_id", "epoch"]).any() and not trials.duplicated(["config", "seed"]).any()
    assert (trials["epochs"] == trials["last"]).all()  # epochs 1..last, each once
    return df, trials


@pytest.mark.slow
def test_extend_by_one_seed_and_one_method_then_kill_and_resume_an_extension(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ntkmtl.tune"]
    short = {"train": {"epochs": 2}}  # rungs at epoch 1: enough for the stop rules, half the time
    first = subprocess.run(
        command + [str(write_config(tmp_path, **short))],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    grown = write_config(
        tmp_path, "grown.yaml", **short, seeds=[0, 1], methods={"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}, "famo": {}}
    )
    extended = subprocess.run(
        command + [str(grown), "--extend"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "this extension ran 4 trials and reused 2" in extended.stdout
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet") if p.name in before} == before  # untouched
    df, trials = rows_once(out)
    assert len(trials) == 6 and sorted(trials.groupby("config")["seed"].apply(sorted).tolist()) == [[0, 1]] * 3
    assert set(df["sweep"]) == {"grow"}
    for _, group in trials.groupby("config"):  # a configuration's seeds ran the same epochs
        assert group["last"].nunique() == 1, group
    again = subprocess.run(
        command + [str(grown), "--extend"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "nothing to run" in again.stdout

    # a third seed, killed mid-way (2 s per epoch) and resumed: every row exactly once
    third = write_config(
        tmp_path, "third.yaml", **short, seeds=[0, 1, 2], methods={"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}, "famo": {}}
    )
    driver = subprocess.Popen(
        command + [str(third), "--extend"],
        env={**env, "NTKMTL_INJECT": "sleep@*:*"},
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(read_results(out)) < len(df) + 2:
            assert driver.poll() is None, "the extension ended before it could be killed"
            time.sleep(0.25)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert "running" in set(read_results(out)["status"])
    refused = subprocess.run(
        command + [str(third), "--extend"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run(
        command + [str(third), "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Ray experiment: " in resumed.stdout and "grow-extend2" in resumed.stdout
    df, trials = rows_once(out)
    assert len(trials) == 9 and "running" not in set(trials["status"])
    assert sorted(trials.groupby("config")["seed"].apply(sorted).tolist()) == [[0, 1, 2]] * 3
    expected_rows = sum(trials.groupby("config")["last"].first() * 3)  # each configuration's epochs x 3 seeds
    assert len(df) == expected_rows
