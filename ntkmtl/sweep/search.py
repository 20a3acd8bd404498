"""Seed-paired search on Ray Tune: every sampled configuration runs all the sweep's seeds.

Ray's searchers propose one configuration per trial, and ``Repeater`` repeats a proposal but
knows nothing of seeds, of ``config_id`` or of the trial specs the rest of the sweep reads (the
seed-aware scheduler groups trials by ``config["trial"]`` when they are added). So the grouping
is ours and the sampling is Ray's:

- ``SeedPairedSearch`` (one per searched method): a ``ConcurrencyLimiter`` around Ray's
  ``OptunaSearch`` (TPE sampler for ``type: optuna``, Optuna's random sampler for ``random``,
  both seeded) proposes a sample; it becomes one trial spec per seed, all with the sample's
  ``config_id``. When every seed has ended, the sample is judged on the mean over its seeds of
  each seed's best value of the early-stopping metric (the epoch the report would select), and that
  mean is what OptunaSearch is told. Seeds that diverged or errored are left out of the mean, as
  in the report; a sample with no usable seed is told as failed. The limiter counts samples, not
  trials: ``concurrent_samples`` samples (each with all its seeds) are in flight at once.
- ``SweepSearcher``: the grid trials of the plan first, then the searches' trials in turn; Ray
  pickles it into the experiment (``save``/``restore``), so ``--resume`` continues the search.

Early stopping composes: seed-aware ASHA stops or continues a sample's seeds together, and a
stopped sample is judged on the best epochs it reached.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from ntkmtl.benchmarks import benchmark_class
from ntkmtl.sweep.config_types import MethodGrid, SweepConfig
from ntkmtl.sweep.plan import TrialSpec, config_id


def search_space(grid: MethodGrid) -> dict[str, Any]:
    """The Optuna distributions of one searched method: its ranges, and its lists as choices."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space: dict[str, Any] = {name: FloatDistribution(r.low, r.high, log=r.log) for name, r in grid.ranges.items()}
    for name, values in grid.grid.items():
        if len(values) > 1:
            space[name] = CategoricalDistribution(list(values))
    return space


