"""Extending a finished sweep: run only the trials the grown config adds (``--extend``).

A trial's identity is its configuration (``config_id``: benchmark, data options, training
set-up, method, complete hyperparameters) and its seed. ``--extend`` reads the sweep's rows in its
output directory; every identity of the grown config that already has a finished trial there
(``completed``, ``stopped_early`` or ``diverged``: re-running it would only repeat it) is reused,
the others run — more seeds, new methods, new hyperparameter values, more samples of a search —
as a new Ray experiment ``<name>-extend<k>`` whose rows go into the same Parquet data set with the
same ``sweep`` name. Errored identities run again (the errored rows stay, counted as errored).

Refused, with the difference named: a changed benchmark, data option or training setting (it
changes what every existing trial means; a new sweep name runs the config separately), and an
extension while trials of the sweep are unfinished (``--resume`` first).

Early stopping keeps its meaning: with ``seed_asha`` the rungs start with the existing
configurations' seed means, so a new configuration is judged against them, and a new seed of an
existing configuration follows the decision its configuration got: it stops at the epoch its
seeds stopped at (``TrialSpec.stop_after``), or runs to the end. A search with more ``samples``
continues from the existing samples (their means are given to Optuna before it samples again);
existing samples get the new seeds.

The record ``<output>/<name>.sweep.json`` keeps the settings the sweep's rows were made with, its
Ray experiments, so that ``--resume`` continues the newest one, and its fingerprint (the trial
settings of ``identity.py``: what ``--resume`` may not change; an extension records its grown
config's). It marks the output directory as the sweep's. Plain Python, no Ray.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ntkmtl.benchmarks import benchmark_class
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import read_results
from ntkmtl.sweep.identity import differences, fingerprint, trial_settings
from ntkmtl.sweep.plan import TrialSpec, build_plan
from ntkmtl.sweep.seed_asha import rung_milestones

REUSED_STATUSES = ("completed", "stopped_early", "diverged")
USED_STATUSES = ("completed", "stopped_early")  # what the report averages: the scheduler's evidence


class ExtendError(ValueError):
    """The sweep cannot be extended as asked; the message says why and what to do."""


# -- the sweep record ---------------------------------------------------------------------------------
def record_path(cfg: SweepConfig) -> Path:
    return Path(cfg.output).expanduser() / f"{cfg.name}.sweep.json"


def settings(cfg: SweepConfig) -> dict[str, Any]:
    """What every trial's meaning depends on (also hashed into config_id)."""
    return {"benchmark": cfg.benchmark, "data": cfg.data, "train": cfg.train}


def read_record(cfg: SweepConfig) -> dict[str, Any] | None:
    path = record_path(cfg)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExtendError(
            f"{path}: not a readable sweep record ({error}); move it away to extend by the rows alone"
        ) from None


def write_record(cfg: SweepConfig, experiments: list[str]) -> None:
    """Write the record atomically (a crash never leaves half a file)."""
    path = record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "sweep": cfg.name,
        **json.loads(json.dumps(settings(cfg), default=str)),
        "experiments": experiments,
        "fingerprint": fingerprint(cfg),
        "trials": trial_settings(cfg),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def experiments(cfg: SweepConfig) -> list[str]:
    """The sweep's Ray experiments, oldest first (just the sweep's name when it has no record)."""
    record = read_record(cfg)
    return list(record["experiments"]) if record and record.get("experiments") else [cfg.name]


# -- what runs, what is reused ---------------------------------------------------------------------------
@dataclass
class Extension:
    """The plan of one extension: the trials to run and the identities reused from the output."""

    experiment: str
    experiments: list[str]  # all of the sweep's experiments, this one last
    run: list[TrialSpec]
    reused: list[dict[str, Any]]  # per identity: config_id, seed, label, status, trial_id
    kept: list[dict[str, Any]]  # finished identities the grown config no longer has
    new_samples: dict[str, int] = field(default_factory=dict)  # searched method → samples still to draw
    history: dict[str, list[tuple[dict[str, Any], float]]] = field(default_factory=dict)  # method → (params, mean)
    prefill: dict[int, dict[str, float]] = field(default_factory=dict)  # rung epoch → config_id → seed mean
    seeds: tuple[int, ...] = ()

    @property
    def sampled_trials(self) -> int:
        return sum(self.new_samples.values()) * len(self.seeds)


