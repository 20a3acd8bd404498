"""Search spaces in a sweep config: ranges of float hyperparameters and the ``search:`` section.

A method's float hyperparameter may be a range instead of a grid::

    methods:
      ls: {}                                   # a grid (one configuration)
      ntkmtl:
        ntk_exp: {low: 0.25, high: 1.5}        # searched; add log: true for a log-uniform range
    search: {type: optuna, samples: 6}          # optuna (TPE) | random; samples per searched method

Every method with a range is searched on its own: ``samples`` configurations are drawn from its
ranges (its list-valued hyperparameters become categorical choices, its single values stay
fixed), and each sample runs every seed of the sweep (``ntkmtl.sweep.search``). Grids and
searches mix freely across methods. Plain Python, no Ray: checked with the rest of the config.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SEARCH_TYPES = ("optuna", "random")
SEARCH_KEYS = ("type", "samples", "seed", "startup", "concurrent_samples")
RANGE_KEYS = ("low", "high", "log")
SEARCH_NAMES = {"optuna": "optuna TPE", "random": "random"}


@dataclass(frozen=True)
class Range:
    """A float hyperparameter drawn uniformly (or log-uniformly) from [low, high]."""

    low: float
    high: float
    log: bool = False

    def __str__(self) -> str:
        return f"{'log-uniform' if self.log else 'uniform'}[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section: which sampler, how many samples per searched method.

    ``startup``: samples drawn at random before TPE models the results (Optuna's
    ``n_startup_trials``); default min(10, max(2, samples // 3)), so that a small search is not
    random throughout. ``concurrent_samples``: samples in flight at once per method (each runs
    all seeds); 0 = as many as the cluster runs trials at once divided by the seeds, at least 1.
    Fewer samples in flight make TPE better informed; more finish sooner."""

    type: str = "optuna"
    samples: int = 10
    seed: int = 0
    startup: int | None = None
    concurrent_samples: int = 0

    @property
    def name(self) -> str:
        return SEARCH_NAMES[self.type]

    @property
    def startup_samples(self) -> int:
        return self.startup if self.startup is not None else min(10, max(2, self.samples // 3))


def parse_range(
    fail: Callable[[str, Any, str], None], path: str, raw: dict, check: Callable[[Any], Any], kind: type
) -> Range:
    """``{low, high, log}`` → Range; ``check`` validates a value against the hyperparameter's bounds."""
    unknown = [k for k in raw if k not in RANGE_KEYS]
    if unknown:
        fail(
            f"{path}.{unknown[0]}",
            raw[unknown[0]],
            f"unknown key {unknown[0]!r}; a range has keys {', '.join(RANGE_KEYS)}",
        )
    if kind is not float:
        fail(
            path,
            raw,
            f"is a range, but only float hyperparameters can be searched (this one is {kind.__name__}): "
            "give a list of values instead",
        )
    for key in ("low", "high"):
        if key not in raw:
            fail(path, raw, f"a range needs both low and high (e.g. {{low: 0.25, high: 1.5}}); {key} is missing")
    low, high = check(raw["low"]), check(raw["high"])
    if not low < high:
        fail(path, raw, f"low = {low:g} must be below high = {high:g}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        fail(f"{path}.log", log, "must be true or false")
    if log and low <= 0:
        fail(path, raw, f"log: true needs low > 0 (got {low:g})")
    return Range(float(low), float(high), log)


def parse_search(
    fail: Callable[[str, Any, str], None], raw: Any, ranges: list[tuple[str, Any]]
) -> SearchSettings | None:
    """The ``search:`` section, checked against the config's ranges (``ranges``: key path, value)."""
    if raw is None:
        if ranges:
            fail(
                ranges[0][0],
                ranges[0][1],
                "is a range: add a search section to sample it, e.g. search: {type: optuna, samples: 10}",
            )
        return None
    if not isinstance(raw, dict):
        fail("search", raw, "must be a mapping, e.g. {type: optuna, samples: 10}")
    unknown = [k for k in raw if k not in SEARCH_KEYS]
    if unknown:
        fail(
            f"search.{unknown[0]}", raw[unknown[0]], f"unknown key {unknown[0]!r}; valid keys: {', '.join(SEARCH_KEYS)}"
        )
    if not ranges:
        fail(
            "search",
            raw,
            "no method has a range to search: give a hyperparameter as {low: …, high: …}, or remove the search section",
        )
    kind = raw.get("type", "optuna")
    if kind not in SEARCH_TYPES:
        fail("search.type", kind, f"is not valid; valid: {', '.join(SEARCH_TYPES)}")
    if importlib.util.find_spec("optuna") is None:  # both types sample through Ray's OptunaSearch
        fail("search.type", kind, "needs the optuna package: pip install 'ntkmtl[search]'")

    def whole(key: str, default: Any, low: int) -> Any:
        value = raw.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            fail(f"search.{key}", value, f"must be an integer >= {low}")
        return value

    return SearchSettings(
        type=kind,
        samples=whole("samples", 10, 1),
        seed=whole("seed", 0, 0),
        startup=whole("startup", None, 1),
        concurrent_samples=whole("concurrent_samples", 0, 0),
    )


def searched(cfg: Any) -> list[Any]:
    """The MethodGrids of a SweepConfig that are searched (they have ranges)."""
    return [m for m in cfg.methods if m.ranges]


def search_trials(cfg: Any) -> int:
    """Trials the searches of a SweepConfig run: samples × seeds per searched method."""
    return len(searched(cfg)) * (cfg.search.samples if cfg.search else 0) * len(cfg.seeds)


def search_space_text(grid: Any) -> str:
    """'ntk_exp ~ uniform[0.25, 1.5], n in {1, 2}': what one searched method samples."""
    parts = [f"{hp} ~ {r}" for hp, r in grid.ranges.items()]
    parts += [f"{hp} in {{{', '.join(map(str, v))}}}" for hp, v in grid.grid.items() if len(v) > 1]
    parts += [f"{hp} = {v[0]}" for hp, v in grid.grid.items() if len(v) == 1]
    return ", ".join(parts)


def dry_run_lines(cfg: Any) -> list[str]:
    """The ``--dry-run`` lines of the searches: per method, samples × seeds and the space."""
    if not searched(cfg):
        return []
    s = cfg.search
    lines = [
        f"search: {s.name} (seed {s.seed}"
        + (f", {s.startup_samples} random samples first" if s.type == "optuna" else "")
        + f"), each sample runs all {len(cfg.seeds)} seeds and is judged on their mean"
    ]
    for grid in searched(cfg):
        lines.append(
            f"  {grid.name}: {s.samples} samples x {len(cfg.seeds)} seeds = {s.samples * len(cfg.seeds)} trials; "
            f"{search_space_text(grid)}"
        )
    return lines
