"""GridEntry: the plan's trial specs in Ray's grid are shared, never deep-copied per trial (O(N²))."""

import copy
import json
import pickle

import pytest
from ray.tune.search.variant_generator import generate_variants

from ntkmtl.sweep.tuner import GridEntry

SPEC = {"config_id": "abc", "method": "ls", "hparams": {"max_norm": 0.0}, "seed": 0}


def test_deep_copy_is_the_entry_itself():
    entry = GridEntry(SPEC)
    assert copy.deepcopy(entry) is entry
    assert copy.deepcopy({"grid_search": [entry]})["grid_search"][0] is entry


def test_mutation_is_refused():
    entry = GridEntry(SPEC)
    for mutate in (
        lambda: entry.__setitem__("seed", 1),
        lambda: entry.pop("seed"),
        lambda: entry.update(seed=1),
        lambda: entry.setdefault("x", 1),
        entry.clear,
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert entry == SPEC


def test_a_shallow_copy_is_a_plain_dict_to_change_so_ray_can_flatten_an_entry():
    from ray._private.dict import flatten_dict

    entry = GridEntry(SPEC)
    assert type(copy.copy(entry)) is dict and copy.copy(entry) == SPEC
    assert flatten_dict(entry)["hparams/max_norm"] == 0.0  # raised "read-only" before __copy__


def test_pickles_and_dumps_as_the_dict_it_holds():
    entry = GridEntry(SPEC)
    back = pickle.loads(pickle.dumps(entry))
    assert type(back) is GridEntry and back == SPEC
    assert json.dumps(entry) == json.dumps(SPEC)


def test_ray_grid_hands_each_trial_the_planned_entry_uncopied():
    entries = [GridEntry({**SPEC, "seed": seed}) for seed in range(50)]
    variants = [spec for _, spec in generate_variants({"sweep": {"epochs": 2}, "trial": {"grid_search": entries}})]
    assert [v["trial"]["seed"] for v in variants] == list(range(50))
    assert all(v["trial"] is e for v, e in zip(variants, entries))  # plain dicts: 50 copies of all 50