def _rows(cfg: SweepConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep's rows in its output, and one row per trial (its last epoch's row, ``epochs_run``)."""
    output = Path(cfg.output).expanduser()
    if not output.is_dir() or not any(output.glob("*.parquet")):
        return pd.DataFrame(), pd.DataFrame()
    df = read_results(output)
    df = df[df["sweep"] == cfg.name]
    if df.empty:
        return df, pd.DataFrame()
    last = df.sort_values("epoch").groupby("trial_id", sort=False).tail(1).set_index("trial_id")
    last["epochs_run"] = df.groupby("trial_id")["epoch"].max()
    return df, last.reset_index()


def _hparams(row: pd.Series, method: str, benchmark: str) -> dict[str, Any]:
    """A trial's complete hyperparameters, read back from its ``hp_`` columns."""
    names = list(benchmark_class(benchmark).method_hparams(method, {}))
    values = {n: row[f"hp_{n}"] for n in names if f"hp_{n}" in row and not pd.isna(row[f"hp_{n}"])}
    return benchmark_class(benchmark).method_hparams(
        method, {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}
    )


def plan_extension(cfg: SweepConfig) -> Extension:
    """What ``--extend`` runs and reuses; ExtendError when the sweep cannot be extended so."""
    record = read_record(cfg)
    if record is not None:
        changed = differences({k: record.get(k) for k in ("benchmark", "data", "train")}, settings(cfg))
        if changed:
            raise ExtendError(
                f"--extend: sweep {cfg.name!r} was run with other settings ({'; '.join(changed)}), which would change "
                f"what its existing trials mean; give this config a new sweep name (--set name=NEW_NAME) to run it "
                f"separately, or restore the old values"
            )
    rows, trials = _rows(cfg)
    if trials.empty:
        raise ExtendError(
            f"--extend: sweep {cfg.name!r} has no rows in {cfg.output} to extend; run it without --extend"
        )
    running = trials[~trials["status"].isin(REUSED_STATUSES + ("errored",))]
    if len(running):
        raise ExtendError(
            f"--extend: {len(running)} trial(s) of sweep {cfg.name!r} are unfinished "
            f"({', '.join(running['trial_id'][:3])}…); finish them first with --resume"
        )
    grid = build_plan(cfg)
    if record is None:  # a sweep from before records: the identities themselves must still match
        by_hp = {(s.method, json.dumps(s.hparams, sort_keys=True, default=str)): s.config_id for s in grid}
        for _, row in trials.drop_duplicates("config_id").iterrows():
            key = (row["method"], json.dumps(_hparams(row, row["method"], cfg.benchmark), sort_keys=True, default=str))
            if key in by_hp and by_hp[key] != row["config_id"]:
                raise ExtendError(
                    f"--extend: sweep {cfg.name!r} has rows of {row['method']} with other benchmark, data or training "
                    f"settings (config_id {row['config_id']}, now {by_hp[key]}); give this config a new sweep name "
                    "(--set name=NEW_NAME)"
                )
    done = trials[trials["status"].isin(REUSED_STATUSES)]
    done_ids = {(r["config_id"], int(r["seed"])): r for _, r in done.iterrows()}
    stop_after = _decided_epochs(trials, cfg.epochs)

    wanted = list(grid)
    judged = judged_samples(cfg)
    history: dict[str, list[tuple[dict[str, Any], float]]] = {}
    new_samples: dict[str, int] = {}
    for method in (m for m in cfg.methods if m.ranges):
        samples = trials[
            (trials["method"] == method.name) & trials.get("search", pd.Series(index=trials.index)).notna()
        ]
        samples = samples.drop_duplicates("config_id")
        for _, row in samples.iterrows():
            hparams = _hparams(row, method.name, cfg.benchmark)
            swept = {k: hparams[k] for k in (*method.ranges, *method.grid) if k in hparams}
            wanted += [
                TrialSpec(str(row["config_id"]), method.name, hparams, swept, seed, len(cfg.seeds), str(row["search"]))
                for seed in cfg.seeds
            ]
        history[method.name] = [
            (j["searched"], j["objective"])
            for j in judged
            if j["method"] == method.name and math.isfinite(j["objective"])
        ]
        new_samples[method.name] = max(0, cfg.search.samples - len(samples)) if cfg.search else 0

    run, reused = [], []
    for spec in wanted:
        found = done_ids.get((spec.config_id, spec.seed))
        if found is not None:
            reused.append(
                {
                    "config_id": spec.config_id,
                    "seed": spec.seed,
                    "label": spec.label,
                    "status": found["status"],
                    "trial_id": found["trial_id"],
                }
            )
        else:
            run.append(spec)
    counts = pd.Series([s.config_id for s in run]).value_counts().to_dict() if run else {}
    run = [replace(s, n_seeds=int(counts[s.config_id]), stop_after=stop_after.get(s.config_id)) for s in run]
    wanted_ids = {(s.config_id, s.seed) for s in wanted}
    kept = [
        {"config_id": c, "seed": s, "label": r["method"], "status": r["status"], "trial_id": r["trial_id"]}
        for (c, s), r in done_ids.items()
        if (c, s) not in wanted_ids
    ]
    names = experiments(cfg)
    experiment = f"{cfg.name}-extend{len(names)}"
    return Extension(
        experiment,
        names + [experiment],
        run,
        reused,
        kept,
        new_samples,
        history,
        _rung_means(cfg, rows, trials),
        tuple(cfg.seeds),
    )