def _sampler(kind: str, seed: int, startup: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per study otherwise
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


class SeedPairedSearch(Searcher):
    """One method's search: each sample runs every seed and is judged on their mean."""

    def __init__(
        self,
        cfg: SweepConfig,
        grid: MethodGrid,
        metric: str,
        mode: str,
        concurrent_samples: int,
        seed_offset: int = 0,
        samples: int | None = None,
        history: list | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        settings = cfg.search
        assert settings is not None
        self.cfg, self.method, self.kind = cfg, grid.name, settings.type
        self.fixed = {name: values[0] for name, values in grid.grid.items() if len(values) == 1}
        self.n_samples, self.seeds = settings.samples if samples is None else samples, list(cfg.seeds)
        history = history or []  # an extension: (searched values, mean) of the samples judged before
        inner = OptunaSearch(
            space=search_space(grid),
            metric=metric,
            mode=mode,
            sampler=_sampler(settings.type, settings.seed + seed_offset + len(history), settings.startup_samples),
            points_to_evaluate=[p for p, _ in history] or None,
            evaluated_rewards=[v for _, v in history] or None,
        )
        self.searcher = ConcurrencyLimiter(inner, max_concurrent=max(1, concurrent_samples))
        self.started = 0
        self.pending: list[dict[str, Any]] = []  # trial specs of the current sample still to hand out
        self.samples: dict[str, dict[str, Any]] = {}  # sample key → spec, trials, best values, ended
        self.sample_of: dict[str, str] = {}  # trial id → sample key

    # Ray annotates suggest as dict | None, yet its searchers return Searcher.FINISHED (a str) when done
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if not self.pending:
            if self.started >= self.n_samples:
                return Searcher.FINISHED
            key = f"{self.method}-sample{self.started}"
            params = self.searcher.suggest(key)
            if params is None or params == Searcher.FINISHED:
                return None
            self.started += 1
            swept = {**self.fixed, **params}
            hparams = benchmark_class(self.cfg.benchmark).method_hparams(self.method, swept)  # as build_plan
            cid = config_id(self.cfg, self.method, hparams)
            self.samples[key] = {
                "config_id": cid,
                "hparams": hparams,
                "searched": dict(params),
                "trials": {},
                "best": {},
                "ended": {},
                "objective": None,
            }
            self.pending = [
                TrialSpec(cid, self.method, hparams, swept, seed, len(self.seeds), self.kind).to_dict()
                for seed in self.seeds
            ]
        spec = self.pending.pop(0)
        key = next(k for k, s in self.samples.items() if s["config_id"] == spec["config_id"])
        self.samples[key]["trials"][trial_id] = spec["seed"]
        self.sample_of[trial_id] = key
        return {"trial": spec}

    def _track(self, trial_id: str, result: dict | None) -> None:
        if not result or self.metric not in result:
            return
        value = float(result[self.metric])
        if not math.isfinite(value):
            return
        best = self.samples[self.sample_of[trial_id]]["best"]
        old = best.get(trial_id)
        if old is None or (value < old if self.mode == "min" else value > old):
            best[trial_id] = value

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.sample_of:
            self._track(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.sample_of:
            return
        self._track(trial_id, result)
        key = self.sample_of[trial_id]
        sample = self.samples[key]
        sample["ended"][trial_id] = not error and (result or {}).get("status") != "diverged"
        if len(sample["ended"]) < len(self.seeds) or sample["objective"] is not None:
            return
        scores = [sample["best"][t] for t, used in sample["ended"].items() if used and t in sample["best"]]
        if scores:
            sample["objective"] = sum(scores) / len(scores)
            sample["seeds_used"] = len(scores)
            self.searcher.on_trial_complete(key, result={self.metric: sample["objective"]})
        else:
            sample["objective"], sample["seeds_used"] = math.nan, 0
            self.searcher.on_trial_complete(key, error=True)

    def summary(self) -> list[dict[str, Any]]:
        """One row per judged sample: method, config_id, hyperparameters, objective, seeds used."""
        return [
            {
                "method": self.method,
                "sample": key,
                "config_id": s["config_id"],
                "hparams": s["hparams"],
                "searched": s["searched"],
                "objective": s["objective"],
                "seeds_used": s.get("seeds_used", 0),
                "metric": self.metric,
            }
            for key, s in self.samples.items()
            if s["objective"] is not None
        ]


class SweepSearcher(Searcher):
    """The sweep's one search algorithm: the plan's grid trials first, then every search in turn."""

    def __init__(self, grid_specs: list[TrialSpec], searches: list[SeedPairedSearch], metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.grid = [s.to_dict() for s in grid_specs]
        self.searches = searches
        self.turn = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric, mode and spaces are set at construction

    # Ray annotates suggest as dict | None, yet its searchers return Searcher.FINISHED (a str) when done
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.grid:
            return {"trial": self.grid.pop(0)}
        finished = 0
        for i in range(len(self.searches)):
            search = self.searches[(self.turn + i) % len(self.searches)]
            suggestion = search.suggest(trial_id)
            if suggestion == Searcher.FINISHED:
                finished += 1
            elif suggestion is not None:
                self.turn = (self.turn + i + 1) % len(self.searches)
                return suggestion
        return Searcher.FINISHED if finished == len(self.searches) else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        for search in self.searches:
            search.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        for search in self.searches:
            search.on_trial_complete(trial_id, result=result, error=error)

    def summary(self) -> list[dict[str, Any]]:
        return [row for search in self.searches for row in search.summary()]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))


def build_searcher(
    cfg: SweepConfig,
    grid_specs: list[TrialSpec],
    concurrency: int,
    samples: dict[str, int] | None = None,
    history: dict[str, list] | None = None,
) -> SweepSearcher:
    """The sweep's searcher; ``concurrency``: trials the cluster runs at once (for concurrent_samples 0).
    An extension passes the samples still to draw and the judged ones (``ntkmtl.sweep.extend``)."""
    assert cfg.search is not None
    per_method = cfg.search.concurrent_samples or max(1, concurrency // len(cfg.seeds))
    metric, mode = cfg.early_stopping.metric, cfg.early_stopping.mode
    searched = [m for m in cfg.methods if m.ranges and (samples is None or samples.get(m.name))]
    searches = [
        SeedPairedSearch(
            cfg,
            grid,
            metric,
            mode,
            per_method,
            seed_offset=i,
            samples=None if samples is None else samples[grid.name],
            history=(history or {}).get(grid.name),
        )
        for i, grid in enumerate(searched)
    ]
    return SweepSearcher(grid_specs, searches, metric, mode)


def format_search(rows: list[dict[str, Any]], mode: str) -> str:
    """Per searched method: samples judged and the best one on the mean over seeds."""
    lines = []
    for method in dict.fromkeys(r["method"] for r in rows):
        judged = [r for r in rows if r["method"] == method and math.isfinite(r["objective"])]
        failed = sum(1 for r in rows if r["method"] == method) - len(judged)
        if not judged:
            lines.append(f"search {method}: no sample with a usable seed ({failed} failed)")
            continue
        best = (min if mode == "min" else max)(judged, key=lambda r: r["objective"])
        swept = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["searched"].items())
        lines.append(
            f"search {method}: {len(judged)} samples judged on the mean over seeds"
            + (f" ({failed} failed)" if failed else "")
            + f"; best {swept} ({best['metric']} {best['objective']:.2f}, mean over {best['seeds_used']} seeds)"
        )
    return "\n".join(lines)
