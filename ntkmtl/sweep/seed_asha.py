"""Seed-aware asynchronous successive halving: a configuration's seeds are judged together.

Plain ASHA (Li et al., 2020, arXiv 1810.05934) compares every trial at each rung with the trials
that reached that rung before it, and stops it when it is below the ``1 − 1/η`` quantile. In a
multi-task sweep each configuration (method + hyperparameters) runs several seeds, and plain
ASHA judges each seed alone: a good configuration whose unlucky seed arrives early loses that
seed, and its mean over seeds is then computed from a biased subset.

Here the unit is the configuration. Rungs sit at epochs ``grace_period · η^k`` below ``max_t``.
When a seed reaches a rung it waits (the Ray adapter pauses it, freeing its resources) until
every seed of its configuration has reached that rung or has ended for good (diverged, errored).
Then the configuration's score is the mean over its seeds, compared with the scores of the
configurations that reached the rung before it, by ASHA's own rule; all its waiting seeds are
released together — all continue or all stop. A seed whose metric is not finite is dropped from
its configuration (it ends ``diverged``) and does not block the others.

With one trial per group (``n_seeds`` 1 and the trial's own key as its configuration) the same
bookkeeping is plain ASHA: each trial judged alone by ASHA's rule.

This module is plain Python (no Ray): ``ntkmtl/sweep/schedulers.py`` wraps it in a Ray
``TrialScheduler``. Scores are "higher is better" (the adapter negates a metric to minimise).
Ray does not save scheduler state in its experiment snapshots, so every call that changes the
state appends an event to ``events`` (a result at a rung, a trial ended); the adapter keeps them
in a journal in the experiment and ``replay`` rebuilds the same state after ``--resume``, so a
resumed sweep decides as an uninterrupted one. A seed that reports a rung again (re-run from an
older checkpoint) gets its configuration's decision, or waits again while it is open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CONTINUE, WAIT, STOP = "continue", "wait", "stop"


def rung_milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """Epochs at which trials are compared: grace_period · η^k, strictly below max_t, ascending."""
    milestones: list[int] = []
    t = float(grace_period)
    while t < max_t:
        milestone = int(math.ceil(t - 1e-9))
        if not milestones or milestone > milestones[-1]:
            milestones.append(milestone)
        t *= reduction_factor
    return milestones


@dataclass
class _Group:
    """The seeds of one configuration and what has been decided for them."""

    n_seeds: int
    scores: dict[int, dict[str, float]] = field(default_factory=dict)  # milestone → trial → score
    waiting: dict[str, int] = field(default_factory=dict)  # trial → milestone it waits at
    dropped: set[str] = field(default_factory=set)
    decisions: dict[int, str] = field(default_factory=dict)  # milestone → CONTINUE | STOP


class SeedGroupedHalving:
    """The bookkeeping of seed-aware ASHA; every call returns what to do with which trials."""

    def __init__(self, grace_period: int, reduction_factor: float, max_t: int):
        if reduction_factor <= 1:
            raise ValueError(f"seed_asha: reduction_factor={reduction_factor!r} must be > 1")
        self.reduction_factor = reduction_factor
        self.milestones = rung_milestones(grace_period, reduction_factor, max_t)
        self.rungs: dict[int, dict[str, float]] = {m: {} for m in self.milestones}  # milestone → config → mean
        self.groups: dict[str, _Group] = {}
        self.config_of: dict[str, str] = {}
        self.stopped_configs = 0
        self.events: list[list] = []  # ["result", trial, config, n_seeds, t, score] | ["drop", trial, config, n_seeds]

    def replay(self, events: list[list]) -> None:
        """Apply journaled events (from ``events`` of an earlier instance) in their order."""
        for event in events:
            kind, trial_id, config_id, n_seeds = event[:4]
            self.add(trial_id, config_id, int(n_seeds))
            if kind == "result":
                self.result(trial_id, int(event[4]), float(event[5]))
            elif kind == "drop":
                self.drop(trial_id)

    def add(self, trial_id: str, config_id: str, n_seeds: int) -> None:
        """Register a trial (again, after a retry: harmless)."""
        self.config_of[trial_id] = config_id
        self.groups.setdefault(config_id, _Group(n_seeds))

    def result(self, trial_id: str, t: int, score: float) -> tuple[str, list[tuple[str, str]]]:
        """A trial reported ``score`` at epoch ``t``: its action, and (trial, action) for released waiters."""
        group = self.groups[self.config_of[trial_id]]
        if not math.isfinite(score):
            return STOP, self.drop(trial_id)
        if any(d == STOP for m, d in group.decisions.items() if m <= t):
            return STOP, []
        crossed = [m for m in self.milestones if m <= t]
        if not crossed:
            return CONTINUE, []
        milestone = crossed[-1]
        if milestone in group.decisions:  # decided (a late seed, or a later epoch of a released one)
            if trial_id not in group.scores.get(milestone, {}):
                group.scores.setdefault(milestone, {})[trial_id] = score
                self._log("result", trial_id, t, score)
            return group.decisions[milestone], []
        earliest_open = next(m for m in crossed if m not in group.decisions)
        if t > earliest_open and trial_id in group.scores.get(earliest_open, {}):
            group.waiting[trial_id] = earliest_open  # resumed past an open rung: it waits there again
            return WAIT, []
        group.scores.setdefault(milestone, {})[trial_id] = score
        self._log("result", trial_id, t, score)
        group.waiting[trial_id] = milestone
        released = self._decide_ready(self.config_of[trial_id])
        for other, action in released:
            if other == trial_id:
                released.remove((other, action))
                return action, released
        return WAIT, released

    def drop(self, trial_id: str) -> list[tuple[str, str]]:
        """The trial ended for good (completed, diverged, errored, stopped): stop waiting for it."""
        config_id = self.config_of.get(trial_id)
        if config_id is None:
            return []
        group = self.groups[config_id]
        if trial_id not in group.dropped:
            self._log("drop", trial_id)
        group.dropped.add(trial_id)
        group.waiting.pop(trial_id, None)
        released = self._decide_ready(config_id)
        return [(t, a) for t, a in released if t != trial_id]

    def restart(self, trial_id: str) -> None:
        """The trial runs again from its first epoch: it no longer waits (it will report its rungs
        again, and then wait or get its configuration's decision); its scores stay."""
        config_id = self.config_of.get(trial_id)
        if config_id is not None:
            self.groups[config_id].waiting.pop(trial_id, None)

    def is_released(self, trial_id: str) -> bool:
        """Whether a waiting trial may run again (its rung was decided CONTINUE)."""
        group = self.groups[self.config_of[trial_id]]
        return trial_id not in group.waiting

    def waiting_at(self, trial_id: str) -> int | None:
        """The rung a trial waits at (it reported it; its configuration is not decided yet)."""
        config_id = self.config_of.get(trial_id)
        return None if config_id is None else self.groups[config_id].waiting.get(trial_id)

    def stopped_at(self, trial_id: str) -> int | None:
        """The rung at which the trial was stopped with its configuration, if it reached it."""
        config_id = self.config_of.get(trial_id)
        if config_id is None:
            return None
        group = self.groups[config_id]
        return next(
            (m for m, d in sorted(group.decisions.items()) if d == STOP and trial_id in group.scores.get(m, {})), None
        )

    def _log(self, kind: str, trial_id: str, *values: float) -> None:
        config_id = self.config_of[trial_id]
        self.events.append([kind, trial_id, config_id, self.groups[config_id].n_seeds, *values])

    def decision(self, trial_id: str) -> str | None:
        """The latest decision of the trial's configuration (None before its first rung)."""
        group = self.groups[self.config_of[trial_id]]
        return group.decisions[max(group.decisions)] if group.decisions else None

    def _decide_ready(self, config_id: str) -> list[tuple[str, str]]:
        """Decide every rung at which all seeds of the configuration are in; release its waiters."""
        group = self.groups[config_id]
        released: list[tuple[str, str]] = []
        for milestone in sorted({m for m in group.waiting.values()}):
            if milestone in group.decisions:
                continue
            arrived = set(group.scores.get(milestone, {})) | group.dropped
            if len(arrived) < group.n_seeds:
                continue
            action = self._judge(config_id, milestone)
            group.decisions[milestone] = action
            for trial_id, waited in list(group.waiting.items()):
                if waited == milestone:
                    del group.waiting[trial_id]
                    released.append((trial_id, action))
        return released

    def _judge(self, config_id: str, milestone: int) -> str:
        """ASHA's rule on the configuration's mean score: stop when below the 1 − 1/η quantile."""
        scores = [s for s in self.groups[config_id].scores.get(milestone, {}).values() if math.isfinite(s)]
        if not scores:
            return STOP
        mean = float(np.mean(scores))
        recorded = self.rungs[milestone]
        action = CONTINUE
        if recorded:
            cutoff = float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100))
            if mean < cutoff:
                action = STOP
        recorded[config_id] = mean
        if action == STOP:
            self.stopped_configs += 1
        return action