def _decided_epochs(trials: pd.DataFrame, epochs: int) -> dict[str, int]:
    """Per existing configuration with a used seed: the epochs its seeds ran (the scheduler's decision)."""
    used = trials[trials["status"].isin(USED_STATUSES)]
    return {str(c): int(min(epochs, g.max())) for c, g in used.groupby("config_id")["epochs_run"]}


def judged_samples(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Every sample of the sweep's searches as its rows judge it: the mean over used seeds of each
    seed's best scheduler metric (what ``ntkmtl.sweep.search`` tells Optuna), NaN with no used seed.
    Read from the Parquet rows, so it does not depend on when Ray last saved the searcher."""
    rows, trials = _rows(cfg)
    if trials.empty or "search" not in trials:
        return []
    metric, best = cfg.scheduler.metric, (min if cfg.scheduler.mode == "min" else max)
    out = []
    for method in (m for m in cfg.methods if m.ranges):
        searched = trials[(trials["method"] == method.name) & trials["search"].notna()]
        for cid, seeds in searched.groupby("config_id", sort=False):
            used = seeds[seeds["status"].isin(USED_STATUSES)]
            values = [
                best(rows.loc[rows["trial_id"] == t, metric].dropna(), default=math.nan) for t in used["trial_id"]
            ]
            values = [v for v in values if math.isfinite(v)]
            hparams = _hparams(seeds.iloc[0], method.name, cfg.benchmark)
            params = {k: hparams[k] for k in (*method.ranges, *(k for k, v in method.grid.items() if len(v) > 1))}
            out.append(
                {
                    "method": method.name,
                    "config_id": str(cid),
                    "hparams": hparams,
                    "searched": params,
                    "objective": sum(values) / len(values) if values else math.nan,
                    "seeds_used": len(values),
                    "metric": metric,
                }
            )
    return out


def _rung_means(cfg: SweepConfig, rows: pd.DataFrame, trials: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Seed-aware ASHA's rungs as the existing configurations left them: their seed means per rung."""
    s = cfg.scheduler
    if s.type != "seed_asha":
        return {}
    used = trials.loc[trials["status"].isin(USED_STATUSES), "trial_id"]
    rows = rows[rows["trial_id"].isin(used)]
    sign = 1.0 if s.mode == "max" else -1.0
    prefill: dict[int, dict[str, float]] = {}
    for milestone in rung_milestones(s.grace_period, s.reduction_factor, cfg.epochs):
        at = rows[rows["epoch"] == milestone].groupby("config_id")[s.metric].mean().dropna()
        prefill[milestone] = {str(c): sign * float(v) for c, v in at.items()}
    return prefill


def extension_table(cfg: SweepConfig, ext: Extension) -> str:
    """``--dry-run --extend``: what would run and what is reused."""
    lines = [
        f"extend sweep {cfg.name!r} ({cfg.source}) into {cfg.output} as Ray experiment {ext.experiment!r}: "
        f"{len(ext.run)} trials to run"
        + (f" + {ext.sampled_trials} sampled by the search" if ext.sampled_trials else "")
        + f", {len(ext.reused)} reused"
        + (f", {len(ext.kept)} kept that the config no longer has" if ext.kept else ""),
        "",
        "action  config_id   seed  trial",
    ]
    for spec in ext.run:
        stop = (
            f"  (stops after epoch {spec.stop_after}, as its configuration's seeds)"
            if spec.stop_after and spec.stop_after < cfg.epochs
            else ""
        )
        lines.append(f"run     {spec.config_id}  {spec.seed:>4}  {spec.label}{stop}")
    for method, n in ext.new_samples.items():
        if n:
            lines.append(
                f"run     (search)    {n} new samples x {len(ext.seeds)} seeds of {method}, "
                f"after its {len(ext.history.get(method, []))} judged samples"
            )
    for item in ext.reused:
        lines.append(
            f"reuse   {item['config_id']}  {item['seed']:>4}  {item['label']}  ({item['status']}, trial {item['trial_id']})"
        )
    for item in ext.kept:
        lines.append(
            f"keep    {item['config_id']}  {item['seed']:>4}  {item['label']}  ({item['status']}, not in the config)"
        )
    return "\n".join(lines)
