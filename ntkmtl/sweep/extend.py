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

The existing trials are read back from the rows (``past_trials.py``), the settings they were made
with and the sweep's Ray experiments from its record (``record.py``). Plain Python, no Ray.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.identity import differences
from ntkmtl.sweep.past_trials import (
    decided_epochs,
    judged_samples,
    row_hparams,
    rung_means,
    trial_rows,
)
from ntkmtl.sweep.plan import TrialSpec, build_plan
from ntkmtl.sweep.record import defining_settings, experiments, read_record

REUSED_STATUSES = ("completed", "stopped_early", "diverged")


class ExtendError(ValueError):
    """The sweep cannot be extended as asked; the message says why and what to do."""


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


def plan_extension(cfg: SweepConfig) -> Extension:
    """What ``--extend`` runs and reuses; ExtendError when the sweep cannot be extended so."""
    record = read_record(cfg)
    if record is not None:
        changed = differences({k: record.get(k) for k in ("benchmark", "data", "train")}, defining_settings(cfg))
        if changed:
            raise ExtendError(
                f"--extend: sweep {cfg.name!r} was run with other settings ({'; '.join(changed)}), which would change "
                f"what its existing trials mean; give this config a new sweep name (--set name=NEW_NAME) to run it "
                f"separately, or restore the old values"
            )
    rows, trials = trial_rows(cfg)
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
            key = (
                row["method"],
                json.dumps(row_hparams(row, row["method"], cfg.benchmark), sort_keys=True, default=str),
            )
            if key in by_hp and by_hp[key] != row["config_id"]:
                raise ExtendError(
                    f"--extend: sweep {cfg.name!r} has rows of {row['method']} with other benchmark, data or training "
                    f"settings (config_id {row['config_id']}, now {by_hp[key]}); give this config a new sweep name "
                    "(--set name=NEW_NAME)"
                )
    done = trials[trials["status"].isin(REUSED_STATUSES)]
    done_ids = {(r["config_id"], int(r["seed"])): r for _, r in done.iterrows()}
    stop_after = decided_epochs(trials, cfg.epochs)

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
            hparams = row_hparams(row, method.name, cfg.benchmark)
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
        rung_means(cfg, rows, trials),
        tuple(cfg.seeds),
    )


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
