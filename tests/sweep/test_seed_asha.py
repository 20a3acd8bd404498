"""Seed-aware successive halving (no Ray): seeds wait at a rung, then continue or stop together."""

from __future__ import annotations

import pytest

from ntkmtl.sweep.seed_asha import CONTINUE, STOP, WAIT, SeedGroupedHalving, rung_milestones


def test_milestones_follow_grace_period_and_reduction_factor():
    assert rung_milestones(1, 2, 10) == [1, 2, 4, 8]
    assert rung_milestones(2, 3, 20) == [2, 6, 18]
    assert rung_milestones(3, 2, 4) == [3]
    assert rung_milestones(4, 2, 4) == []


def halving(configs: dict[str, list[str]]) -> SeedGroupedHalving:
    h = SeedGroupedHalving(grace_period=2, reduction_factor=2, max_t=8)
    for config_id, trials in configs.items():
        for t in trials:
            h.add(t, config_id, len(trials))
    return h


def test_seeds_wait_then_a_good_configuration_continues_together():
    h = halving({"A": ["a0", "a1"]})
    assert h.result("a0", 1, -5.0) == (CONTINUE, [])  # before the first rung
    assert h.result("a0", 2, -4.0) == (WAIT, [])
    assert not h.is_released("a0")
    action, released = h.result("a1", 2, -6.0)
    assert action == CONTINUE and released == [("a0", CONTINUE)]
    assert h.is_released("a0") and h.rungs[2] == {"A": -5.0}


def test_a_bad_configuration_is_stopped_as_a_whole_on_its_mean():
    h = halving({"A": ["a0", "a1"], "B": ["b0", "b1"]})
    h.result("a0", 2, -4.0)
    h.result("a1", 2, -6.0)  # A's mean: -5
    assert h.result("b0", 2, -3.0) == (WAIT, [])  # b0 alone beats A ...
    action, released = h.result("b1", 2, -9.0)  # ... but B's mean (-6) is below the cutoff
    assert action == STOP and released == [("b0", STOP)]
    assert h.decision("b0") == STOP and h.stopped_configs == 1
    assert h.result("b0", 3, 0.0)[0] == STOP  # a late report of a stopped configuration stops too


def test_plain_asha_would_split_a_configuration_that_seed_asha_keeps_together():
    """A good configuration with one unlucky seed: judged on its mean, both seeds survive."""
    h = halving({"A": ["a0", "a1"], "B": ["b0", "b1"]})
    h.result("a0", 2, -5.0)
    h.result("a1", 2, -5.0)
    h.result("b0", 2, -7.0)  # unlucky seed, worse than A: plain ASHA would stop it here
    action, released = h.result("b1", 2, -1.0)  # B's mean -4 beats A
    assert action == CONTINUE and released == [("b0", CONTINUE)]


def test_a_diverged_seed_is_dropped_and_does_not_block_its_siblings():
    h = halving({"A": ["a0", "a1", "a2"]})
    assert h.result("a0", 2, -1.0) == (WAIT, [])
    assert h.result("a1", 1, float("nan")) == (STOP, [])
    action, released = h.result("a2", 2, -3.0)
    assert action == CONTINUE and released == [("a0", CONTINUE)]
    assert h.rungs[2]["A"] == pytest.approx(-2.0)


def test_dropping_the_last_missing_seed_releases_the_waiters():
    h = halving({"A": ["a0", "a1"]})
    h.result("a0", 2, -1.0)
    assert h.drop("a1") == [("a0", CONTINUE)]  # a1 errored for good before the rung


def test_a_seed_resumed_past_a_rung_is_scored_at_the_highest_crossed_rung():
    h = halving({"A": ["a0"]})
    assert h.result("a0", 5, -1.0) == (CONTINUE, [])  # single seed: decided at once, at rung 4
    assert h.rungs[4] == {"A": -1.0} and h.rungs[2] == {}
    assert h.result("a0", 6, -1.0) == (CONTINUE, [])


def test_a_seed_run_on_past_the_open_rung_it_waits_at_waits_there_again():
    """Seen in a resumed sweep: a waiting seed restored from a later checkpoint reported the next
    rung, waited there, and its sibling waited for it at the first: a hang."""
    h = halving({"A": ["a0", "a1"]})
    assert h.result("a0", 2, -4.0) == (WAIT, [])  # a0 waits at rung 2 for a1
    assert h.result("a0", 4, -3.0) == (WAIT, [])  # run on after a resume: still waits at rung 2
    assert h.waiting_at("a0") == 2 and 4 not in h.groups["A"].scores
    action, released = h.result("a1", 2, -6.0)
    assert action == CONTINUE and released == [("a0", CONTINUE)] and h.rungs[2] == {"A": -5.0}


def test_invalid_reduction_factor():
    with pytest.raises(ValueError, match="reduction_factor=1"):
        SeedGroupedHalving(1, 1, 10)
